"""The one-worker kernel: one workgroup per sequence runs every step of the recurrence
(see the package docstring)."""
from __future__ import annotations

from wispy.kernels.recurrent.cells import StepIO, gate_step
from wispy.kernels.recurrent.operands import bindings, index_constants, subspans
from wispy.kernels.recurrent.products import bucket_products, projection_bucket, projection_rows
from wispy.kernels.recurrent.shape import KernelShape, scratch_size
from wispy.kernels.templates import render

R = "recurrent.mlir"


def kernel(name: str, T: int, B: int, H: int, proj, buckets: list, shape: KernelShape, types: list,
           cell: str = "gru") -> str:
    """`func.func @name` over the bindings of `types` (operands_one_worker's operands and
    results)."""
    NS = scratch_size(H, shape)
    tl, G, GW = shape.tl, shape.g, shape.gw
    V, VG, SM = f"vector<{tl}xf32>", f"vector<{GW}xf32>", f"memref<{NS}xf32>"
    mems = [f"memref<{t}>" for t in types]
    nproj = 1 if proj is None else 2 * len(proj)
    lstm = cell == "lstm"
    at_init = nproj + 1 + int(lstm)
    n = len(types)
    io = StepIO(H=H, VG=VG, SM=SM, seq="%wg", hs=f"%m{n - 2}" if lstm else f"%m{n - 1}",
                cs=f"%m{n - 1}" if lstm else None, state_type=mems[-1], keep_h=True,
                c0=f"%m{nproj + 1}" if lstm else None, c0_type=mems[nproj + 1] if lstm else None)
    first = at_init + 1
    products = [bucket_products(k, bk, first + 3 * k, mems, shape, H, SM) for k, bk in enumerate(buckets)]
    return render(
        R, "one_worker", name=name, bindings=bindings(n), constants=index_constants(max(tl, shape.uj, G, 4) + 1),
        T=T, B=B, H=H, NS=NS, TL=tl, G=G, GW=GW, IN=3 * H, subspans=subspans(mems), SM=SM, V=V, VG=VG,
        h0=f"%m{nproj}", h0_type=mems[nproj], snake="true" if shape.snake else "false",
        previous=render(R, "previous_step") if lstm else "", init=f"%m{at_init}", init_type=mems[at_init],
        projection=_projection(proj, mems, SM), products=products,
        gates=gate_step(cell, proj, None if proj else ("%m0", mems[0]), io))


def _projection(proj, mems: list, SM: str) -> list[str]:
    """This frame's partial sums of the projection's buckets (operands 2k, 2k + 1: prod,
    prow), added into S; none with a dense W_ih."""
    if proj is None:
        return []
    out = [render(R, "frame")]
    for k, (nb, r) in enumerate(proj):
        add = projection_rows("%blk", f"%pr{k}", mems, 2 * k, 2 * k + 1, SM)
        out.append(projection_bucket(k, nb, r, f"%pr{k}", add))
    return out

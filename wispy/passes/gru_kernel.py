"""A GRU layer's whole recurrence as one hand-written CPU dispatch (MLIR text), its
recurrent matrix in BSPC form (wispy/passes/bspc.py).

IREE runs a recurrent loop written with tensors as a few dispatches per step (the
product, the combine of its partial sums, the gates): a 2x1024 GRU pruned 10x spends as
long between and around those 600 dispatches as in its products. Here one workgroup per
sequence runs every step itself:

    h = h0
    for t in 0..T:
        S = init            (S: acc[3H], acc_in[H], then a slot padding rows add into)
        with the input projection's partial sums (its matrix block-sparse too): for each
        of its buckets' stored rows i, S[prow[b, i]] += prod[b, t, i]
        for each bucket of W_hh, block b, group of G row tiles:
            sums[g] = sum_j values[b, grp, j, g, :] * h[cols[b, j]]   (TL rows per tile)
            S[rows[b, tile*TL + l]] += sums[g][l]
        r = sigmoid(acc[0:H]);  z = sigmoid(acc[H:2H])
        n = tanh(acc_in + r * acc[2H:3H]);  h = n + z * (h - n);  hs[t] = h

(PyTorch's gate order and formulas.) acc starts from b_ih + b_hh for r and z and from
b_hh for n; acc_in from b_ih's n part; the projection's rows of r and z add into acc, its
n rows into acc_in. `prod` ([nb, T*B, r] per bucket) is the projection of every frame
computed before the loop by a batched matmul over the compact blocks. With a dense W_ih
the kernel reads gi = W_ih x_t + b_ih instead (gates r = sigmoid(gi_r + acc_r), ...,
n = tanh(gi_n + r * acc_n)) and acc starts from b_hh. sigmoid(x) is written
0.5 + 0.5 tanh(x / 2), so the three gates share one set of polynomial constants (fewer
registers to rematerialize inside the loop on Arm). S and h live on the stack.

Values are packed [nb, nt / G, c, G, TL]: a group's G tiles of TL rows at column j are
one contiguous run, read once per step. Column strips (RTMobile's pattern: each block
keeps whole columns j0..j0+c) load h four columns at a time; other blocks gather h per
column through `cols`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Stack the kernel may use for S[4H + TL] and h[H] (IREE's CPU limit is 32 KiB).
STACK_LIMIT_BYTES = 24 * 1024


@dataclass(frozen=True)
class KernelShape:
    """How the kernel is cut for a target: TL rows per tile (a vector), G tiles in flight,
    UJ columns per loop iteration, GW units per gate vector."""

    tl: int = 16
    g: int = 4
    uj: int = 4
    gw: int = 8


def shape_for(target) -> KernelShape:
    """Tiles that suit the target's vector registers (16 NEON q registers on armv7)."""
    name = getattr(target, "name", "host")
    if name == "armv7":
        return KernelShape(tl=8, g=2, uj=4, gw=4)
    return KernelShape()


def supports(hidden: int, shape: KernelShape) -> bool:
    """True when the kernel takes this hidden size: whole vectors of units, and acc and h
    within the stack budget."""
    return hidden % shape.tl == 0 and hidden % shape.gw == 0 and \
        4 * (5 * hidden + shape.tl) <= STACK_LIMIT_BYTES


def scratch_size(hidden: int, shape: KernelShape) -> int:
    """S: acc[3H], acc_in[H], and a whole vector holding the padding rows' slot (4H)."""
    return 4 * hidden + shape.tl


def scratch_rows(rows: np.ndarray, hidden: int) -> np.ndarray:
    """Rows of W_ih (-1: padding) as positions in S: its r and z rows in acc as they are,
    its n rows in acc_in, padding in the slot at 4H."""
    out = np.where(rows < 0, 4 * hidden, rows)
    return np.where(rows >= 2 * hidden, rows + hidden, out).astype(np.int32)


def initial_scratch(b_ih, b_hh, hidden: int, with_projection: bool, shape: KernelShape) -> np.ndarray:
    """S at the start of every step (see the module docstring)."""
    s = np.zeros(scratch_size(hidden, shape), np.float32)
    s[:3 * hidden] = b_hh
    if with_projection:
        s[:2 * hidden] += b_ih[:2 * hidden]
        s[3 * hidden:4 * hidden] = b_ih[2 * hidden:]
    return s


@dataclass
class PackedBucket:
    values: np.ndarray   # [nb, nt / G, c, G, TL] float32, padding zero
    rows: np.ndarray     # [nb, nt * TL] int32: each packed row's row of W (3H: padding)
    cols: np.ndarray     # [nb, c] int32
    strips: bool         # every block keeps contiguous columns, c a multiple of UJ


def pack_bucket(values: np.ndarray, rows: np.ndarray, cols: np.ndarray, m: int,
                shape: KernelShape) -> PackedBucket:
    """A BSPC bucket of W_hh (values [nb, r, c], rows [nb, r] with -1 padding, cols [nb, c])
    in the kernel's tiled layout; padding rows point at S[m], which nobody reads."""
    nb, r, c = values.shape
    tl, g = shape.tl, shape.g
    nt = -(-r // tl)
    nt = -(-nt // g) * g
    v = np.zeros((nb, nt * tl, c), np.float32)
    v[:, :r] = values
    rr = np.full((nb, nt * tl), 4 * (m // 3), np.int32)
    rr[:, :r] = np.where(rows < 0, 4 * (m // 3), rows)
    v = np.ascontiguousarray(v.reshape(nb, nt // g, g, tl, c).transpose(0, 1, 4, 2, 3))
    cols = np.ascontiguousarray(cols, dtype=np.int32)
    strips = c % shape.uj == 0 and bool(np.all(cols - cols[:, :1] == np.arange(c, dtype=np.int32)))
    return PackedBucket(v, rr, cols, strips)


def _types(T: int, B: int, H: int, proj: list, buckets: list, tl: int) -> list[str]:
    """Shapes of the dispatch's operands in binding order, the result last: gi [T,B,3H]
    (or, per projection bucket, prod [nb,T*B,r] and prow [nb,r]), h0, init, then values,
    rows, cols per W_hh bucket."""
    out = [f"{T}x{B}x{3 * H}xf32"] if proj is None else \
        [t for nb, r in proj for t in (f"{nb}x{T * B}x{r}xf32", f"{nb}x{r}xi32")]
    out += [f"{B}x{H}xf32", f"{4 * H + tl}xf32"]
    for bk in buckets:
        nb, ng, c, g, tl = bk.values.shape
        out += [f"{nb}x{ng}x{c}x{g}x{tl}xf32", f"{nb}x{ng * g * tl}xi32", f"{nb}x{c}xi32"]
    return out + [f"{T}x{B}x{H}xf32"]


def executable(name: str, T: int, B: int, H: int, proj, buckets: list, shape: KernelShape) -> str:
    """`stream.executable @name` whose export `@name` runs the recurrence of B sequences
    (one workgroup each), and `func.func private @name_call` that dispatches it on
    tensors (the operands of _types) -> hs [T,B,H]. `proj`: [(nb, r)] of the projection's
    buckets, or None when the kernel reads gi."""
    types = _types(T, B, H, proj, buckets, shape.tl)
    body = _kernel(name, T, B, H, proj, buckets, shape, types)
    targs = ", ".join(f"%a{i}: tensor<{t}>" for i, t in enumerate(types[:-1]))
    names = ", ".join(f"%a{i}" for i in range(len(types) - 1))
    ttypes = ", ".join(f"tensor<{t}>" for t in types[:-1])
    return f"""stream.executable private @{name} {{
  stream.executable.export public @{name} workgroups() -> (index, index, index) {{
    %b = arith.constant {B} : index
    %c1 = arith.constant 1 : index
    stream.return %b, %c1, %c1 : index, index, index
  }}
  builtin.module {{
{body}
  }}
}}
func.func private @{name}_call({targs}) -> tensor<{types[-1]}> {{
  %0 = flow.dispatch @{name}::@{name}({names}) : ({ttypes}) -> tensor<{types[-1]}>
  return %0 : tensor<{types[-1]}>
}}
"""


def _kernel(name: str, T: int, B: int, H: int, proj, buckets: list, shape: KernelShape, types: list) -> str:
    M, NS = 3 * H, scratch_size(H, shape)
    tl, G, UJ, GW = shape.tl, shape.g, shape.uj, shape.gw
    V, VG = f"vector<{tl}xf32>", f"vector<{GW}xf32>"
    SM = f"memref<{NS}xf32>"
    L: list[str] = []
    a = L.append
    nbind = len(types)
    a(f"func.func @{name}(" + ", ".join(f"%b{i}: !stream.binding" for i in range(nbind)) + ") {")
    for i in range(max(tl, UJ, G, 4) + 1):
        a(f"  %c{i} = arith.constant {i} : index")
    a(f"  %cT = arith.constant {T} : index\n  %cB = arith.constant {B} : index\n  %cH = arith.constant {H} : index")
    a(f"  %cNS = arith.constant {NS} : index\n  %cTL = arith.constant {tl} : index\n  %cG = arith.constant {G} : index")
    a(f"  %cGW = arith.constant {GW} : index\n  %cIN = arith.constant {M} : index")
    a("  %wg = stream.dispatch.workgroup.id[0] : index")
    mems = [f"memref<{t}>" for t in types]
    for i, mt in enumerate(mems):
        a(f"  %m{i} = stream.binding.subspan %b{i}[%c0] : !stream.binding -> {mt}")
    nproj = 1 if proj is None else 2 * len(proj)
    h0, init, hs = f"%m{nproj}", f"%m{nproj + 1}", f"%m{nbind - 1}"
    a(f"  %S = memref.alloca() : {SM}")
    a(f"  %h = memref.alloca() : memref<{H}xf32>")
    a(f"  %zv = arith.constant dense<0.0> : {V}")
    a(f"  %half = arith.constant dense<0.5> : {VG}")
    a(f"  scf.for %u = %c0 to %cH step %cTL {{\n"
      f"    %x = vector.load {h0}[%wg, %u] : {mems[nproj]}, {V}\n"
      f"    vector.store %x, %h[%u] : memref<{H}xf32>, {V}\n  }}")
    a("  scf.for %t = %c0 to %cT step %c1 {")
    a("    %tpar = arith.remui %t, %c2 : index\n    %odd = arith.cmpi eq, %tpar, %c1 : index")
    a(f"    scf.for %u = %c0 to %cNS step %cTL {{\n"
      f"      %x = vector.load {init}[%u] : {mems[nproj + 1]}, {V}\n"
      f"      vector.store %x, %S[%u] : {SM}, {V}\n    }}")
    if proj is not None:  # this frame's projection partial sums, added into S
        a("    %tb = arith.muli %t, %cB : index\n    %p = arith.addi %tb, %wg : index")
        for k, (nb, r) in enumerate(proj):
            pm, rm = f"%m{2 * k}", f"%m{2 * k + 1}"
            a(f"    %pnb{k} = arith.constant {nb} : index\n    %pr{k} = arith.constant {r} : index")
            a(f"    scf.for %blk = %c0 to %pnb{k} step %c1 {{")
            a(f"      scf.for %i = %c0 to %pr{k} step %c1 {{")
            a(f"        %v = memref.load {pm}[%blk, %p, %i] : {mems[2 * k]}")
            a(f"        %ri = memref.load {rm}[%blk, %i] : {mems[2 * k + 1]}")
            a("        %rx = arith.index_cast %ri : i32 to index")
            a(f"        %o = memref.load %S[%rx] : {SM}")
            a("        %q = arith.addf %o, %v : f32")
            a(f"        memref.store %q, %S[%rx] : {SM}")
            a("      }")
            a("    }")
    first = nproj + 2
    for k, bk in enumerate(buckets):
        nb, ng, c, _, _ = bk.values.shape
        vals, rows, cols = mems[first + 3 * k: first + 3 + 3 * k]
        mv, mr, mc = f"%m{first + 3 * k}", f"%m{first + 1 + 3 * k}", f"%m{first + 2 + 3 * k}"
        step = UJ if bk.strips else 1
        a(f"    %nb{k} = arith.constant {nb} : index\n    %ng{k} = arith.constant {ng} : index\n"
          f"    %cc{k} = arith.constant {c} : index\n    %st{k} = arith.constant {step} : index")
        # Every other step walks the blocks backwards: what the last step read last is
        # still in cache (a matrix a little larger than L2 is not streamed in full).
        a(f"    %nb1{k} = arith.constant {nb - 1} : index\n    %ng1{k} = arith.constant {ng - 1} : index")
        a(f"    scf.for %blk0 = %c0 to %nb{k} step %c1 {{")
        a(f"      %blkr = arith.subi %nb1{k}, %blk0 : index\n      %blk = arith.select %odd, %blkr, %blk0 : index")
        a(f"      scf.for %grp0 = %c0 to %ng{k} step %c1 {{")
        a(f"        %grpr = arith.subi %ng1{k}, %grp0 : index\n        %grp = arith.select %odd, %grpr, %grp0 : index")
        inits = ", ".join(f"%a{g} = %zv" for g in range(G))
        vts = ", ".join([V] * G)
        a(f"        %s:{G} = scf.for %j = %c0 to %cc{k} step %st{k} iter_args({inits}) -> ({vts}) {{")
        cur = [f"%a{g}" for g in range(G)]
        if bk.strips:  # four columns of h in one load, each broadcast from its lane
            a(f"          %j0 = memref.load {mc}[%blk, %j] : {cols}")
            a("          %jx = arith.index_cast %j0 : i32 to index")
            a(f"          %hq = vector.load %h[%jx] : memref<{H}xf32>, vector<{UJ}xf32>")
        for u in range(step):
            a(f"          %ju{u} = arith.addi %j, %c{u} : index")
            if bk.strips:
                a(f"          %x{u} = vector.extract %hq[{u}] : f32 from vector<{UJ}xf32>")
            else:
                a(f"          %ci{u} = memref.load {mc}[%blk, %ju{u}] : {cols}")
                a(f"          %cx{u} = arith.index_cast %ci{u} : i32 to index")
                a(f"          %x{u} = memref.load %h[%cx{u}] : memref<{H}xf32>")
            a(f"          %xb{u} = vector.broadcast %x{u} : f32 to {V}")
            for g in range(G):
                a(f"          %w{g}_{u} = vector.load {mv}[%blk, %grp, %ju{u}, %c{g}, %c0] : {vals}, {V}")
                a(f"          %n{g}_{u} = vector.fma %w{g}_{u}, %xb{u}, {cur[g]} : {V}")
                cur[g] = f"%n{g}_{u}"
        a(f"          scf.yield {', '.join(cur)} : {vts}")
        a("        }")
        # Scatter the G*TL sums into S (rows of one block are distinct).
        a("        %gbase = arith.muli %grp, %cG : index")
        for g in range(G):
            a(f"        %tb{g} = arith.addi %gbase, %c{g} : index")
            a(f"        %rb{g} = arith.muli %tb{g}, %cTL : index")
            for lane in range(tl):
                p = f"{g}_{lane}"
                a(f"        %ri{p} = arith.addi %rb{g}, %c{lane} : index")
                a(f"        %rw{p} = memref.load {mr}[%blk, %ri{p}] : {rows}")
                a(f"        %rx{p} = arith.index_cast %rw{p} : i32 to index")
                a(f"        %e{p} = vector.extract %s#{g}[{lane}] : f32 from {V}")
                a(f"        %o{p} = memref.load %S[%rx{p}] : {SM}")
                a(f"        %q{p} = arith.addf %o{p}, %e{p} : f32")
                a(f"        memref.store %q{p}, %S[%rx{p}] : {SM}")
        a("      }")
        a("    }")
    # Gates, GW units at a time.
    a("    scf.for %u = %c0 to %cH step %cGW {")
    a("      %uz = arith.addi %u, %cH : index\n      %un = arith.addi %uz, %cH : index")
    a("      %ui = arith.addi %u, %cIN : index")
    for nm, idx in (("r", "%u"), ("z", "%uz"), ("n", "%un")):
        a(f"      %gh_{nm} = vector.load %S[{idx}] : {SM}, {VG}")
    if proj is None:
        for nm, idx in (("r", "%u"), ("z", "%uz"), ("n", "%un")):
            a(f"      %gi_{nm} = vector.load %m0[%t, %wg, {idx}] : {mems[0]}, {VG}")
        a(f"      %p_r = arith.addf %gi_r, %gh_r : {VG}\n      %p_z = arith.addf %gi_z, %gh_z : {VG}")
        pre = {"r": "%p_r", "z": "%p_z"}
    else:  # S holds the projection too: acc_in its n part
        a(f"      %gi_n = vector.load %S[%ui] : {SM}, {VG}")
        pre = {"r": "%gh_r", "z": "%gh_z"}
    a(f"      %hv = vector.load %h[%u] : memref<{H}xf32>, {VG}")
    for nm in ("r", "z"):
        a(f"      %hp_{nm} = arith.mulf {pre[nm]}, %half : {VG}")
        a(f"      %th_{nm} = math.tanh %hp_{nm} : {VG}")
        a(f"      %{nm}g = math.fma %th_{nm}, %half, %half : {VG}")
    a(f"      %rn = arith.mulf %rg, %gh_n : {VG}")
    a(f"      %pn = arith.addf %gi_n, %rn : {VG}")
    a(f"      %ng = math.tanh %pn : {VG}")
    a(f"      %d = arith.subf %hv, %ng : {VG}")
    a(f"      %zd = arith.mulf %zg, %d : {VG}")
    a(f"      %hn = arith.addf %ng, %zd : {VG}")
    a(f"      vector.store %hn, %h[%u] : memref<{H}xf32>, {VG}")
    a(f"      vector.store %hn, {hs}[%t, %wg, %u] : {mems[-1]}, {VG}")
    a("    }")
    a("  }")
    a("  return")
    a("}")
    return "\n".join("    " + ln for ln in "\n".join(L).split("\n"))

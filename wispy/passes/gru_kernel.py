"""A GRU layer's whole recurrence as one hand-written CPU dispatch (MLIR text), its
recurrent matrix in BSPC form (wispy/passes/bspc.py).

IREE runs a recurrent loop written with tensors as a few dispatches per step (the
product, the combine of its partial sums, the gates): a 2x1024 GRU pruned 10x spends as
long between and around those 600 dispatches as in its products. Here one workgroup per
sequence runs every step itself:

    h = h0
    for t in 0..T:
        acc[0:3H] = b_hh;  acc[3H] = 0                      (the padding rows' slot)
        for each bucket, block b, group of G row tiles:
            sums[g] = sum_j values[b, grp, j, g, :] * h[cols[b, j]]   (TL rows per tile)
            acc[rows[b, tile*TL + l]] += sums[g][l]                   (rows kept in order)
        r = sigmoid(gi[t, 0:H] + acc[0:H]);  z = sigmoid(gi[t, H:2H] + acc[H:2H])
        n = tanh(gi[t, 2H:3H] + r * acc[2H:3H]);  h = n + z * (h - n);  hs[t] = h

(PyTorch's gate order and formulas; gi holds W_ih x_t + b_ih.) sigmoid(x) is written
0.5 + 0.5 tanh(x / 2), so the three gates share one set of polynomial constants (fewer
registers to rematerialize inside the loop on Arm). `acc` and `h` live on the stack.

Values are packed [nb, nt / G, c, G, TL]: a group's G tiles of TL rows at column j are
one contiguous run, read once per step. Column strips (RTMobile's pattern: each block
keeps whole columns j0..j0+c) load h four columns at a time; other blocks gather h per
column through `cols`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Stack the kernel may use for acc[3H + 1] and h[H] (IREE's CPU limit is 32 KiB).
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
    return hidden % shape.tl == 0 and hidden % shape.gw == 0 and 4 * (4 * hidden + 1) <= STACK_LIMIT_BYTES


@dataclass
class PackedBucket:
    values: np.ndarray   # [nb, nt / G, c, G, TL] float32, padding zero
    rows: np.ndarray     # [nb, nt * TL] int32: each packed row's row of W (3H: padding)
    cols: np.ndarray     # [nb, c] int32
    strips: bool         # every block keeps contiguous columns, c a multiple of UJ


def pack_bucket(values: np.ndarray, rows: np.ndarray, cols: np.ndarray, m: int,
                shape: KernelShape) -> PackedBucket:
    """A BSPC bucket (values [nb, r, c], rows [nb, r] with -1 padding, cols [nb, c]) in the
    kernel's tiled layout; padding rows point at acc[m], which nobody reads."""
    nb, r, c = values.shape
    tl, g = shape.tl, shape.g
    nt = -(-r // tl)
    nt = -(-nt // g) * g
    v = np.zeros((nb, nt * tl, c), np.float32)
    v[:, :r] = values
    rr = np.full((nb, nt * tl), m, np.int32)
    rr[:, :r] = np.where(rows < 0, m, rows)
    v = np.ascontiguousarray(v.reshape(nb, nt // g, g, tl, c).transpose(0, 1, 4, 2, 3))
    cols = np.ascontiguousarray(cols, dtype=np.int32)
    strips = c % shape.uj == 0 and bool(np.all(cols - cols[:, :1] == np.arange(c, dtype=np.int32)))
    return PackedBucket(v, rr, cols, strips)


def _types(T: int, B: int, H: int, buckets: list, shape: KernelShape) -> list[str]:
    """Shapes of the dispatch's operands, in binding order (the result last)."""
    M = 3 * H
    out = [f"{T}x{B}x{M}xf32", f"{B}x{H}xf32", f"{M}xf32"]
    for bk in buckets:
        nb, ng, c, g, tl = bk.values.shape
        out += [f"{nb}x{ng}x{c}x{g}x{tl}xf32", f"{nb}x{ng * g * tl}xi32", f"{nb}x{c}xi32"]
    return out + [f"{T}x{B}x{H}xf32"]


def executable(name: str, T: int, B: int, H: int, buckets: list, shape: KernelShape) -> str:
    """`stream.executable @name` whose export `@name` runs the recurrence of B sequences
    (one workgroup each), and `func.func private @name_call` that dispatches it on
    tensors: (gi [T,B,3H], h0 [B,H], b_hh [3H], then values, rows, cols per bucket) ->
    hs [T,B,H]."""
    types = _types(T, B, H, buckets, shape)
    body = _kernel(name, T, B, H, buckets, shape, types)
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


def _kernel(name: str, T: int, B: int, H: int, buckets: list, shape: KernelShape, types: list) -> str:
    M = 3 * H
    tl, G, UJ, GW = shape.tl, shape.g, shape.uj, shape.gw
    V, VG = f"vector<{tl}xf32>", f"vector<{GW}xf32>"
    L: list[str] = []
    a = L.append
    nbind = len(types)
    a(f"func.func @{name}(" + ", ".join(f"%b{i}: !stream.binding" for i in range(nbind)) + ") {")
    for i in range(max(tl, UJ, G, 4) + 1):
        a(f"  %c{i} = arith.constant {i} : index")
    a(f"  %cT = arith.constant {T} : index\n  %cH = arith.constant {H} : index\n  %cM = arith.constant {M} : index")
    a(f"  %cTL = arith.constant {tl} : index\n  %cG = arith.constant {G} : index\n  %cUJ = arith.constant {UJ} : index")
    a(f"  %cGW = arith.constant {GW} : index")
    a("  %wg = stream.dispatch.workgroup.id[0] : index")
    mems = [f"memref<{t}>" for t in types]
    for i, mt in enumerate(mems):
        a(f"  %m{i} = stream.binding.subspan %b{i}[%c0] : !stream.binding -> {mt}")
    gi, h0, bhh, hs = "%m0", "%m1", "%m2", f"%m{nbind - 1}"
    a(f"  %acc = memref.alloca() : memref<{M + 1}xf32>")
    a(f"  %h = memref.alloca() : memref<{H}xf32>")
    a(f"  %zv = arith.constant dense<0.0> : {V}")
    a(f"  %half = arith.constant dense<0.5> : {VG}")
    a("  %zf = arith.constant 0.0 : f32")
    a(f"  memref.store %zf, %acc[%cM] : memref<{M + 1}xf32>")
    a(f"  scf.for %u = %c0 to %cH step %cTL {{\n"
      f"    %x = vector.load {h0}[%wg, %u] : {mems[1]}, {V}\n"
      f"    vector.store %x, %h[%u] : memref<{H}xf32>, {V}\n  }}")
    a("  scf.for %t = %c0 to %cT step %c1 {")
    a(f"    scf.for %u = %c0 to %cM step %cTL {{\n"
      f"      %x = vector.load {bhh}[%u] : {mems[2]}, {V}\n"
      f"      vector.store %x, %acc[%u] : memref<{M + 1}xf32>, {V}\n    }}")
    for k, bk in enumerate(buckets):
        nb, ng, c, _, _ = bk.values.shape
        vals, rows, cols = mems[3 + 3 * k: 6 + 3 * k]
        mv, mr, mc = f"%m{3 + 3 * k}", f"%m{4 + 3 * k}", f"%m{5 + 3 * k}"
        step = UJ if bk.strips else 1
        a(f"    %nb{k} = arith.constant {nb} : index\n    %ng{k} = arith.constant {ng} : index\n"
          f"    %cc{k} = arith.constant {c} : index\n    %st{k} = arith.constant {step} : index")
        a(f"    scf.for %blk = %c0 to %nb{k} step %c1 {{")
        a(f"      scf.for %grp = %c0 to %ng{k} step %c1 {{")
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
        # Scatter the G*TL sums into acc (rows of one block are distinct).
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
                a(f"        %o{p} = memref.load %acc[%rx{p}] : memref<{M + 1}xf32>")
                a(f"        %q{p} = arith.addf %o{p}, %e{p} : f32")
                a(f"        memref.store %q{p}, %acc[%rx{p}] : memref<{M + 1}xf32>")
        a("      }")
        a("    }")
    # Gates, GW units at a time.
    a(f"    scf.for %u = %c0 to %cH step %cGW {{")
    a("      %uz = arith.addi %u, %cH : index\n      %un = arith.addi %uz, %cH : index")
    for nm, idx in (("r", "%u"), ("z", "%uz"), ("n", "%un")):
        a(f"      %gi_{nm} = vector.load {gi}[%t, %wg, {idx}] : {mems[0]}, {VG}")
        a(f"      %gh_{nm} = vector.load %acc[{idx}] : memref<{M + 1}xf32>, {VG}")
    a(f"      %hv = vector.load %h[%u] : memref<{H}xf32>, {VG}")
    for nm in ("r", "z"):
        a(f"      %p_{nm} = arith.addf %gi_{nm}, %gh_{nm} : {VG}")
        a(f"      %hp_{nm} = arith.mulf %p_{nm}, %half : {VG}")
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

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
    UJ columns per loop iteration, GW units per gate vector, 1 or 2 workgroups (cores) per
    sequence."""

    tl: int = 16
    g: int = 4
    uj: int = 4
    gw: int = 8
    # Two workers: GRU 2x1024 pruned 10x, 1.6-1.8 ms in 60 of 100 calls on this 2-core
    # host (local-task), but 3.6-8.0 ms in the rest: a worker the OS preempts holds the
    # other at a step's barrier. One worker: 2.6-2.9 ms in every call (local-sync). So 1
    # by default; 2 for machines with cores to spare (`wispy-recurrent-kernel{workers=2}`).
    workers: int = 1
    snake: bool = True  # one worker: every other step walks the blocks backwards


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
        nb, ng, c, g, lanes = bk.values.shape
        out += [f"{nb}x{ng}x{c}x{g}x{lanes}xf32", f"{nb}x{ng * g * lanes}xi32", f"{nb}x{c}xi32"]
    return out + [f"{T}x{B}x{H}xf32"]


def executable(name: str, T: int, B: int, H: int, proj, buckets: list, shape: KernelShape) -> str:
    """`stream.executable @name` whose export `@name` runs the recurrence of B sequences
    (one workgroup each), and `func.func private @name_call` that dispatches it on
    tensors (the operands of _types) -> hs [T,B,H]. `proj`: [(nb, r)] of the projection's
    buckets, or None when the kernel reads gi."""
    types = _types(T, B, H, proj, buckets, shape.tl)
    targs = ", ".join(f"%a{i}: tensor<{t}>" for i, t in enumerate(types[:-1]))
    names = ", ".join(f"%a{i}" for i in range(len(types) - 1))
    ttypes = ", ".join(f"tensor<{t}>" for t in types[:-1])
    if shape.workers == 1:
        body = _kernel(name, T, B, H, proj, buckets, shape, types)
        grid = "%b, %c1, %c1"
        call = f"""  %0 = flow.dispatch @{name}::@{name}({names}) : ({ttypes}) -> tensor<{types[-1]}>
  return %0 : tensor<{types[-1]}>"""
    else:
        body = _kernel2(name, T, B, H, proj, buckets, shape, types)
        grid = "%c2, %b, %c1"
        nc = B * T * counters(proj, buckets)
        scr = f"tensor<{B}x2x2x{scratch_size(H, shape)}xf32>"
        call = f"""  %zeros = arith.constant dense<0> : tensor<{nc}xi64>
  %0:3 = flow.dispatch @{name}::@{name}({names}, %zeros) : ({ttypes}, tensor<{nc}xi64>) -> (tensor<{types[-1]}>, %zeros, {scr})
  return %0#0 : tensor<{types[-1]}>"""
    return f"""stream.executable private @{name} {{
  stream.executable.export public @{name} workgroups() -> (index, index, index) {{
    %b = arith.constant {B} : index
    %c1 = arith.constant 1 : index
    %c2 = arith.constant 2 : index
    stream.return {grid} : index, index, index
  }}
  builtin.module {{
{body}
  }}
}}
func.func private @{name}_call({targs}) -> tensor<{types[-1]}> {{
{call}
}}
"""


def _group(a, k: int, bk, shape: KernelShape, H: int, S: str, SM: str, mv: str, mr: str, mc: str,
           vals: str, rows: str, cols: str) -> None:
    """One group of G row tiles of W_hh's bucket k (block %blk, group %grp): its sums over
    the block's columns of h, scattered into `S` (rows of one block are distinct)."""
    tl, G, UJ = shape.tl, shape.g, shape.uj
    V = f"vector<{tl}xf32>"
    step = UJ if bk.strips else 1
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
            a(f"        %o{p} = memref.load {S}[%rx{p}] : {SM}")
            a(f"        %q{p} = arith.addf %o{p}, %e{p} : f32")
            a(f"        memref.store %q{p}, {S}[%rx{p}] : {SM}")



def _add_projection(a, k: int, item: str, mems: list, SM: str) -> None:
    """Adds frame %p's partial sums of block `item` of the projection's bucket k (its
    %pr{k} rows) into S, each at its row's place."""
    a(f"      scf.for %i = %c0 to %pr{k} step %c1 {{")
    a(f"        %v = memref.load %m{2 * k}[{item}, %p, %i] : {mems[2 * k]}")
    a(f"        %ri = memref.load %m{2 * k + 1}[{item}, %i] : {mems[2 * k + 1]}")
    a("        %rx = arith.index_cast %ri : i32 to index")
    a(f"        %o = memref.load %S[%rx] : {SM}")
    a("        %q = arith.addf %o, %v : f32")
    a(f"        memref.store %q, %S[%rx] : {SM}")
    a("      }")


def _gates(a, ind: str, H: int, VG: str, gi, seq: str, hs: str, hs_type: str, keep_h: bool) -> None:
    """The gates of the GW units at %u, from %gh_r, %gh_z, %gh_n (W_hh's sums with the
    biases) and %gh_i (the projection's n part, in S), or with `gi` ((memref, type)) the
    projection read from gi[%t, seq]. Writes h_t to hs[%t, seq, %u], and to %h with
    `keep_h` (the one-worker kernel's own copy of h)."""
    if gi is not None:
        for nm, idx in (("r", "%u"), ("z", "%uz"), ("n", "%un")):
            a(f"{ind}%gi_{nm} = vector.load {gi[0]}[%t, {seq}, {idx}] : {gi[1]}, {VG}")
        a(f"{ind}%p_r = arith.addf %gi_r, %gh_r : {VG}\n{ind}%p_z = arith.addf %gi_z, %gh_z : {VG}")
        pre, gin = {"r": "%p_r", "z": "%p_z"}, "%gi_n"
    else:
        pre, gin = {"r": "%gh_r", "z": "%gh_z"}, "%gh_i"
    a(f"{ind}%hv = vector.load %h[%u] : memref<{H}xf32>, {VG}")
    for nm in ("r", "z"):
        a(f"{ind}%hp_{nm} = arith.mulf {pre[nm]}, %half : {VG}")
        a(f"{ind}%th_{nm} = math.tanh %hp_{nm} : {VG}")
        a(f"{ind}%{nm}g = math.fma %th_{nm}, %half, %half : {VG}")
    a(f"{ind}%rn = arith.mulf %rg, %gh_n : {VG}")
    a(f"{ind}%pn = arith.addf {gin}, %rn : {VG}")
    a(f"{ind}%ng = math.tanh %pn : {VG}")
    a(f"{ind}%d = arith.subf %hv, %ng : {VG}")
    a(f"{ind}%zd = arith.mulf %zg, %d : {VG}")
    a(f"{ind}%hn = arith.addf %ng, %zd : {VG}")
    if keep_h:
        a(f"{ind}vector.store %hn, %h[%u] : memref<{H}xf32>, {VG}")
    a(f"{ind}vector.store %hn, {hs}[%t, {seq}, %u] : {hs_type}, {VG}")


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
    a(f"    %snake_on = arith.constant {'true' if shape.snake else 'false'}\n"
      "    %snake = arith.andi %odd, %snake_on : i1")
    a(f"    scf.for %u = %c0 to %cNS step %cTL {{\n"
      f"      %x = vector.load {init}[%u] : {mems[nproj + 1]}, {V}\n"
      f"      vector.store %x, %S[%u] : {SM}, {V}\n    }}")
    if proj is not None:  # this frame's projection partial sums, added into S
        a("    %tb = arith.muli %t, %cB : index\n    %p = arith.addi %tb, %wg : index")
        for k, (nb, r) in enumerate(proj):
            a(f"    %pnb{k} = arith.constant {nb} : index\n    %pr{k} = arith.constant {r} : index")
            a(f"    scf.for %blk = %c0 to %pnb{k} step %c1 {{")
            _add_projection(a, k, "%blk", mems, SM)
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
        a(f"      %blkr = arith.subi %nb1{k}, %blk0 : index\n      %blk = arith.select %snake, %blkr, %blk0 : index")
        a(f"      scf.for %grp0 = %c0 to %ng{k} step %c1 {{")
        a(f"        %grpr = arith.subi %ng1{k}, %grp0 : index\n        %grp = arith.select %snake, %grpr, %grp0 : index")
        _group(a, k, bk, shape, H, "%S", SM, mv, mr, mc, vals, rows, cols)
        a("      }")
        a("    }")
    # Gates, GW units at a time.
    a("    scf.for %u = %c0 to %cH step %cGW {")
    a("      %uz = arith.addi %u, %cH : index\n      %un = arith.addi %uz, %cH : index")
    a("      %ui = arith.addi %u, %cIN : index")
    for nm, idx in (("r", "%u"), ("z", "%uz"), ("n", "%un")) + ((("i", "%ui"),) if proj else ()):
        a(f"      %gh_{nm} = vector.load %S[{idx}] : {SM}, {VG}")
    _gates(a, "      ", H, VG, None if proj else ("%m0", mems[0]), "%wg", hs, mems[-1], keep_h=True)
    a("    }")
    a("  }")
    a("  return")
    a("}")
    return "\n".join("    " + ln for ln in "\n".join(L).split("\n"))


# -- two workers ----------------------------------------------------------------------------
#
# The same recurrence split over two workgroups per sequence (workgroup x = worker, y =
# sequence), so two cores share each step's products and each keeps about half of W_hh
# in its own cache. No workgroup ever waits for one that may not have started:
#   * work is claimed, not assigned: per step and bucket a counter holds how many groups
#     were taken from the front (worker 0) and from the back (worker 1), so a worker
#     alone takes everything, and two take mostly the same halves step after step;
#   * each worker adds its products into its own S, publishes it to `scr`, then adds its
#     count to the step's done counter (worker 0 one more: its S holds the biases); the
#     gates wait for all groups and worker 0's S, and read worker 1's S only if it took
#     any work (its flag in the counter's high half);
#   * the gates' units are claimed in chunks the same way, and the next step waits until
#     every chunk of h is written.
# IREE hands out a dispatch's workgroups in order (a thread that runs both runs worker 0
# first), so worker 0 never waits for worker 1 to start; IREE's local-sync driver runs
# them one after the other and worker 0 does all the work.

def _claim(a, cnt: str, idx: str, q: int, var: str, n_in: str, do) -> str:
    """A loop claiming items 0..q-1 of counter cnt[idx] (front for worker 0, back for
    worker 1); `do(var)` emits one item's code. Returns the SSA name of the item count."""
    a(f"    %{var}n:2 = scf.while (%{var}c = {n_in}) : (index) -> (index, index) {{")
    a(f"      %{var}o = memref.generic_atomic_rmw {cnt}[{idx}] : memref<?xi64> {{")
    a(f"      ^bb0(%{var}cur: i64):")
    a(f"        %{var}lo = arith.andi %{var}cur, %mask : i64\n        %{var}hi = arith.shrui %{var}cur, %c32i : i64")
    a(f"        %{var}s = arith.addi %{var}lo, %{var}hi : i64")
    a(f"        %{var}av = arith.cmpi ult, %{var}s, %q{var} : i64")
    a(f"        %{var}nw = arith.addi %{var}cur, %inc : i64")
    a(f"        %{var}r = arith.select %{var}av, %{var}nw, %{var}cur : i64")
    a(f"        memref.atomic_yield %{var}r : i64")
    a("      }")
    a(f"      %{var}lo2 = arith.andi %{var}o, %mask : i64\n      %{var}hi2 = arith.shrui %{var}o, %c32i : i64")
    a(f"      %{var}s2 = arith.addi %{var}lo2, %{var}hi2 : i64")
    a(f"      %{var}ok = arith.cmpi ult, %{var}s2, %q{var} : i64")
    a(f"      %{var}bk = arith.subi %q1{var}, %{var}hi2 : i64")
    a(f"      %{var}it = arith.select %is0, %{var}lo2, %{var}bk : i64")
    a(f"      %{var}ix = arith.index_cast %{var}it : i64 to index")
    a(f"      scf.condition(%{var}ok) %{var}c, %{var}ix : index, index")
    a("    } do {")
    a(f"    ^bb0(%{var}c2: index, %{var}item: index):")
    do(f"%{var}item")
    a(f"      %{var}c3 = arith.addi %{var}c2, %c1 : index")
    a(f"      scf.yield %{var}c3 : index")
    a("    }")
    return f"%{var}n#0"


def _spin(a, cnt: str, idx: str, want: str, var: str) -> str:
    """Waits until the low half of cnt[idx] equals `want` (i64); returns the last value read."""
    a("    scf.while : () -> () {")
    a(f"      %{var}v = memref.atomic_rmw ori %z64, {cnt}[{idx}] : (i64, memref<?xi64>) -> i64")
    a(f"      %{var}l = arith.andi %{var}v, %mask : i64")
    a(f"      %{var}w = arith.cmpi ne, %{var}l, {want} : i64")
    a(f"      scf.condition(%{var}w)")
    a("    } do {\n      scf.yield\n    }")
    a(f"    %{var}f = memref.atomic_rmw ori %z64, {cnt}[{idx}] : (i64, memref<?xi64>) -> i64")
    return f"%{var}f"


def counters(proj, buckets: list) -> int:
    """i64 counters per sequence and step: a claim counter per projection and W_hh
    bucket, the products' done counter, the gates' claim and done counters."""
    return (0 if proj is None else len(proj)) + len(buckets) + 3


def gate_chunk(H: int, shape: KernelShape) -> int:
    """Units per claimed chunk of the gates."""
    ch = max(shape.gw, H // 8)
    while H % ch:
        ch -= shape.gw
    return ch


def _kernel2(name: str, T: int, B: int, H: int, proj, buckets: list, shape: KernelShape, types: list) -> str:
    """The two-worker kernel; bindings: the operands of _types without the result, the
    counters [B*T*NC] (zeros, updated in place), hs, and scr [B, 2, 2, NS] (each worker's
    S, double-buffered by step parity)."""
    M, NS = 3 * H, scratch_size(H, shape)
    tl, GW = shape.tl, shape.gw
    NC = counters(proj, buckets)
    P = 0 if proj is None else len(proj)
    CH = gate_chunk(H, shape)
    V, VG = f"vector<{tl}xf32>", f"vector<{GW}xf32>"
    SM = f"memref<{NS}xf32>"
    L: list[str] = []
    a = L.append
    ops = types[:-1]
    nops = len(ops)
    a(f"func.func @{name}(" + ", ".join(f"%b{i}: !stream.binding" for i in range(nops + 3)) + ") {")
    for i in range(max(tl, shape.uj, shape.g, 4) + 1):
        a(f"  %c{i} = arith.constant {i} : index")
    a(f"  %cT = arith.constant {T} : index\n  %cB = arith.constant {B} : index\n  %cH = arith.constant {H} : index")
    a(f"  %cNS = arith.constant {NS} : index\n  %cTL = arith.constant {tl} : index\n  %cG = arith.constant {shape.g} : index")
    a(f"  %cGW = arith.constant {GW} : index\n  %cIN = arith.constant {M} : index\n  %cNC = arith.constant {NC} : index")
    a(f"  %cCH = arith.constant {CH} : index")
    a("  %mask = arith.constant 4294967295 : i64\n  %c32i = arith.constant 32 : i64\n  %z64 = arith.constant 0 : i64")
    a("  %one64 = arith.constant 1 : i64\n  %hi1 = arith.constant 4294967296 : i64")
    a("  %wk = stream.dispatch.workgroup.id[0] : index\n  %wb = stream.dispatch.workgroup.id[1] : index")
    a("  %is0 = arith.cmpi eq, %wk, %c0 : index")
    a("  %inc = arith.select %is0, %one64, %hi1 : i64")
    mems = [f"memref<{t}>" for t in ops]
    for i, mt in enumerate(mems):
        a(f"  %m{i} = stream.binding.subspan %b{i}[%c0] : !stream.binding -> {mt}")
    a(f"  %ncnt = arith.constant {B * T * NC} : index")
    a(f"  %cnt = stream.binding.subspan %b{nops}[%c0] : !stream.binding -> memref<?xi64>{{%ncnt}}")
    a(f"  %hs = stream.binding.subspan %b{nops + 1}[%c0] : !stream.binding -> memref<{types[-1]}>")
    a(f"  %scr = stream.binding.subspan %b{nops + 2}[%c0] : !stream.binding -> memref<{B}x2x2x{NS}xf32>")
    hsm, scm = f"memref<{types[-1]}>", f"memref<{B}x2x2x{NS}xf32>"
    nproj = 1 if proj is None else 2 * len(proj)
    h0, init = f"%m{nproj}", f"%m{nproj + 1}"
    a(f"  %S = memref.alloca() : {SM}")
    a(f"  %h = memref.alloca() : memref<{H}xf32>")
    a(f"  %zv = arith.constant dense<0.0> : {V}\n  %zgw = arith.constant dense<0.0> : {VG}")
    a(f"  %half = arith.constant dense<0.5> : {VG}")
    a("  scf.for %t = %c0 to %cT step %c1 {")
    a("    %par = arith.remui %t, %c2 : index")
    a("    %seqt = arith.muli %wb, %cT : index\n    %seqt1 = arith.addi %seqt, %t : index")
    a("    %cbase = arith.muli %seqt1, %cNC : index")
    # h of the last step (h0, or what the gates wrote), into the worker's own copy
    a("    %first = arith.cmpi eq, %t, %c0 : index")
    a("    scf.if %first {")
    a(f"      scf.for %u = %c0 to %cH step %cTL {{\n"
      f"        %x = vector.load {h0}[%wb, %u] : {mems[nproj]}, {V}\n"
      f"        vector.store %x, %h[%u] : memref<{H}xf32>, {V}\n      }}")
    a("    } else {")
    a("      %tp = arith.subi %t, %c1 : index")
    a(f"      scf.for %u = %c0 to %cH step %cTL {{\n"
      f"        %x = vector.load %hs[%tp, %wb, %u] : {hsm}, {V}\n"
      f"        vector.store %x, %h[%u] : memref<{H}xf32>, {V}\n      }}")
    a("    }")
    # S: worker 0 from the biases, worker 1 from zero
    a("    scf.if %is0 {")
    a(f"      scf.for %u = %c0 to %cNS step %cTL {{\n"
      f"        %x = vector.load {init}[%u] : {mems[nproj + 1]}, {V}\n"
      f"        vector.store %x, %S[%u] : {SM}, {V}\n      }}")
    a("    } else {")
    a(f"      scf.for %u = %c0 to %cNS step %cTL {{\n        vector.store %zv, %S[%u] : {SM}, {V}\n      }}")
    a("    }")
    n = "%c0"
    qtot = 0
    if proj is not None:
        a("    %ptb = arith.muli %t, %cB : index\n    %p = arith.addi %ptb, %wb : index")
        for k, (nb, r) in enumerate(proj):
            var = f"pj{k}"
            a(f"    %q{var} = arith.constant {nb} : i64\n    %q1{var} = arith.constant {nb - 1} : i64")
            a(f"    %pr{k} = arith.constant {r} : index")
            a(f"    %cix{var} = arith.constant {k} : index\n    %ci{var} = arith.addi %cbase, %cix{var} : index")

            def do(item, k=k):
                _add_projection(a, k, item, mems, SM)
            n = _claim(a, "%cnt", f"%ci{var}", nb, var, n, do)
            qtot += nb
    first = nproj + 2
    for k, bk in enumerate(buckets):
        nb, ng, c, _, _ = bk.values.shape
        vals, rows, cols = mems[first + 3 * k: first + 3 + 3 * k]
        mv, mr, mc = f"%m{first + 3 * k}", f"%m{first + 1 + 3 * k}", f"%m{first + 2 + 3 * k}"
        step = shape.uj if bk.strips else 1
        var = f"hh{k}"
        a(f"    %ng{k} = arith.constant {ng} : index\n"
          f"    %cc{k} = arith.constant {c} : index\n    %st{k} = arith.constant {step} : index")
        a(f"    %q{var} = arith.constant {nb * ng} : i64\n    %q1{var} = arith.constant {nb * ng - 1} : i64")
        a(f"    %cix{var} = arith.constant {P + k} : index\n    %ci{var} = arith.addi %cbase, %cix{var} : index")

        def do(item, k=k, bk=bk, mv=mv, mr=mr, mc=mc, vals=vals, rows=rows, cols=cols):
            a(f"      %blk = arith.divui {item}, %ng{k} : index\n      %grp = arith.remui {item}, %ng{k} : index")
            _group(a, k, bk, shape, H, "%S", SM, mv, mr, mc, vals, rows, cols)
        n = _claim(a, "%cnt", f"%ci{var}", nb * ng, var, n, do)
        qtot += nb * ng
    # publish S, then count this worker's work (worker 0: +1, its S holds the biases;
    # worker 1: its flag in the high half when it took any)
    a("    %slot = arith.addi %wk, %c0 : index")
    a(f"    scf.for %u = %c0 to %cNS step %cTL {{\n"
      f"      %x = vector.load %S[%u] : {SM}, {V}\n"
      f"      vector.store %x, %scr[%wb, %slot, %par, %u] : {scm}, {V}\n    }}")
    a(f"    %nd = arith.index_cast {n} : index to i64")
    a("    %took = arith.cmpi ne, %nd, %z64 : i64")
    a("    %flag = arith.select %took, %hi1, %z64 : i64")
    a("    %extra = arith.select %is0, %one64, %flag : i64")
    a("    %add = arith.addi %nd, %extra : i64")
    a(f"    %cdx = arith.constant {P + len(buckets)} : index\n    %cd = arith.addi %cbase, %cdx : index")
    a("    %dold = memref.atomic_rmw addi %add, %cnt[%cd] : (i64, memref<?xi64>) -> i64")
    a(f"    %qall = arith.constant {qtot + 1} : i64")
    fin = _spin(a, "%cnt", "%cd", "%qall", "bm")
    a(f"    %w1f = arith.shrui {fin}, %c32i : i64\n    %w1 = arith.cmpi ne, %w1f, %z64 : i64")
    # gates, claimed in chunks of CH units
    a(f"    %cgx = arith.constant {P + len(buckets) + 1} : index\n    %cg = arith.addi %cbase, %cgx : index")
    a(f"    %cgdx = arith.constant {P + len(buckets) + 2} : index\n    %cgd = arith.addi %cbase, %cgdx : index")
    a(f"    %nch = arith.constant {H // CH} : i64")
    a("    %gn:2 = scf.while (%gc = %c0) : (index) -> (index, index) {")
    a("      %go = memref.atomic_rmw addi %one64, %cnt[%cg] : (i64, memref<?xi64>) -> i64")
    a("      %gok = arith.cmpi ult, %go, %nch : i64")
    a("      %gcx = arith.index_cast %go : i64 to index")
    a("      %gu0 = arith.muli %gcx, %cCH : index")
    a("      scf.condition(%gok) %gc, %gu0 : index, index")
    a("    } do {")
    a("    ^bb0(%gc2: index, %gu: index):")
    a("      %gend = arith.addi %gu, %cCH : index")
    a("      scf.for %u = %gu to %gend step %cGW {")
    a("        %uz = arith.addi %u, %cH : index\n        %un = arith.addi %uz, %cH : index")
    a("        %ui = arith.addi %u, %cIN : index")
    for nm, idx in (("r", "%u"), ("z", "%uz"), ("n", "%un"), ("i", "%ui")):
        if nm == "i" and proj is None:
            continue
        a(f"        %s0{nm} = vector.load %scr[%wb, %c0, %par, {idx}] : {scm}, {VG}")
        a(f"        %s1{nm}r = vector.load %scr[%wb, %c1, %par, {idx}] : {scm}, {VG}")
        a(f"        %s1{nm} = arith.select %w1, %s1{nm}r, %zgw : {VG}")
        a(f"        %gh_{nm} = arith.addf %s0{nm}, %s1{nm} : {VG}")
    _gates(a, "        ", H, VG, None if proj else ("%m0", mems[0]), "%wb", "%hs", hsm, keep_h=False)
    a("      }")
    a("      %gc3 = arith.addi %gc2, %c1 : index")
    a("      scf.yield %gc3 : index")
    a("    }")
    a("    %gnd = arith.index_cast %gn#0 : index to i64")
    a("    %gdold = memref.atomic_rmw addi %gnd, %cnt[%cgd] : (i64, memref<?xi64>) -> i64")
    _spin(a, "%cnt", "%cgd", "%nch", "bg")
    a("  }")
    a("  return")
    a("}")
    return "\n".join("    " + ln for ln in "\n".join(L).split("\n"))

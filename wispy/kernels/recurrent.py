"""A GRU or LSTM layer's whole recurrence as one hand-written CPU dispatch (MLIR text),
its recurrent matrix in BSPC form (wispy/passes/bspc.py).

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
one contiguous run, read once per step. Rows that do not fill a whole group form a
bucket of their own with one shorter group (pack_rows), not a group padded to G tiles. Column strips (RTMobile's pattern: each block
keeps whole columns j0..j0+c) load h four columns at a time; other blocks gather h per
column through `cols`.

An LSTM layer (`cell="lstm"`, PyTorch's gate order i, f, g, o) runs the same products
over W_hh's 4H rows; S is acc[4H] (the projection's rows all add into acc), then the
padding slot at 4H, and its initial value b_hh (+ b_ih with a block-sparse W_ih). The
gates:

        i = sigmoid(acc[0:H]);  f = sigmoid(acc[H:2H]);  g = tanh(acc[2H:3H])
        o = sigmoid(acc[3H:4H]);  c = f * c + i * g;  h = o * tanh(c);  hs[t] = h; cs[t] = c

(plus gi's four parts with a dense W_ih). c_{t-1} is read back from cs[t-1] (c0 at t=0):
no stack for it, and a task of the several-worker kernel that runs twice reads the same
c (see "several workers").
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

CELLS = ("gru", "lstm")


def gates(cell: str) -> int:
    """Rows of W_hh per hidden unit: 3 for a GRU (r, z, n), 4 for an LSTM (i, f, g, o)."""
    return {"gru": 3, "lstm": 4}[cell]


# Stack the kernel may use for S[4H + TL] and h[H] (IREE's CPU limit is 32 KiB).
STACK_LIMIT_BYTES = 24 * 1024


@dataclass(frozen=True)
class KernelShape:
    """How the kernel is cut for a target: TL rows per tile (a vector), G tiles in flight,
    UJ columns per loop iteration, GW units per gate vector, workgroups (cores) per
    sequence."""

    tl: int = 16
    g: int = 4
    uj: int = 4
    gw: int = 8
    # Workers > 1: the hidden units are cut into that many parts, each part's rows of W_hh
    # (about 1/workers of it, which then fits a core's L2) a task per step that any
    # worker may claim; see "several workers" below. 1 here; on a host with two cores or
    # more the pass takes two, or more when W_hh outgrows a core's L2
    # (recurrent_kernel.auto_workers).
    workers: int = 1
    # Polls on a claimed, unfinished part before running it too. Longer than a part's
    # task (a few to ~20 us): a worker that steals a part that is merely late pulls the
    # other's weights through its own cache every step. One poll is two atomics on a line
    # both cores write (tens of ns); a preempted worker costs the others this wait once.
    # Each call after 0.1 s idle, two workers, 1024 against 64 polls: LSTM 2x512 dense 6.38
    # against 7.54 ms; GRU 2x1024 pruned 10x 1.58 against 1.64 (benchmarks/
    # recurrent_workers.py --steal-spins 64,1024 --workers 2 --drivers local-task
    # --idle-ms 100, with --cell lstm --prune 0 for the LSTM).
    steal_spins: int = 1024
    snake: bool = True  # every other step walks the blocks backwards
    # AArch64: each 16-row tile of W_hh read with one `ld1 {4 x q}` (four q registers in
    # one instruction) instead of two `ldp`; the products are then 4 fmla + 1 load per
    # column and tile, not 4 + 2 (see _group). Only with tl == 16.
    ld1x4: bool = False
    # Independent chains of fmas a group keeps in flight: a group of G tiles has G (with
    # ld1x4, 4G) accumulators, each fma waiting on the last one's result (4 cycles); with
    # fewer chains than (fma pipes x latency) the products wait on latency, not on memory.
    # A part's rows rarely fill whole groups: GRU 2x1024 pruned 20x keeps ~78 rows per
    # strip and part, a group of 4 tiles and one of 1. Columns then add into
    # accumulator_sets() sets of accumulators, summed after the loop. GRU 2x1024, both
    # kernels' dispatches back to back, 8 chains against one per tile: pruned 245x 0.19
    # against 0.28 ms, 100x 0.26 against 0.30; 10x to 50x stream W_hh at the L2's rate
    # either way (benchmarks/back_to_back.py --model gru --prune 245 --option
    # "wispy-recurrent-kernel{chains=1}" --dispatches wispy_gru_sequence).
    chains: int = 8


def accumulator_sets(accumulators: int, uj: int, chains: int) -> int:
    """Sets of accumulators for a group's loop over columns (uj a loop iteration): enough
    for `chains` chains of fmas, a divisor of uj (column u adds into set u % sets)."""
    want = -(-chains // max(accumulators, 1))
    return max(k for k in (1, 2, 4, 8, 16) if k <= max(1, min(want, uj)) and uj % k == 0)


def shape_for(target) -> KernelShape:
    """Tiles that suit the target's vector registers (16 NEON q registers on armv7). The
    host's gates take 16 units a vector (one AVX-512 register): GRU 2x1024 back to back on
    local-sync, 20x 1.26-1.31 against 1.36-1.42 ms with 8, 10x 2.58-2.69 against
    2.67-2.73 ms (benchmarks/back_to_back.py --option "wispy-recurrent-kernel{gate-width=8}").
    Arm keeps 8 (two q registers): the gates' polynomials need registers. arm64 loads each
    16-row tile with one `ld1` and takes 16 columns of h a loop iteration: the GRU 2x1024
    pruned 10x in 48.5 M arm64 instructions against 53.8 M with `ldp` and 4 columns
    (8 columns: 49.0 M; `benchmarks/back_to_back.py --model gru --prune 10 --target arm64
    --option "wispy-recurrent-kernel{wide-loads=0 columns=4}"`)."""
    name = getattr(target, "name", "host")
    if name == "armv7":  # 16 q registers: no more accumulators than the tiles'
        return KernelShape(tl=8, g=2, uj=4, gw=4, chains=4)
    if name == "host":
        return KernelShape(gw=16)
    if name == "arm64":
        return KernelShape(uj=16, ld1x4=True)
    return KernelShape()


def supports(hidden: int, shape: KernelShape) -> bool:
    """True when the kernel takes this hidden size: whole vectors of units, and acc and h
    within the stack budget."""
    return hidden % shape.tl == 0 and hidden % shape.gw == 0 and \
        4 * (5 * hidden + shape.tl) <= STACK_LIMIT_BYTES


def scratch_size(hidden: int, shape: KernelShape) -> int:
    """S: acc[3H], acc_in[H], and a whole vector holding the padding rows' slot (4H)."""
    return 4 * hidden + shape.tl


def scratch_rows(rows: np.ndarray, hidden: int, cell: str = "gru") -> np.ndarray:
    """Rows of W_ih (-1: padding) as positions in S: a GRU's r and z rows in acc as they
    are, its n rows in acc_in; an LSTM's rows all in acc as they are; padding in the slot
    at 4H."""
    out = np.where(rows < 0, 4 * hidden, rows)
    if cell == "lstm":
        return out.astype(np.int32)
    return np.where(rows >= 2 * hidden, rows + hidden, out).astype(np.int32)


def initial_scratch(b_ih, b_hh, hidden: int, with_projection: bool, shape: KernelShape,
                    cell: str = "gru") -> np.ndarray:
    """S at the start of every step (see the module docstring)."""
    s = np.zeros(scratch_size(hidden, shape), np.float32)
    m = gates(cell) * hidden
    s[:m] = b_hh
    if cell == "lstm":
        if with_projection:
            s[:m] += b_ih
        return s
    if with_projection:
        s[:2 * hidden] += b_ih[:2 * hidden]
        s[3 * hidden:4 * hidden] = b_ih[2 * hidden:]
    return s


@dataclass
class PackedBucket:
    values: np.ndarray   # [nb, nt / G, c, G, TL] float32, padding zero
    rows: np.ndarray     # [nb, nt * TL] int32: each packed row's row of W (4H: padding)
    cols: np.ndarray     # [nb, c] int32
    # Columns of h per loop iteration: with column strips (every block keeps contiguous
    # columns) shape.uj, or 8 or 4 when c is not its multiple; 1 (one gathered column) else.
    uj: int = 1

    @property
    def strips(self) -> bool:
        """Every block keeps contiguous columns, read uj at a time from h."""
        return self.uj > 1


def pack_bucket(values: np.ndarray, rows: np.ndarray, cols: np.ndarray, pad: int,
                shape: KernelShape) -> PackedBucket:
    """A BSPC bucket of W_hh (values [nb, r, c], rows [nb, r] with -1 padding, cols [nb, c])
    in the kernel's tiled layout; padding rows point at S[pad] (4H), which nobody reads."""
    nb, r, c = values.shape
    tl, g = shape.tl, shape.g
    nt = -(-(-(-r // tl)) // g) * g
    v = np.zeros((nb, nt * tl, c), np.float32)
    v[:, :r] = values
    rr = np.full((nb, nt * tl), pad, np.int32)
    rr[:, :r] = np.where(rows < 0, pad, rows)
    v = np.ascontiguousarray(v.reshape(nb, nt // g, g, tl, c).transpose(0, 1, 4, 2, 3))
    cols = np.ascontiguousarray(cols, dtype=np.int32)
    contiguous = bool(np.all(cols - cols[:, :1] == np.arange(c, dtype=np.int32)))
    uj = next((u for u in (shape.uj, 8, 4) if u <= shape.uj and c % u == 0), 1) if contiguous else 1
    return PackedBucket(v, rr, cols, uj)


def pack_rows(values: np.ndarray, rows: np.ndarray, cols: np.ndarray, pad: int,
              shape: KernelShape) -> list[PackedBucket]:
    """pack_bucket without padding to whole groups: the rows that fill whole groups of G
    tiles, then (if any) the rest as a bucket of one shorter group."""
    r = values.shape[1]
    tiles = -(-r // shape.tl)
    split = min(r, tiles // shape.g * shape.g * shape.tl)
    out = []
    if split:
        out.append(pack_bucket(values[:, :split], rows[:, :split], cols, pad, shape))
    if split < r:
        g = -(-(r - split) // shape.tl)
        out.append(pack_bucket(values[:, split:], rows[:, split:], cols, pad, dataclasses.replace(shape, g=g)))
    return out


def results_of(cell: str) -> int:
    """The dispatch's results, as many as the state's parts: hs (h0), and an LSTM's cs (c0)."""
    return 2 if cell == "lstm" else 1


def _state_and_results(T: int, B: int, H: int, cell: str) -> tuple:
    """The initial state operands (h0, and c0 for an LSTM) and the results (hs, and cs for
    an LSTM)."""
    n = results_of(cell)
    return [f"{B}x{H}xf32"] * n, [f"{T}x{B}x{H}xf32"] * n


def _types(T: int, B: int, H: int, proj: list, buckets: list, tl: int, cell: str = "gru") -> list[str]:
    """Shapes of the dispatch's operands in binding order, the results last: gi [T,B,G*H]
    (or, per projection bucket, prod [nb,T*B,r] and prow [nb,r]), h0 (and an LSTM's c0),
    init, then values, rows, cols per W_hh bucket; hs (and an LSTM's cs)."""
    state, results = _state_and_results(T, B, H, cell)
    out = [f"{T}x{B}x{gates(cell) * H}xf32"] if proj is None else \
        [t for nb, r in proj for t in (f"{nb}x{T * B}x{r}xf32", f"{nb}x{r}xi32")]
    out += state + [f"{4 * H + tl}xf32"]
    for bk in buckets:
        nb, ng, c, g, lanes = bk.values.shape
        out += [f"{nb}x{ng}x{c}x{g}x{lanes}xf32", f"{nb}x{ng * g * lanes}xi32", f"{nb}x{c}xi32"]
    return out + results


def executable(name: str, T: int, B: int, H: int, proj, buckets: list, shape: KernelShape,
               cell: str = "gru") -> str:
    """`stream.executable @name` whose export `@name` runs the recurrence of B sequences
    (one workgroup each), and `func.func private @name_call` that dispatches it on
    tensors (the operands of _types) -> hs [T,B,H] (an LSTM: hs, cs [T,B,H]). `proj`:
    [(nb, r)] of the projection's buckets, or None when the kernel reads gi."""
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {CELLS}, not {cell!r}")
    if shape.workers > 1:  # `buckets`: the parts (plan_parts)
        types = _types_parts(T, B, H, proj, buckets, shape.tl, cell)
    else:
        types = _types(T, B, H, proj, buckets, shape.tl, cell)
    nres = results_of(cell)
    ops, res = types[:-nres], types[-nres:]
    targs = ", ".join(f"%a{i}: tensor<{t}>" for i, t in enumerate(ops))
    names = ", ".join(f"%a{i}" for i in range(len(ops)))
    ttypes = ", ".join(f"tensor<{t}>" for t in ops)
    rtypes = ", ".join(f"tensor<{t}>" for t in res)
    rets = ", ".join(f"%0#{i}" for i in range(nres))
    if shape.workers == 1:
        body = _kernel(name, T, B, H, proj, buckets, shape, types, cell)
        grid = "%b, %c1, %c1"
        if nres == 1:
            call = f"""  %0 = flow.dispatch @{name}::@{name}({names}) : ({ttypes}) -> tensor<{res[0]}>
  return %0 : tensor<{res[0]}>"""
        else:
            call = f"""  %0:{nres} = flow.dispatch @{name}::@{name}({names}) : ({ttypes}) -> ({rtypes})
  return {rets} : {rtypes}"""
    else:
        body = _kernel_parts(name, T, B, H, proj, buckets, shape, types, cell)
        grid = "%cw, %b, %c1"
        nc = counter_words(T, B)
        call = f"""  %zeros = arith.constant dense<0> : tensor<{nc}xi64>
  %0:{nres + 1} = flow.dispatch @{name}::@{name}({names}, %zeros) : ({ttypes}, tensor<{nc}xi64>) -> ({rtypes}, %zeros)
  return {rets} : {rtypes}"""
    ret = rtypes if nres == 1 else f"({rtypes})"
    return f"""stream.executable private @{name} {{
  stream.executable.export public @{name} workgroups() -> (index, index, index) {{
    %b = arith.constant {B} : index
    %c1 = arith.constant 1 : index
    %cw = arith.constant {shape.workers} : index
    stream.return {grid} : index, index, index
  }}
  builtin.module {{
{body}
  }}
}}
func.func private @{name}_call({targs}) -> {ret} {{
{call}
}}
"""


LD1X4 = "llvm.aarch64.neon.ld1x4.v4f32.p0"
_Q4 = "!llvm.struct<(vector<4xf32>, vector<4xf32>, vector<4xf32>, vector<4xf32>)>"


def _group(a, k: int, bk, shape: KernelShape, H: int, S: str, SM: str, mv: str, mr: str, mc: str,
           vals: str, rows: str, cols: str) -> None:
    """One group of the bucket's G row tiles (G as packed: the target's, or fewer for the
    last rows, see pack_rows) of W_hh's bucket k (block %blk, group %grp): its sums over
    the block's columns of h, scattered into `S` (rows of one block are distinct)."""
    tl, UJ = shape.tl, bk.uj
    G = bk.values.shape[3]
    wide = shape.ld1x4 and tl == 16
    # Accumulators: one vector<tl> per tile, or with ld1x4 four vector<4> per tile (the
    # registers the load fills), so each fma is one fmla on a loaded register.
    nq = 4 if wide else 1
    V = "vector<4xf32>" if wide else f"vector<{tl}xf32>"
    zero = "%zq" if wide else "%zv"
    nacc = G * nq
    # K sets of accumulators, column u adding into set u % K: G * nq chains of fmas alone
    # would each wait on the last fma's latency (see KernelShape.chains).
    K = accumulator_sets(nacc, UJ, shape.chains)
    inits = ", ".join(f"%a{i} = {zero}" for i in range(nacc * K))
    vts = ", ".join([V] * (nacc * K))
    if wide:
        # Byte address of the group's first tile at column 0; a column's G tiles follow
        # it contiguously (values packed [nb, ng, c, G, TL], the binding at offset 0).
        _, ng, c, _, _ = bk.values.shape
        a(f"        %zq = arith.constant dense<0.0> : vector<4xf32>")
        a(f"        %vbase = memref.extract_aligned_pointer_as_index {mv} : {vals} -> index")
        a(f"        %cng{k} = arith.constant {ng} : index\n        %cgc{k} = arith.constant {c * G * tl * 4} : index")
        a(f"        %bg0 = arith.muli %blk, %cng{k} : index\n        %bg1 = arith.addi %bg0, %grp : index")
        a(f"        %bg2 = arith.muli %bg1, %cgc{k} : index\n        %gaddr = arith.addi %vbase, %bg2 : index")
        a("        %gptr = arith.index_cast %gaddr : index to i64")
        # The pointer steps 64 bytes a tile through the group's contiguous [c, G, TL]
        # run. The step goes through an empty asm so that LLVM cannot fold the chain of
        # adds into offsets from one base (ld1 has no offset form; each load would take an
        # add): each load then takes the post-incrementing form, `ld1 {...}, [x], x_step`.
        a("        %c64i = arith.constant 64 : i64")
        a('        %pstep = llvm.inline_asm "", "=r,0" %c64i : (i64) -> i64')
        inits += ", %p0 = %gptr"
        vts += ", i64"
    a(f"        %s:{nacc * K + int(wide)} = scf.for %j = %c0 to %cc{k} step %st{k} iter_args({inits}) -> ({vts}) {{")
    cur = [f"%a{i}" for i in range(nacc * K)]
    ptr = "%p0"
    if bk.strips:  # uj columns of h in one load, each broadcast from its lane
        a(f"          %j0 = memref.load {mc}[%blk, %j] : {cols}")
        a("          %jx = arith.index_cast %j0 : i32 to index")
        a(f"          %hq = vector.load %h[%jx] : memref<{H}xf32>, vector<{UJ}xf32>")
    for u in range(UJ):
        a(f"          %ju{u} = arith.addi %j, %c{u} : index")
        if bk.strips:
            a(f"          %x{u} = vector.extract %hq[{u}] : f32 from vector<{UJ}xf32>")
        else:
            a(f"          %ci{u} = memref.load {mc}[%blk, %ju{u}] : {cols}")
            a(f"          %cx{u} = arith.index_cast %ci{u} : i32 to index")
            a(f"          %x{u} = memref.load %h[%cx{u}] : memref<{H}xf32>")
        a(f"          %xb{u} = vector.broadcast %x{u} : f32 to {V}")
        for g in range(G):
            if wide:
                a(f"          %pt{g}_{u} = llvm.inttoptr {ptr} : i64 to !llvm.ptr")
                a(f"          %pn{g}_{u} = arith.addi {ptr}, %pstep : i64")
                ptr = f"%pn{g}_{u}"
                a(f'          %ld{g}_{u} = llvm.call_intrinsic "{LD1X4}"(%pt{g}_{u}) : (!llvm.ptr) -> {_Q4}')
                for q in range(nq):
                    i = (u % K) * nacc + g * nq + q
                    a(f"          %w{i}_{u} = llvm.extractvalue %ld{g}_{u}[{q}] : {_Q4}")
                    a(f"          %n{i}_{u} = vector.fma %w{i}_{u}, %xb{u}, {cur[i]} : {V}")
                    cur[i] = f"%n{i}_{u}"
            else:
                i = (u % K) * nacc + g
                a(f"          %w{g}_{u} = vector.load {mv}[%blk, %grp, %ju{u}, %c{g}, %c0] : {vals}, {V}")
                a(f"          %n{g}_{u} = vector.fma %w{g}_{u}, %xb{u}, {cur[i]} : {V}")
                cur[i] = f"%n{g}_{u}"
    a(f"          scf.yield {', '.join(cur + ([ptr] if wide else []))} : {vts}")
    a("        }")
    sums = [f"%s#{i}" for i in range(nacc)]
    for i in range(nacc):  # the sets' sums
        for kk in range(1, K):
            a(f"        %sum{i}_{kk} = arith.addf {sums[i]}, %s#{kk * nacc + i} : {V}")
            sums[i] = f"%sum{i}_{kk}"
    # Scatter the G*TL sums into S (rows of one block are distinct).
    a(f"        %cgs = arith.constant {G} : index")
    a("        %gbase = arith.muli %grp, %cgs : index")
    lanes = tl // nq
    for g in range(G):
        a(f"        %tb{g} = arith.addi %gbase, %c{g} : index")
        a(f"        %rb{g} = arith.muli %tb{g}, %cTL : index")
        for lane in range(tl):
            p = f"{g}_{lane}"
            a(f"        %ri{p} = arith.addi %rb{g}, %c{lane} : index")
            a(f"        %rw{p} = memref.load {mr}[%blk, %ri{p}] : {rows}")
            a(f"        %rx{p} = arith.index_cast %rw{p} : i32 to index")
            a(f"        %e{p} = vector.extract {sums[g * nq + lane // lanes]}[{lane % lanes}] : f32 from {V}")
            a(f"        %o{p} = memref.load {S}[%rx{p}] : {SM}")
            a(f"        %q{p} = arith.addf %o{p}, %e{p} : f32")
            a(f"        memref.store %q{p}, {S}[%rx{p}] : {SM}")


def _add_projection(a, item: str, count: str, mems: list, prod: int, prow: int, SM: str,
                    pidx: int = -1) -> None:
    """Adds frame %p's partial sums of block `item` of a projection bucket (operand `prod`,
    [nb, frames, r]) into S, `count` of them, each at its row's place (operand `prow`);
    with `pidx`, the i-th sum is prod's row pidx[item, i] (a part's rows, see plan_parts)."""
    a(f"      scf.for %i = %c0 to {count} step %c1 {{")
    if pidx >= 0:
        a(f"        %pix = memref.load %m{pidx}[{item}, %i] : {mems[pidx]}")
        a("        %pxx = arith.index_cast %pix : i32 to index")
    a(f"        %v = memref.load %m{prod}[{item}, %p, {'%pxx' if pidx >= 0 else '%i'}] : {mems[prod]}")
    a(f"        %ri = memref.load %m{prow}[{item}, %i] : {mems[prow]}")
    a("        %rx = arith.index_cast %ri : i32 to index")
    a(f"        %o = memref.load %S[%rx] : {SM}")
    a("        %q = arith.addf %o, %v : f32")
    a(f"        memref.store %q, %S[%rx] : {SM}")
    a("      }")


def _bucket_products(a, k: int, bk, at: int, mems: list, shape: KernelShape, H: int, SM: str) -> None:
    """W_hh's bucket k (operands at, at + 1, at + 2: values, rows, cols), every block and
    group, their sums added into S. Every other step (%snake) walks the blocks and groups
    backwards: what the last step read last is still in cache (a matrix a little larger
    than L2 is not streamed in full)."""
    nb, ng, c, _, _ = bk.values.shape
    vals, rows, cols = mems[at: at + 3]
    a(f"    %nb{k} = arith.constant {nb} : index\n    %ng{k} = arith.constant {ng} : index\n"
      f"    %cc{k} = arith.constant {c} : index\n    %st{k} = arith.constant {bk.uj} : index")
    a(f"    %nb1{k} = arith.constant {nb - 1} : index\n    %ng1{k} = arith.constant {ng - 1} : index")
    a(f"    scf.for %blk0 = %c0 to %nb{k} step %c1 {{")
    a(f"      %blkr = arith.subi %nb1{k}, %blk0 : index\n      %blk = arith.select %snake, %blkr, %blk0 : index")
    a(f"      scf.for %grp0 = %c0 to %ng{k} step %c1 {{")
    a(f"        %grpr = arith.subi %ng1{k}, %grp0 : index\n        %grp = arith.select %snake, %grpr, %grp0 : index")
    _group(a, k, bk, shape, H, "%S", SM, f"%m{at}", f"%m{at + 1}", f"%m{at + 2}", vals, rows, cols)
    a("      }")
    a("    }")


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


def _lstm_gates(a, ind: str, H: int, VG: str, gi, seq: str, hs: str, cs: str, state_type: str,
                keep_h: bool, c0: str, c0_type: str) -> None:
    """An LSTM's gates of the GW units at %u, from %gh_i, %gh_f, %gh_g, %gh_o (W_hh's
    sums with the biases, and with a block-sparse W_ih its partial sums), or with `gi`
    ((memref, type)) plus the projection read from gi[%t, seq]. c_{t-1} comes from c0
    (%first) or cs[%tp]; writes h_t to hs[%t, seq, %u] (and %h with `keep_h`), c_t to
    cs[%t, seq, %u]."""
    pre = {}
    for nm, idx in _gate_inputs("lstm", gi):
        if gi is not None:
            a(f"{ind}%gi_{nm} = vector.load {gi[0]}[%t, {seq}, {idx}] : {gi[1]}, {VG}")
            a(f"{ind}%p_{nm} = arith.addf %gi_{nm}, %gh_{nm} : {VG}")
            pre[nm] = f"%p_{nm}"
        else:
            pre[nm] = f"%gh_{nm}"
    for nm in ("i", "f", "o"):  # sigmoid(x) = 0.5 + 0.5 tanh(x / 2)
        a(f"{ind}%hp_{nm} = arith.mulf {pre[nm]}, %half : {VG}")
        a(f"{ind}%th_{nm} = math.tanh %hp_{nm} : {VG}")
        a(f"{ind}%{nm}s = math.fma %th_{nm}, %half, %half : {VG}")
    a(f"{ind}%gt = math.tanh {pre['g']} : {VG}")
    a(f"{ind}%cp = scf.if %first -> ({VG}) {{\n"
      f"{ind}  %cpa = vector.load {c0}[{seq}, %u] : {c0_type}, {VG}\n{ind}  scf.yield %cpa : {VG}\n"
      f"{ind}}} else {{\n"
      f"{ind}  %cpb = vector.load {cs}[%tp, {seq}, %u] : {state_type}, {VG}\n{ind}  scf.yield %cpb : {VG}\n"
      f"{ind}}}")
    a(f"{ind}%fc = arith.mulf %fs, %cp : {VG}")
    a(f"{ind}%cn = math.fma %is, %gt, %fc : {VG}")
    a(f"{ind}%tcn = math.tanh %cn : {VG}")
    a(f"{ind}%hn = arith.mulf %os, %tcn : {VG}")
    if keep_h:
        a(f"{ind}vector.store %hn, %h[%u] : memref<{H}xf32>, {VG}")
    a(f"{ind}vector.store %hn, {hs}[%t, {seq}, %u] : {state_type}, {VG}")
    a(f"{ind}vector.store %cn, {cs}[%t, {seq}, %u] : {state_type}, {VG}")


def _gate_inputs(cell: str, proj) -> tuple:
    """(name, index) of each pre-activation the gates read from S: a GRU's r, z, n (and
    acc_in's i with a block-sparse W_ih), an LSTM's i, f, g, o."""
    if cell == "lstm":
        return (("i", "%u"), ("f", "%uf"), ("g", "%ug"), ("o", "%uo"))
    return (("r", "%u"), ("z", "%uz"), ("n", "%un")) + ((("i", "%ui"),) if proj is not None else ())


def _gate_indices(cell: str, ind: str) -> str:
    """The places in S (and gi) of unit %u's pre-activations (see _gate_inputs)."""
    if cell == "lstm":
        return f"{ind}%uf = arith.addi %u, %cH : index\n{ind}%ug = arith.addi %uf, %cH : index\n" \
               f"{ind}%uo = arith.addi %ug, %cH : index"
    return f"{ind}%uz = arith.addi %u, %cH : index\n{ind}%un = arith.addi %uz, %cH : index\n" \
           f"{ind}%ui = arith.addi %u, %cIN : index"


def _kernel(name: str, T: int, B: int, H: int, proj, buckets: list, shape: KernelShape, types: list,
            cell: str = "gru") -> str:
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
    lstm = cell == "lstm"
    h0, c0 = f"%m{nproj}", f"%m{nproj + 1}"
    at_init = nproj + 1 + int(lstm)
    init = f"%m{at_init}"
    hs, cs = (f"%m{nbind - 2}", f"%m{nbind - 1}") if lstm else (f"%m{nbind - 1}", None)
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
    if lstm:  # c_{t-1}: c0, or cs[t-1]
        a("    %first = arith.cmpi eq, %t, %c0 : index\n    %tp0 = arith.subi %t, %c1 : index")
        a("    %tp = arith.select %first, %c0, %tp0 : index")
    a(f"    scf.for %u = %c0 to %cNS step %cTL {{\n"
      f"      %x = vector.load {init}[%u] : {mems[at_init]}, {V}\n"
      f"      vector.store %x, %S[%u] : {SM}, {V}\n    }}")
    if proj is not None:  # this frame's projection partial sums, added into S
        a("    %tb = arith.muli %t, %cB : index\n    %p = arith.addi %tb, %wg : index")
        for k, (nb, r) in enumerate(proj):
            a(f"    %pnb{k} = arith.constant {nb} : index\n    %pr{k} = arith.constant {r} : index")
            a(f"    scf.for %blk = %c0 to %pnb{k} step %c1 {{")
            _add_projection(a, "%blk", f"%pr{k}", mems, 2 * k, 2 * k + 1, SM)
            a("    }")
    first = at_init + 1
    for k, bk in enumerate(buckets):
        _bucket_products(a, k, bk, first + 3 * k, mems, shape, H, SM)
    # Gates, GW units at a time.
    a("    scf.for %u = %c0 to %cH step %cGW {")
    a(_gate_indices(cell, "      "))
    for nm, idx in _gate_inputs(cell, proj):
        a(f"      %gh_{nm} = vector.load %S[{idx}] : {SM}, {VG}")
    gi = None if proj else ("%m0", mems[0])
    if lstm:
        _lstm_gates(a, "      ", H, VG, gi, "%wg", hs, cs, mems[-1], True, c0, mems[nproj + 1])
    else:
        _gates(a, "      ", H, VG, gi, "%wg", hs, mems[-1], keep_h=True)
    a("    }")
    a("  }")
    a("  return")
    a("}")
    return "\n".join("    " + ln for ln in "\n".join(L).split("\n"))


# -- several workers ------------------------------------------------------------------------
#
# With `workers` W > 1 the hidden units are cut into W parts of H/W units. A part's task
# at step t computes its units' rows of W_hh (and of the projection) into the worker's own
# S, then their gates, and writes h_t of those units to hs[t]. Its inputs (h_{t-1} in
# hs[t-1], the weights, the projection) never change once written, so a task may run
# twice: both runs write the same values. Per sequence and step, two i64 words of bits:
# parts claimed and parts done. A worker claims parts in its own order (first its own
# part, whose weights its core's cache keeps step after step), runs them, marks them
# done, and goes on to step t+1 once every part of step t is done. Nothing ever waits on
# a worker that has not started (one alone claims every part: IREE's local-sync driver
# runs the workgroups one after the other), and one that the OS preempts inside a task
# holds the others only `steal_spins` polls: then they run that part themselves.

@dataclass
class PartPlan:
    """One part's units [lo, hi), its rows of the projection's buckets (bucket j, nb,
    rows kept rk, positions in the bucket's rows pidx [nb, rk], places in S prow), and its
    rows of W_hh in the kernel's tiles."""
    lo: int
    hi: int
    proj: list
    buckets: list


def _part_rows(rows: np.ndarray, H: int, lo: int, hi: int) -> np.ndarray:
    """Per block of a [nb, r] row array (-1: padding), the positions of the rows whose unit
    (row mod H) lies in [lo, hi), padded with -1 to the most any block has: [nb, rk]."""
    units = np.where(rows >= 0, rows % H, -1)
    sel = (units >= lo) & (units < hi)
    rk = int(sel.sum(1).max()) if sel.size else 0
    out = np.full((rows.shape[0], rk), -1, np.int64)
    for i in range(rows.shape[0]):
        idx = np.nonzero(sel[i])[0]
        out[i, :len(idx)] = idx
    return out


def plan_parts(hh_buckets: list, ih_buckets, H: int, shape: KernelShape, cell: str = "gru") -> list:
    """The W parts of a layer: W_hh's BSPC buckets (values [nb, r, c], rows, cols) and the
    projection's (None with a dense W_ih) split by the units their rows feed."""
    W = shape.workers
    plans = []
    for k in range(W):
        lo, hi = k * H // W, (k + 1) * H // W
        proj = []
        for j, bk in enumerate(ih_buckets or []):
            idx = _part_rows(bk.rows, H, lo, hi)
            if idx.shape[1] == 0:
                continue
            rows = np.where(idx >= 0, np.take_along_axis(bk.rows, np.maximum(idx, 0), 1), -1)
            proj.append((j, idx.shape[0], idx.shape[1], np.maximum(idx, 0).astype(np.int32),
                         scratch_rows(rows, H, cell)))
        buckets = []
        for bk in hh_buckets:
            idx = _part_rows(bk.rows, H, lo, hi)
            if idx.shape[1] == 0:
                continue
            safe = np.maximum(idx, 0)
            vals = np.where((idx >= 0)[:, :, None], np.take_along_axis(bk.values, safe[:, :, None], 1), 0)
            rows = np.where(idx >= 0, np.take_along_axis(bk.rows, safe, 1), -1)
            buckets += pack_rows(vals.astype(np.float32), rows, bk.cols, 4 * H, shape)
        plans.append(PartPlan(lo, hi, proj, buckets))
    return plans


def parts_supported(hidden: int, workers: int, shape: KernelShape) -> bool:
    """Parts of whole vectors (row tiles and gate vectors)."""
    part = hidden // workers
    return hidden % workers == 0 and part % shape.tl == 0 and part % shape.gw == 0 and workers <= 32


def _types_parts(T: int, B: int, H: int, proj, plans: list, tl: int, cell: str = "gru") -> list[str]:
    """Operands of the several-worker dispatch, the results last: gi [T,B,G*H] (or prod
    [nb,T*B,r] per projection bucket), per part its projection rows (pidx, prow), h0 (and
    an LSTM's c0), init, per part its W_hh buckets (values, rows, cols); hs (and cs)."""
    state, results = _state_and_results(T, B, H, cell)
    out = [f"{T}x{B}x{gates(cell) * H}xf32"] if proj is None else [f"{nb}x{T * B}x{r}xf32" for nb, r in proj]
    for pl in plans:
        for _j, nb, rk, _i, _r in pl.proj:
            out += [f"{nb}x{rk}xi32", f"{nb}x{rk}xi32"]
    out += state + [f"{4 * H + tl}xf32"]
    for pl in plans:
        for bk in pl.buckets:
            nb, ng, c, g, lanes = bk.values.shape
            out += [f"{nb}x{ng}x{c}x{g}x{lanes}xf32", f"{nb}x{ng * g * lanes}xi32", f"{nb}x{c}xi32"]
    return out + results


def counter_words(T: int, B: int) -> int:
    """i64 words of the several-worker kernel: parts claimed and parts done, per sequence
    and step."""
    return 2 * T * B


def _task(a, part: int, pl: PartPlan, proj, plans: list, H: int, shape: KernelShape, mems: list,
          NS: int, cell: str = "gru") -> None:
    """Part `part`'s task of step %t (sequence %wb): h_{t-1} into %h, its entries of S,
    the projection's and W_hh's rows, the gates of its units into hs[t] (and an LSTM's c_t
    into cs[t], from c_{t-1} in cs[t-1])."""
    lstm = cell == "lstm"
    tl, GW = shape.tl, shape.gw
    V, VG = f"vector<{tl}xf32>", f"vector<{GW}xf32>"
    SM = f"memref<{NS}xf32>"
    ind = "          "
    nproj = 1 if proj is None else len(proj)
    # operand positions (see _types_parts)
    pos = nproj
    proj_ops = []
    for q, pq in enumerate(plans):
        for entry in pq.proj:
            if q == part:
                proj_ops.append((entry, pos, pos + 1))
            pos += 2
    h0, c0, init = pos, pos + 1, pos + 1 + int(lstm)
    pos = init + 1
    hh_ops = []
    for q, pq in enumerate(plans):
        for bk in pq.buckets:
            if q == part:
                hh_ops.append((bk, pos))
            pos += 3
    body = []
    e = body.append
    e("scf.if %first {")
    e(f"  scf.for %u = %c0 to %cH step %cTL {{\n    %x = vector.load %m{h0}[%wb, %u] : {mems[h0]}, {V}\n"
      f"    vector.store %x, %h[%u] : memref<{H}xf32>, {V}\n  }}")
    e("} else {")
    e(f"  scf.for %u = %c0 to %cH step %cTL {{\n    %x = vector.load %hs[%tp, %wb, %u] : {mems[-1]}, {V}\n"
      f"    vector.store %x, %h[%u] : memref<{H}xf32>, {V}\n  }}")
    e("}")
    e(f"%plo = arith.constant {pl.lo} : index\n%phi = arith.constant {pl.hi} : index")
    for g, base in enumerate((0, H, 2 * H, 3 * H) if proj is not None or lstm else (0, H, 2 * H)):
        e(f"%ilo{g} = arith.constant {pl.lo + base} : index\n%ihi{g} = arith.constant {pl.hi + base} : index")
        e(f"scf.for %u = %ilo{g} to %ihi{g} step %cTL {{\n  %x = vector.load %m{init}[%u] : {mems[init]}, {V}\n"
          f"  vector.store %x, %S[%u] : {SM}, {V}\n}}")
    for (j, nb, rk, _i, _r), pi, pr in proj_ops:
        e(f"%pnb{j} = arith.constant {nb} : index\n%prk{j} = arith.constant {rk} : index")
        e(f"scf.for %blk = %c0 to %pnb{j} step %c1 {{")
        _add_projection(e, "%blk", f"%prk{j}", mems, j, pr, SM, pidx=pi)
        e("}")
    for k, (bk, at) in enumerate(hh_ops):
        _bucket_products(e, k, bk, at, mems, shape, H, SM)
    e("scf.for %u = %plo to %phi step %cGW {")
    e(_gate_indices(cell, "  "))
    for nm, idx in _gate_inputs(cell, proj):
        e(f"  %gh_{nm} = vector.load %S[{idx}] : {SM}, {VG}")
    gi = None if proj is not None else ("%m0", mems[0])
    if lstm:
        _lstm_gates(e, "  ", H, VG, gi, "%wb", "%hs", "%cs", mems[-1], False, f"%m{c0}", mems[c0])
    else:
        _gates(e, "  ", H, VG, gi, "%wb", "%hs", mems[-1], keep_h=False)
    e("}")
    for ln in "\n".join(body).split("\n"):
        a(ind + ln)


def _kernel_parts(name: str, T: int, B: int, H: int, proj, plans: list, shape: KernelShape,
                  types: list, cell: str = "gru") -> str:
    """The several-worker kernel; bindings: the operands of _types_parts without the
    results, the counter words [2*B*T] (zeros, updated in place), hs (and an LSTM's cs)."""
    nres = results_of(cell)
    NS, W = scratch_size(H, shape), shape.workers
    tl, GW = shape.tl, shape.gw
    V, VG = f"vector<{tl}xf32>", f"vector<{GW}xf32>"
    SM = f"memref<{NS}xf32>"
    L: list[str] = []
    a = L.append
    ops = types[:-nres]
    nops = len(ops)
    a(f"func.func @{name}(" + ", ".join(f"%b{i}: !stream.binding" for i in range(nops + 1 + nres)) + ") {")
    for i in range(max(tl, shape.uj, shape.g, 4, W) + 1):
        a(f"  %c{i} = arith.constant {i} : index")
    a(f"  %cT = arith.constant {T} : index\n  %cB = arith.constant {B} : index\n  %cH = arith.constant {H} : index")
    a(f"  %cTL = arith.constant {tl} : index\n  %cG = arith.constant {shape.g} : index")
    a(f"  %cGW = arith.constant {GW} : index\n  %cIN = arith.constant {3 * H} : index\n  %cW = arith.constant {W} : index")
    a(f"  %steal = arith.constant {shape.steal_spins} : index")
    a("  %true = arith.constant true")
    a(f"  %z64 = arith.constant 0 : i64\n  %one64 = arith.constant 1 : i64\n  %all = arith.constant {(1 << W) - 1} : i64")
    a("  %wk = stream.dispatch.workgroup.id[0] : index\n  %wb = stream.dispatch.workgroup.id[1] : index")
    mems = [f"memref<{t}>" for t in types]
    for i, mt in enumerate(mems[:-nres]):
        a(f"  %m{i} = stream.binding.subspan %b{i}[%c0] : !stream.binding -> {mt}")
    a(f"  %ncnt = arith.constant {counter_words(T, B)} : index")
    a(f"  %cnt = stream.binding.subspan %b{nops}[%c0] : !stream.binding -> memref<?xi64>{{%ncnt}}")
    a(f"  %hs = stream.binding.subspan %b{nops + 1}[%c0] : !stream.binding -> {mems[-1]}")
    if nres == 2:
        a(f"  %cs = stream.binding.subspan %b{nops + 2}[%c0] : !stream.binding -> {mems[-1]}")
    a(f"  %S = memref.alloca() : {SM}")
    a(f"  %h = memref.alloca() : memref<{H}xf32>")
    a(f"  %zv = arith.constant dense<0.0> : {V}")
    a(f"  %half = arith.constant dense<0.5> : {VG}")
    # %alone: every part so far was claimed here (no other worker has run yet); such a
    # worker claims the parts in reverse order on odd steps, the whole matrix's snake
    a("  %fin = scf.for %t = %c0 to %cT step %c1 iter_args(%alone = %true) -> (i1) {")
    a("    %seqt = arith.muli %wb, %cT : index\n    %seqt1 = arith.addi %seqt, %t : index")
    a("    %ccl = arith.muli %seqt1, %c2 : index\n    %cdn = arith.addi %ccl, %c1 : index")
    a("    %first = arith.cmpi eq, %t, %c0 : index\n    %tp0 = arith.subi %t, %c1 : index")
    a("    %tp = arith.select %first, %c0, %tp0 : index")
    a("    %tpar = arith.remui %t, %c2 : index\n    %odd = arith.cmpi eq, %tpar, %c1 : index")
    a(f"    %snake_on = arith.constant {'true' if shape.snake else 'false'}\n"
      "    %snake = arith.andi %odd, %snake_on : i1")
    a("    %rev0 = arith.andi %snake, %alone : i1")
    if proj is not None:
        a("    %ptb = arith.muli %t, %cB : index\n    %p = arith.addi %ptb, %wb : index")
    # pick a part: claim one (own part first), or, after `steal` idle polls, run one that
    # is claimed but not done; W: none
    a("    %wl:2 = scf.while (%spins = %c0, %mine = %z64) : (index, i64) -> (index, i64) {")
    a("      %dn = memref.atomic_rmw ori %z64, %cnt[%cdn] : (i64, memref<?xi64>) -> i64")
    a("      %more = arith.cmpi ne, %dn, %all : i64")
    a("      %cl = memref.atomic_rmw ori %z64, %cnt[%ccl] : (i64, memref<?xi64>) -> i64")
    a("      %open = arith.cmpi ne, %cl, %all : i64")
    a("      %kc = scf.if %open -> (index) {")
    a("        %r = scf.for %i = %c0 to %cW step %c1 iter_args(%got = %cW) -> (index) {")
    a("          %free = arith.cmpi eq, %got, %cW : index")
    a("          %g2 = scf.if %free -> (index) {")
    a("            %ki0 = arith.addi %wk, %i : index\n            %kr0 = arith.addi %wk, %cW : index")
    a("            %kr1 = arith.subi %kr0, %c1 : index\n            %kr = arith.subi %kr1, %i : index")
    a("            %ki1 = arith.select %rev0, %kr, %ki0 : index\n            %ki = arith.remui %ki1, %cW : index")
    a("            %kb = arith.index_cast %ki : index to i64\n            %bit = arith.shli %one64, %kb : i64")
    a("            %old = memref.atomic_rmw ori %bit, %cnt[%ccl] : (i64, memref<?xi64>) -> i64")
    a("            %had = arith.andi %old, %bit : i64\n            %ismine = arith.cmpi eq, %had, %z64 : i64")
    a("            %g3 = arith.select %ismine, %ki, %got : index")
    a("            scf.yield %g3 : index")
    a("          } else {\n            scf.yield %got : index\n          }")
    a("          scf.yield %g2 : index")
    a("        }")
    a("        scf.yield %r : index")
    a("      } else {\n        scf.yield %cW : index\n      }")
    a("      %none = arith.cmpi eq, %kc, %cW : index")
    a("      %kcb0 = arith.index_cast %kc : index to i64\n      %kcb1 = arith.shli %one64, %kcb0 : i64")
    a("      %kcb = arith.select %none, %z64, %kcb1 : i64\n      %mine2 = arith.ori %mine, %kcb : i64")
    a("      %late = arith.cmpi uge, %spins, %steal : index")
    a("      %stealing = arith.andi %none, %late : i1")
    a("      %k = scf.if %stealing -> (index) {")
    a("        %r = scf.for %i = %c0 to %cW step %c1 iter_args(%got = %cW) -> (index) {")
    a("          %free = arith.cmpi eq, %got, %cW : index")
    a("          %ki0 = arith.addi %wk, %i : index\n          %ki = arith.remui %ki0, %cW : index")
    a("          %kb = arith.index_cast %ki : index to i64\n          %bit = arith.shli %one64, %kb : i64")
    a("          %had = arith.andi %dn, %bit : i64\n          %undone = arith.cmpi eq, %had, %z64 : i64")
    a("          %take = arith.andi %free, %undone : i1")
    a("          %g3 = arith.select %take, %ki, %got : index")
    a("          scf.yield %g3 : index")
    a("        }")
    a("        scf.yield %r : index")
    a("      } else {\n        scf.yield %kc : index\n      }")
    a("      %idle = arith.cmpi eq, %k, %cW : index")
    a("      %sp1 = arith.addi %spins, %c1 : index")
    a("      %spn = arith.select %idle, %sp1, %c0 : index")
    a("      %work = arith.xori %idle, %true : i1")
    a("      scf.if %work {")
    for part, pl in enumerate(plans):
        a(f"        %is{part} = arith.cmpi eq, %k, %c{part} : index")
        a(f"        scf.if %is{part} {{")
        _task(a, part, pl, proj, plans, H, shape, mems, NS, cell)
        a("        }")
    a("        %kb = arith.index_cast %k : index to i64\n        %bit = arith.shli %one64, %kb : i64")
    a("        %dd = memref.atomic_rmw ori %bit, %cnt[%cdn] : (i64, memref<?xi64>) -> i64")
    a("      }")
    # a part run here may have been the last: look again before deciding to stop
    a("      scf.condition(%more) %spn, %mine2 : index, i64")
    a("    } do {")
    a("    ^bb0(%sp: index, %mn: i64):")
    a("      scf.yield %sp, %mn : index, i64")
    a("    }")
    a("    %allmine = arith.cmpi eq, %wl#1, %all : i64")
    a("    %alone2 = arith.andi %alone, %allmine : i1")
    a("    scf.yield %alone2 : i1")
    a("  }")
    a("  return")
    a("}")
    return "\n".join("    " + ln for ln in "\n".join(L).split("\n"))

"""wispy-recurrent-kernel: each `wispy::gru_sequence` or `wispy::lstm_sequence` op (a GRU
or LSTM layer over all frames, emitted at export for CPU targets when its recurrent
matrix is block-sparse or small, see wispy.dialects.recurrent) becomes the input
projection of every frame and one hand-written dispatch that runs every step
(wispy/kernels/recurrent/).

Runs on the imported torch-dialect module (the torch phase): the op's operands are
taken as builtin tensors, the matrices are read from their parameters and packed in
BSPC buckets (wispy/dialects/bspc.py, the zeros need no mask), stored as new parameters,
and the op is replaced by
  * the projection: with a block-sparse W_ih (its zeros saving `min-gain` times the work)
    one batched matmul per bucket over the compact blocks, whose partial sums the kernel
    adds at each step (no combine dispatch); else gi = x W_ih^T + b_ih, one matmul;
  * a call of a function that dispatches the kernel, W_hh in the kernel's row tiles.
IREE's input conversion keeps the dispatch as it is.

Fails (with the op's location) on what the export should not have emitted: a matrix
that is not a constant, dynamic sizes, or a hidden size the kernel does not take.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from wispy._mlir import ir
from wispy.ir import builders as b
from wispy.dialects import bspc
from wispy.dialects import recurrent as recurrent_ops
from wispy.kernels import recurrent as rnn_kernel
from wispy.passes.base import PassContext, PassFailure, WispyPass, walk_ops
from wispy.ir.matching import erase_if_dead

# The ops the export emits, and the cell each runs.
OP_CELLS = {"torch.wispy.gru_sequence": "gru", "torch.wispy.lstm_sequence": "lstm"}


@dataclass(frozen=True)
class RecurrentKernelPass(WispyPass):
    name = "wispy-recurrent-kernel"
    max_buckets: int = 4   # kernels per matrix (blocks padded to a few sizes)
    min_gain: float = 2.0  # least work a block-sparse W_ih must save for the compact projection
    row_tile: int = -1     # rows per tile (a vector); -1: chosen per target
    tiles: int = -1        # row tiles in flight; -1: chosen per target
    gate_width: int = -1   # units per gate vector; -1: chosen per target
    columns: int = -1      # columns of h per loop iteration (column strips); -1: per target
    wide_loads: int = -1   # AArch64 `ld1` of four q registers per row tile: 1 on, 0 off, -1 per target
    workers: int = -1      # workgroups (cores) per sequence; -1: per target and matrix (auto_workers)
    steal_spins: int = -1  # several workers: idle polls before running a late worker's part
    snake: bool = True     # one worker: every other step walks W_hh's blocks backwards
    chains: int = -1       # independent fma chains per group of row tiles; -1: per target
    dense: bool = False    # both matrices packed whole, zeros included (block_sparse=False)

    def run(self, module: ir.Operation, context: PassContext) -> None:
        ops = [op for op in walk_ops(module, "torch.operator")
               if ir.StringAttr(op.attributes["name"]).value in OP_CELLS]
        if not ops:
            return
        over = {k: v for k, v in (("tl", self.row_tile), ("g", self.tiles), ("gw", self.gate_width),
                                  ("workers", self.workers), ("uj", self.columns),
                                  ("chains", self.chains)) if v > 0}
        if self.wide_loads >= 0:
            over["ld1x4"] = bool(self.wide_loads)
        if self.steal_spins >= 0:
            over["steal_spins"] = self.steal_spins
        shape = dataclasses.replace(rnn_kernel.shape_for(context.target), snake=self.snake, **over)
        target = getattr(context.target, "name", None)
        if shape.ld1x4 and target not in (None, "arm64"):  # None: `wispy opt`, IR only
            raise PassFailure(f"wispy-recurrent-kernel: wide-loads=1 is AArch64's ld1 (arm64 targets), "
                              f"not {target}'s", ops[0].location)
        if shape.gw > shape.tl:  # gate vectors no wider than a row tile (parts are whole tiles)
            shape = dataclasses.replace(shape, gw=shape.tl)
        derived = b.DerivedWeights(context.weights)
        packed: dict = {}
        for n, op in enumerate(ops):
            cell = OP_CELLS[ir.StringAttr(op.attributes["name"]).value]
            with op.location:
                _lower(op, f"wispy_{cell}_sequence_{n}", cell, shape, self, context, derived, packed)
        if context.weights is not None:
            b.erase_unused_globals(module, context.weights)


def _constant(v: ir.Value, op: ir.Operation, context: PassContext, what: str):
    """(array, key) of the constant behind torch value `v`; None for `torch.constant.none`."""
    owner = v.owner.operation if isinstance(v.owner, ir.OpView) else v.owner
    if isinstance(owner, ir.Operation) and owner.name == "torch.constant.none":
        return None
    const = b.constant_value(b.to_builtin(v, op), context.weights)
    if const is None:
        raise PassFailure(f"{op_label(op)}: {what} is not a constant", op.location)
    return const


def _pack(w: np.ndarray, max_buckets: int, dense: bool = False):
    """(BSPC of w, multiply-adds a product takes); `dense`: w whole, one block."""
    w = np.ascontiguousarray(w, dtype=np.float32)
    if dense:
        m, n = w.shape
        return bspc.pack(w, (np.array([0, m]), np.array([0, n])), keep_all=True), m * n
    grid, cost = bspc.detect(w)
    return bspc.pack(w, grid, max_buckets=max_buckets), cost


def _sparse_projection(w_ih: np.ndarray, opts: "RecurrentKernelPass"):
    """W_ih in BSPC when its zeros save `min-gain` times the work, else None (the kernel
    reads gi from one dense matmul); with `dense`, None without looking."""
    if opts.dense:
        return None
    sp, cost = _pack(w_ih, opts.max_buckets)
    return sp if w_ih.size / max(cost, 1) >= opts.min_gain else None


def op_label(op: ir.Operation) -> str:
    """`wispy.gru_sequence` or `wispy.lstm_sequence`, as errors name the op."""
    return ir.StringAttr(op.attributes["name"]).value.removeprefix("torch.")


@dataclass
class _Layer:
    """A recurrent op's operands (x, h0, and an LSTM's c0), sizes and constant matrices and
    biases, each matrix with its parameter's key (None: not a named parameter)."""
    op: ir.Operation
    cell: str
    x: ir.Value
    h0: ir.Value
    c0: ir.Value | None
    T: int
    B: int
    H: int
    w_ih: np.ndarray
    ih_key: object
    w_hh: np.ndarray
    hh_key: object
    b_ih: np.ndarray
    b_hh: np.ndarray

    @property
    def M(self) -> int:
        """Rows of each matrix: gates x hidden."""
        return rnn_kernel.gates(self.cell) * self.H

    @property
    def ident(self):
        """W_hh's identity, for packing it once however many ops share it."""
        return self.hh_key if self.hh_key is not None else id(self.w_hh)

    def key(self, k) -> str:
        """The prefix of a derived weight's name."""
        return k or self.cell


def _read_layer(op: ir.Operation, cell: str, shape, context: PassContext) -> _Layer:
    """The op's operands, checked: static sizes, a hidden size the kernel takes, constant
    matrices (and biases, zeros when none)."""
    loc = op.location
    if cell == "lstm":
        x_t, h0_t, c0_t, wih_t, bih_t, whh_t, bhh_t = op.operands
    else:
        (x_t, h0_t, wih_t, bih_t, whh_t, bhh_t), c0_t = op.operands, None
    (T, B, Fin), _ = b.vtensor_shape(x_t.type)
    (_, H), _ = b.vtensor_shape(h0_t.type)
    M = rnn_kernel.gates(cell) * H
    label = op_label(op)
    if min(T, B, Fin, H) < 0:
        raise PassFailure(f"{label} needs static sizes (compile without dynamic shapes)", loc)
    if not rnn_kernel.supports(H, shape):
        raise PassFailure(f"{label}: hidden size {H} is not one the kernel takes", loc)
    w_ih, ih_key = _constant(wih_t, op, context, "the input matrix")
    w_hh, hh_key = _constant(whh_t, op, context, "the recurrent matrix")
    b_ih = _constant(bih_t, op, context, "the input bias")
    b_hh = _constant(bhh_t, op, context, "the recurrent bias")
    b_ih = np.zeros(M, np.float32) if b_ih is None else np.asarray(b_ih[0], np.float32)
    b_hh = np.zeros(M, np.float32) if b_hh is None else np.asarray(b_hh[0], np.float32)
    return _Layer(op, cell, x_t, h0_t, c0_t, T, B, H, w_ih, ih_key, w_hh, hh_key, b_ih, b_hh)


def _lower(op: ir.Operation, name: str, cell: str, shape, opts: RecurrentKernelPass, context: PassContext,
           derived, packed: dict) -> None:
    """Replaces `op` by its projection and a call of the kernel's dispatch (appended to the
    module as `name`); `packed`: W_hh's BSPC by identity, shared by the ops."""
    layer = _read_layer(op, cell, shape, context)
    sp_ih = _sparse_projection(layer.w_ih, opts)
    if layer.ident not in packed:
        packed[layer.ident] = _pack(layer.w_hh, opts.max_buckets, opts.dense)[0]
    sp = packed[layer.ident]
    shape, why_workers = _workers(layer, sp, shape, opts, context)
    if shape.workers > 1:  # the kernel's own cut of both matrices by the units their rows feed
        buckets = rnn_kernel.plan_parts(sp.buckets, sp_ih.buckets if sp_ih is not None else None, layer.H,
                                        shape, cell)
    else:
        buckets = [pb for bk in sp.buckets
                   for pb in rnn_kernel.pack_rows(bk.values, bk.rows, bk.cols, 4 * layer.H, shape)]
    _remark(layer, sp, sp_ih, shape, why_workers, context)

    module = op
    while module.parent is not None:
        module = module.parent
    body = module.regions[0].blocks[0]
    args, proj = _projection_operands(layer, sp_ih, buckets, shape, derived)
    args += _state_and_weights(layer, sp_ih is not None, buckets, shape, derived)
    T, B, H = layer.T, layer.B, layer.H
    b.append_text(body, rnn_kernel.executable(name, T, B, H, proj, buckets, shape, cell), module.context)
    state = ir.RankedTensorType.get([T, B, H], ir.F32Type.get())
    for v in b.replace_by_call(op, f"{name}_call", args, [state] * rnn_kernel.results_of(cell)):
        erase_if_dead(v)


def _workers(layer: _Layer, sp, shape, opts: RecurrentKernelPass, context: PassContext) -> tuple:
    """(shape with its workers, why that many): as asked for, else auto_workers; one when
    the hidden size does not cut into whole parts."""
    why = ""
    if opts.workers <= 0:  # not asked for: chosen for the target and this matrix
        hh_bytes = sum(bk.values.nbytes for bk in sp.buckets)
        workers, why = auto_workers(hh_bytes, layer.H, context.target, shape, dense=sp.work >= layer.M * layer.H)
        shape = dataclasses.replace(shape, workers=workers)
    if shape.workers > 1 and not rnn_kernel.parts_supported(layer.H, shape.workers, shape):
        shape = dataclasses.replace(shape, workers=1)
    context.facts["kernel_workers"] = max(context.facts.get("kernel_workers", 1), shape.workers)
    return shape, why


def _remark(layer: _Layer, sp, sp_ih, shape, why_workers: str, context: PassContext) -> None:
    """What the layer became, for --explain."""
    T, B, H, M = layer.T, layer.B, layer.H, layer.M
    context.remark(RecurrentKernelPass.name, layer.op.location,
                   f"lowered {'an LSTM' if layer.cell == 'lstm' else 'a GRU'} layer (T={T}, batch {B}, hidden {H}) "
                   "to one dispatch"
                   + (f" of {shape.workers} workers" if shape.workers > 1 else "")
                   + (f" ({why_workers})" if why_workers else "")
                   + (f": W_hh {M}x{H} dense; " if sp.work >= M * H else f": W_hh {sp.describe()}; ")
                   + (f"W_ih {sp_ih.describe()}, partial sums added in the kernel" if sp_ih is not None
                      else "W_ih dense, one matmul"))


def _projection_operands(layer: _Layer, sp_ih, buckets: list, shape, derived) -> tuple:
    """(the kernel's first operands, proj): gi [T, B, M] from one matmul (proj None), or
    with a block-sparse W_ih (sp_ih) each bucket's products prod [nb, T*B, r] and where
    their rows go (proj: [(nb, r)])."""
    op = layer.op
    with ir.InsertionPoint(op), op.location:
        x2d = b.collapse(b.to_builtin(layer.x, op), [[0, 1], [2]])  # [T*B, F]
        if sp_ih is None:
            return [_dense_projection(layer, x2d, derived)], None
        return _sparse_projection_operands(layer, x2d, sp_ih, buckets, shape, derived)


def _dense_projection(layer: _Layer, x2d: ir.Value, derived) -> ir.Value:
    """gi = x W_ih^T + b_ih, [T, B, M]."""
    op, f32 = layer.op, ir.F32Type.get()
    wt = derived.load(op, (layer.ih_key, id(layer.w_ih), "t"), f"{layer.key(layer.ih_key)}.rnn_kernel.t",
                      lambda: np.ascontiguousarray(np.asarray(layer.w_ih, np.float32).T))
    bias = derived.load(op, (layer.ih_key, id(layer.w_ih), "b"), f"{layer.key(layer.ih_key)}.rnn_kernel.b_ih",
                        lambda: layer.b_ih)
    with ir.InsertionPoint(op), op.location:
        init = b.generic([bias], b.empty([layer.T * layer.B, layer.M], f32),
                         [b.affine_map(2, lambda d: [d[1]]), b.affine_map(2, lambda d: list(d))],
                         [b.PARALLEL] * 2, lambda v, _o: v)
        return b.expand(b.matmul(x2d, wt, init), [[0, 1], [2]], [layer.T, layer.B, layer.M])


def _sparse_projection_operands(layer: _Layer, x2d: ir.Value, sp_ih, buckets: list, shape, derived) -> tuple:
    """Per bucket of W_ih, one batched matmul over its compact blocks, and (one worker) the
    places in S of its rows; with several workers, each part's rows of the projection."""
    from wispy.passes.block_sparse import gather_blocks

    op, f32, P, H, cell = layer.op, ir.F32Type.get(), layer.T * layer.B, layer.H, layer.cell
    ih_key, w_ih, prefix = layer.ih_key, layer.w_ih, layer.key(layer.ih_key)
    args, proj = [], []
    for k, bk in enumerate(sp_ih.buckets):
        nb, r, c = bk.values.shape
        vals = derived.load(op, (ih_key, id(w_ih), k, "values_t"), f"{prefix}.rnn_kernel.{k}.values_t",
                            lambda bk=bk: np.ascontiguousarray(bk.values.transpose(0, 2, 1), np.float32))
        cols = lambda bk=bk, k=k: derived.load(  # noqa: E731 - loaded only when gathered
            op, (ih_key, id(w_ih), k, "cols"), f"{prefix}.rnn_kernel.{k}.cols",
            lambda: np.ascontiguousarray(bk.cols, np.int32))
        with ir.InsertionPoint(op), op.location:
            xg = gather_blocks(x2d, bk.cols, cols, [nb, P, c], f32)
            args.append(b.batch_matmul(xg, vals, b.zeros([nb, P, r], f32)))  # [nb, P, r]
        if shape.workers == 1:
            args.append(derived.load(op, (ih_key, id(w_ih), k, "rows"), f"{prefix}.rnn_kernel.{k}.rows",
                                     lambda bk=bk: rnn_kernel.scratch_rows(bk.rows, H, cell)))
        proj.append((nb, r))
    if shape.workers > 1:  # each part's rows of the projection: where in prod, where in S
        for q, pl in enumerate(buckets):
            for j, _nb, _rk, pidx, prow in pl.proj:
                for what, arr in (("pidx", pidx), ("prow", prow)):
                    args.append(derived.load(op, (ih_key, id(w_ih), j, what, q, shape),
                                             f"{prefix}.rnn_kernel.part{q}.{j}.{what}", lambda arr=arr: arr))
    return args, proj


def _state_and_weights(layer: _Layer, sparse_ih: bool, buckets: list, shape, derived) -> list:
    """The kernel's operands after the projection's: h0 (and an LSTM's c0), S's initial
    value, and W_hh's packed buckets (values, rows, cols; per part with several workers)."""
    op, prefix, ident = layer.op, layer.key(layer.hh_key), layer.ident
    args = [b.to_builtin(layer.h0, op)]
    if layer.c0 is not None:
        args.append(b.to_builtin(layer.c0, op))
    args.append(derived.load(op, (ident, id(layer.w_ih), "init", sparse_ih), f"{prefix}.rnn_kernel.init",
                             lambda: rnn_kernel.initial_scratch(layer.b_ih, layer.b_hh, layer.H, sparse_ih, shape,
                                                                layer.cell)))
    if shape.workers == 1:
        for k, bk in enumerate(buckets):
            for part, arr in (("values", bk.values), ("rows", bk.rows), ("cols", bk.cols)):
                args.append(derived.load(op, (ident, k, part, shape), f"{prefix}.rnn_kernel.{k}.{part}",
                                         lambda arr=arr: arr))
    else:
        for q, pl in enumerate(buckets):
            for k, bk in enumerate(pl.buckets):
                for part, arr in (("values", bk.values), ("rows", bk.rows), ("cols", bk.cols)):
                    args.append(derived.load(op, (ident, q, k, part, shape),
                                             f"{prefix}.rnn_kernel.part{q}.{k}.{part}", lambda arr=arr: arr))
    return args


def auto_workers(hh_bytes: int, hidden: int, target, shape, dense: bool = False) -> tuple:
    """(workers, why) for a layer whose packed W_hh takes `hh_bytes`, when no count is
    asked for. On the host, with two cores or more:
      * W_hh over a core's L2: as many workers as it takes for each one's part to fit (at
        most the cores), so every step reads each part from its own core's L2 instead of
        streaming the whole matrix from L3 through one core.
      * else two: the steps' products and gates are cut in half, and each half's wait for
        the other is short once a late part is not taken over at once (steal_spins).
    The figures: docs/design/recurrent-kernel.md#how-many-workers.
    Parts are whole row tiles (else one worker). Other targets keep their shape's count
    (arm64's is counted under qemu, one thread). `dense` only words the reason."""
    if getattr(target, "name", None) != "host":
        return shape.workers, ""
    from wispy.targets import host_cores, host_l2_bytes

    l2, cores = host_l2_bytes(), host_cores()
    if cores < 2:
        return 1, ""
    if hh_bytes > l2:
        want, why = -(-hh_bytes // l2), f"W_hh {hh_bytes / 1e6:.2f} MB, over a core's {l2 >> 10} KiB L2"
    else:
        want, why = 2, f"{'a dense' if dense else 'a block-sparse'} W_hh within L2: short steps, halved"
    for w in range(min(cores, max(want, 2), 32), 1, -1):
        if rnn_kernel.parts_supported(hidden, w, shape):
            return w, why
    return 1, ""


def kernel_takes(target):
    """hidden -> whether this pass's kernel takes a layer of that many units on `target`:
    what `wispy.dialects.recurrent.select` asks of the lowering."""
    shape = rnn_kernel.shape_for(target)
    return lambda hidden: rnn_kernel.supports(hidden, shape)


def kernel_predicate(target, mode: str = "auto", min_gain: float = 2.0, workers="auto", sparse: bool = True):
    """The export's choice of the layers this pass lowers: wispy.dialects.recurrent.select
    with this kernel's hidden sizes (see there)."""
    return recurrent_ops.select(target, mode, min_gain, workers, sparse, takes=kernel_takes(target))

"""wispy-block-sparse: products with a block-structured sparse weight, computed on the
survivors only (RTMobile's compiler side).

A weight pruned block by block (whole rows and/or columns zeroed inside each block of a
grid: column strips, row strips or tiles, see wispy.compress) is still a dense array when
it reaches the compiler. This pass reads each constant weight of a product, finds the
block grid its zeros follow (wispy/passes/bspc.py: no mask needed, so zeros set by any
means count), and when skipping them saves at least `min-gain` times the work it
replaces the product by code over the compact BSPC form:

  1. a gather of the input columns each block keeps: `xg[p, b, j] = x[p, cols[b, j]]`,
     one load of each gathered slice per block;
  2. one dense product per bucket of equal-size blocks: at one input row (the recurrent
     matvec inside a GRU/LSTM loop) a multiply-sum `prod[p, b, i] = sum_j V[b, i, j] *
     xg[p, b, j]`, which IREE compiles as a matvec streaming V once; over many rows (the
     input projections over all frames, Linear layers) a `linalg.batch_matmul` that IREE
     tiles like any GEMM;
  3. a combine that adds each output row's partial sums: `y[p, m] = init[p, m] +
     sum_s prod[p, combine[m, s]]`; in the recurrent matvec on Arm CPUs, a scatter
     adding each product row into its output row instead (`scatter-combine`; at 2 over
     many rows too, the products computed as `V[b] @ xg[b]^T` so each update is a whole
     row of P values).
The compact values and index arrays become new named parameters (repacked in numpy),
so the module stores the survivors only.

Matches
  * `linalg.matmul(x[P, N], transpose(W[M, N]))` and `linalg.matmul(x, Wt[N, M])`:
    nn.Linear and the input projections of the recurrent layers;
  * a multiply generic `W[m, n] * h[b, 0, n]` reduced over n by a sum generic: the
    recurrent product inside the GRU/LSTM loops (wispy.compiler.recurrent).
Declines (a remark with `--explain`) a weight that is not a constant, is smaller than
`min-elements`, whose sizes are dynamic or not float, or whose zeros save less than
`min-gain` times the work.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from wispy._mlir import arith, ir, linalg, tensor
from wispy.ir import builders as b
from wispy.dialects import bspc
from wispy.kernels import row_tiles
from wispy.passes.base import PassContext, WispyPass, walk_ops
from wispy.ir.matching import (
    erase_if_dead as _erase_if_dead,
    is_binary as _is_binary,
    is_sum_reduction as _is_sum_reduction,
    is_zero_fill as _is_zero_fill,
    owner as _owner,
    weight_identity as _identity,
    bias_add_of,
    users,
)


@dataclass(frozen=True)
class BlockSparsePass(WispyPass):
    name = "wispy-block-sparse"
    min_gain: float = 2.0        # least work saved (dense / sparse multiply-adds) worth the gathers
    min_elements: int = 4096     # smaller weights stay dense
    block: Optional[tuple[int, int]] = None  # force the block grid (rows x cols), e.g. 3072x256
    max_buckets: int = 4         # kernels per weight (blocks padded to a few sizes)
    # One combine per row range its consumers read (a GRU's gates), fused by IREE into the
    # gates' dispatch: one dispatch fewer per step, but the fused gates lose their vector
    # code, slower on both host and arm64 (docs/design/block-sparse.md#the-combine). Off
    # by default.
    split_combine: bool = False
    # Add the partial sums into the output with a scatter (one add per stored product
    # row) instead of the combine (every output row reading a slot per bucket and partial
    # sum, most of them the zero row: 2011 of the 3072 rows of the zoo GRU pruned 10x
    # keep nothing). 0: off; 1: in the recurrent matvec; 2: also over many rows (the
    # input projections: products as V[b] @ xg[b]^T, each update a row of P values);
    # -1: 1 on Arm CPUs, 0 elsewhere. The scatter saves arm64 instructions, but its updates
    # run one after another where the combine splits across cores, so 2 stays opt-in and 1
    # is Arm's default only (docs/design/block-sparse.md#the-combine). Vulkan keeps the
    # combine (a serial scatter on a GPU).
    scatter_combine: int = -1
    # The recurrent matvec with the block rows packed in tiles of `row-tile` rows (values
    # stored [nb, rows / row-tile, c, row-tile]) and, on CPU targets, a tiling that keeps
    # several row tiles' sums in registers at once: IREE's own matvec keeps one, and
    # waits on each multiply-add's latency (docs/design/compiler.md#row-tiles). -1: chosen
    # per CPU target (16 rows on x86, up to 64 on Arm); 0 (off) on Vulkan and in
    # `wispy opt` without a target.
    row_tile: int = -1

    def run(self, module: ir.Operation, context: PassContext) -> None:
        rw = _Rewriter(self, context)
        for op in walk_ops(module, "linalg.matmul"):
            rw.report(op, rw.matmul(op))
        for op in walk_ops(module, "linalg.generic"):
            if _is_sum_reduction(op):
                rw.report(op, rw.mulsum(op))
        rw.report_lowered()
        if context.weights is not None:
            b.erase_unused_globals(module, context.weights)


class _Rewriter:
    """One run of the pass: its options, context and the weights packed so far (a weight
    used at many sites, like a recurrent matrix in an unrolled loop body, is packed and
    stored once)."""

    def __init__(self, opts: BlockSparsePass, context: PassContext):
        self.opts, self.context, self.name = opts, context, opts.name
        self.min_gain, self.min_elements = opts.min_gain, opts.min_elements
        self.block, self.max_buckets = opts.block, opts.max_buckets
        target = context.target
        self.cpu = target is None or getattr(target, "is_cpu", True)
        self.arm = row_tiles.is_arm(target)
        self.row_tile = opts.row_tile if opts.row_tile >= 0 else (-1 if target is not None and self.cpu else 0)
        self.split_combine = opts.split_combine
        self.scatter_combine = 0 if not self.cpu else \
            opts.scatter_combine if opts.scatter_combine >= 0 else (1 if self.arm else 0)
        self._packed: dict = {}  # weight identity -> (BlockSparse, lowered sites)
        self._ident: dict = {}   # id(BlockSparse) -> its weight's identity
        self._derived = b.DerivedWeights(context.weights)  # packed arrays, made once per weight

    def report(self, op, why):
        if why:
            self.context.remark(self.name, op.location, why)

    def report_lowered(self):
        """One remark per lowered weight (a recurrent matrix has a site per unrolled step)."""
        for ident, (sp, sites) in self._packed.items():
            if sites:
                where, key = sites[0], ident if isinstance(ident, str) else "a constant"  # noqa
                n = f" at {len(sites)} sites" if len(sites) > 1 else ""
                self.context.remark(self.name, where, f"lowered {key}{n}: {sp.describe()}")

    # -- matching ---------------------------------------------------------------------------
    def matmul(self, op: ir.Operation):
        context = self.context
        if "indexing_maps" in op.attributes:
            maps = [str(ir.AffineMapAttr(a).value) for a in op.attributes["indexing_maps"]]
            if maps != _MATMUL_MAPS:
                return f"declined: a matmul with transposed operands ({maps})"
        x, rhs, init = op.operands[0], op.operands[1], op.operands[2]
        owner = _owner(rhs)
        if owner is not None and owner.name == "linalg.transpose" and \
                list(ir.DenseI64ArrayAttr(owner.attributes["permutation"])) == [1, 0]:
            const, transposed = b.constant_value(owner.operands[0], context.weights), False
        else:
            const, transposed = b.constant_value(rhs, context.weights), True
        if const is None:
            return None  # activations times activations, or a weight we cannot read: not ours
        w, key = const
        if transposed:
            w = w.T
        return self._lower(op, context, x, w, key, init, op.result)

    def mulsum(self, red: ir.Operation):
        context = self.context
        mul = _owner(red.operands[0])
        if mul is None or mul.name != "linalg.generic" or not _is_binary(mul, "arith.mulf"):
            return None
        maps = [ir.AffineMapAttr(a).value for a in mul.attributes["indexing_maps"]]
        if len(maps) != 3 or str(maps[2]) != "(d0, d1, d2) -> (d0, d1, d2)":
            return None
        for wi in (0, 1):
            if str(maps[wi]) != "(d0, d1, d2) -> (d1, d2)":
                continue
            const = b.constant_value(mul.operands[wi], context.weights)
            if const is None:
                return None
            h, hmap = mul.operands[1 - wi], str(maps[1 - wi])
            hs = b.shape(h)
            if hmap == "(d0, d1, d2) -> (d0, 0, d2)" and len(hs) == 3 and hs[1] == 1:
                with ir.InsertionPoint(red), red.location:
                    x = b.collapse(h, [[0], [1, 2]])
            elif hmap == "(d0, d1, d2) -> (d0, d2)":
                x = h
            else:
                return f"declined: the vector's indexing {hmap} is not a matvec's"
            return self._lower(red, context, x, const[0], const[1], red.operands[1], red.result)
        return None

    # -- lowering -----------------------------------------------------------------------------
    def _lower(self, op, context, x, w, key, init, result):
        if w.ndim != 2 or w.size < self.min_elements:
            return f"declined: weight {key or ''} {w.shape} is smaller than min-elements={self.min_elements}"
        xs, ins = b.shape(x), b.shape(init)
        if len(xs) != 2 or xs[1] is None or xs[1] != w.shape[1] or ins[1] != w.shape[0]:
            return f"declined: shapes {xs} x {w.shape} are not a [P, N] x [M, N]^T product"
        elem = ir.RankedTensorType(init.type).element_type
        if not isinstance(elem, ir.FloatType):
            return f"declined: element type {elem} is not a float"
        sp = self._pack(w, key)
        if isinstance(sp, str):
            return sp
        scatter = self.scatter_combine >= (1 if xs[0] == 1 else 2) and not self.split_combine
        with ir.InsertionPoint(op), op.location:
            flats = self._products(op, sp, key, x, elem, scatter)
        loc = op.location
        bias_add = bias_add_of(result, sp.shape[0]) if _is_zero_fill(init) else None
        target = bias_add.result if bias_add is not None else result
        bias = bias_add.operands[1] if bias_add is not None else None
        slices = _row_slices(target)
        anchor = bias_add if bias_add is not None else op
        with ir.InsertionPoint(anchor), loc:
            if self.split_combine and slices and _is_zero_fill(init) and b.shape(init)[0] is not None:
                # Consumers read row ranges (a GRU's gates): one combine per range, each an
                # elementwise producer IREE fuses into the gates' dispatch.
                for sl, (start, length) in slices:
                    part = self._combine(op, sp, key, flats, b.zeros([b.shape(init)[0], length], elem),
                                         elem, start, bias)
                    sl.result.replace_all_uses_with(part)
                    sl.erase()
            elif scatter:
                target.replace_all_uses_with(self._scatter_combine(op, sp, key, flats, init, elem, bias))
            else:
                target.replace_all_uses_with(self._combine(op, sp, key, flats, init, elem, 0, bias))
        if bias_add is not None:
            bias_add.erase()
        operands = list(op.operands)
        op.erase()
        for v in operands:  # the dense weight's transpose/broadcast-multiply and load
            _erase_if_dead(v)
        self._packed[_identity(w, key)][1].append(loc)
        return None

    def _pack(self, w: np.ndarray, key):
        ident = _identity(w, key)
        if ident in self._packed:
            return self._packed[ident][0]
        try:
            grid, cost = bspc.detect(w, self.block)
        except ValueError as e:
            return f"declined: {e}"
        gain = w.size / max(cost, 1)
        if gain < self.min_gain:
            return (f"declined: {key or 'weight'} {w.shape}: its zeros save {gain:.2f}x "
                    f"(< min-gain={self.min_gain})")
        sp = bspc.pack(np.ascontiguousarray(w, dtype=np.float32) if w.dtype != np.float32 else w, grid,
                       max_buckets=self.max_buckets)
        self._packed[ident] = (sp, [])
        self._ident[id(sp)] = ident
        return sp

    def _array(self, anchor, sp, key, name: str, make, elem=None) -> ir.Value:
        """One of a weight's packed arrays (`make()` builds it, once per weight) as a value
        before `anchor`: a named parameter, or an inline constant when there is no store."""
        return self._derived.load(anchor, (self._ident[id(sp)], name), f"{key or 'weight'}.bspc.{name}", make, elem)

    def _products(self, op, sp: bspc.BlockSparse, key, x, elem, scatter: bool = False) -> list:
        """Each bucket's partial sums flattened to [P, n] ([n, P] over many rows when
        `scatter`: one row per stored product row, as the scatter adds them), with the
        name and maker of the combine table that reads them and the maker of the row of W
        each position holds: (flat, table name, make table, make rows)."""
        p_dim = b.shape(x)[0]
        rows = p_dim if p_dim is not None else b.dim(x, 0)
        matvec = p_dim == 1
        flats = []
        for k, bk in enumerate(sp.buckets):
            nb, r, c = bk.values.shape
            # x cut in strips needs no index array (but the scatter's transposed gather does)
            cols = None if _are_strips(bk.cols, b.shape(x)[1]) and not (scatter and not matvec) else \
                self._array(op, sp, key, f"{k}.cols", lambda bk=bk: bk.cols)
            values = lambda bk=bk: bk.values.astype(_np_dtype(elem))  # noqa: E731
            if matvec and self.row_tile != 0:
                flats.append(self._tiled_matvec(op, sp, key, k, x, cols, elem))
                continue
            if matvec:
                # A multiply then a sum, as the dense recurrent product is written: IREE
                # fuses them (and the gather) into one matvec streaming V, where a
                # contraction would be data-tiled and re-encode xg every step.
                vals = self._array(op, sp, key, f"{k}.values", values, elem)
                if _are_strips(bk.cols, b.shape(x)[1]):  # x itself, cut in strips: no gather
                    xg = b.expand(x, [[0], [1, 2, 3]], [rows, nb, 1, c])
                else:
                    xg = b.expand(_gather(x, cols, [rows, nb, c], elem, batch_first=False),
                                  [[0], [1, 2], [3]], [rows, nb, 1, c])
                # xg read as [p, b, 0, j] (a broadcast, like the dense product's vector):
                # with a projection map IREE would see a contraction and data-tile it.
                terms = b.generic(
                    [vals, xg], b.empty([rows, nb, r, c], elem),
                    [b.affine_map(4, lambda d: [d[1], d[2], d[3]]),
                     b.affine_map(4, lambda d: [d[0], d[1], ir.AffineConstantExpr.get(0), d[3]]),
                     b.affine_map(4, lambda d: list(d))],
                    [b.PARALLEL] * 4, lambda v, xv, _o: arith.MulFOp(v, xv).result)
                prod = b.generic(
                    [terms], b.zeros([rows, nb, r], elem),
                    [b.affine_map(4, lambda d: list(d)), b.affine_map(4, lambda d: [d[0], d[1], d[2]])],
                    [b.PARALLEL] * 3 + [b.REDUCTION], lambda t, acc: arith.AddFOp(acc, t).result)
                flat = b.collapse(prod, [[0], [1, 2]])
            elif scatter:
                # prod_t[b, i, p] = sum_j V[b, i, j] * x[p, cols[b, j]]: the product rows
                # come out whole, each one slice the scatter adds into its output row.
                vals = self._array(op, sp, key, f"{k}.values", values, elem)
                xg = _gather(x, cols, [nb, c, rows], elem, batch_first=True, cols_first=True)
                prod = b.batch_matmul(vals, xg, b.zeros([nb, r, rows], elem))  # [nb, r, P]
                flat = b.collapse(prod, [[0, 1], [2]])
            else:
                vals = self._array(op, sp, key, f"{k}.values_t",
                                   lambda values=values: np.ascontiguousarray(values().transpose(0, 2, 1)), elem)
                xg = gather_blocks(x, bk.cols, cols, [nb, rows, c], elem)
                prod = b.batch_matmul(xg, vals, b.zeros([nb, rows, r], elem))  # [nb, P, r]
                prod_t = b.value(linalg.transpose(prod, outs=[b.empty([rows, nb, r], elem)], permutation=[1, 0, 2]))
                flat = b.collapse(prod_t, [[0], [1, 2]])
            flats.append((flat, f"{k}.combine", lambda bk=bk: bk.combine, lambda bk=bk: bk.rows.reshape(-1)))
        return flats

    def _tiled_matvec(self, op, sp, key, k: int, x, cols, elem):
        """One bucket's products at one input row, its block rows packed in row tiles
        (wispy/passes/row_tiles.py), flattened to [1, nb*n1*T], with its combine table
        re-pointed at the padded positions (as _products returns them)."""
        bk = sp.buckets[k]
        nb, r, c = bk.values.shape
        tile = self.row_tile if self.row_tile > 0 else \
            row_tiles.row_tile(r, self.arm, row_tiles.widest_tile(self.context.target))
        n1 = -(-r // tile)
        vals = self._array(op, sp, key, f"{k}.values_tiled",
                           lambda: row_tiles.pack(bk.values.astype(_np_dtype(elem)), tile), elem)
        if cols is None:  # x itself, cut in strips
            xg = b.expand(b.collapse(x, [[0, 1]]), [[0, 1]], [nb, c])
        else:
            xg = b.collapse(_gather(x, cols, [1, nb, c], elem, batch_first=False), [[0, 1], [2]])
        flat = row_tiles.matvec(vals, xg, elem, cpu=self.cpu, arm=self.arm)
        # Position b*r + i of the unpadded products is now b*n1*T + i.
        table = lambda: ((bk.combine // r) * (n1 * tile) + bk.combine % r).astype(np.int32)  # noqa: E731

        def rows():  # the row of W each padded position holds (-1: padding)
            out = np.full((nb, n1 * tile), -1, np.int32)
            out[:, :r] = bk.rows
            return out.reshape(-1)

        return b.expand(flat, [[0, 1]], [1, nb * n1 * tile]), f"{k}.combine_tiled", table, rows

    def _scatter_combine(self, op, sp, key, flats, init, elem, bias=None) -> ir.Value:
        """y[p, m] = init[p, m] (+ bias[m]) + every product row holding a partial sum of
        row m, added by one scatter per bucket. Padding positions hold zero products and
        add them to row 0. At one input row the flats are [1, n]; over many rows [n, P],
        scattered into y transposed ([M, P]: each update a whole row of P values)."""
        m = sp.shape[0]
        p_static = b.shape(init)[0]
        if p_static == 1:
            y = b.collapse(init, [[0, 1]])
            ident = b.affine_map(1, lambda d: [d[0]])
            if bias is not None:
                y = b.generic([bias], y, [ident, ident], [b.PARALLEL], lambda v, acc: arith.AddFOp(acc, v).result)
        else:
            p_size = p_static if p_static is not None else b.dim(init, 0)
            ins = [init] + ([bias] if bias is not None else [])
            maps = [b.affine_map(2, lambda d: [d[1], d[0]])] + \
                ([b.affine_map(2, lambda d: [d[0]])] if bias is not None else []) + [b.affine_map(2, lambda d: list(d))]
            y = b.generic(ins, b.empty([m, p_size], elem), maps, [b.PARALLEL] * 2,
                          lambda v, *rest: arith.AddFOp(v, rest[0]).result if len(rest) == 2 else v)
        for k, (flat, name, _table, rows) in enumerate(flats):
            name = f"{k}.scatter_rows" + ("_tiled" if name.endswith("_tiled") else "")
            index = self._array(op, sp, key, name,
                                lambda rows=rows: np.maximum(rows(), 0).astype(np.int32).reshape(-1, 1))
            y = b.scatter_add(b.collapse(flat, [[0, 1]]) if p_static == 1 else flat, index, y)
        if p_static == 1:
            return b.expand(y, [[0, 1]], [1, m])
        return b.generic([y], b.empty([p_size, m], elem),
                         [b.affine_map(2, lambda d: [d[1], d[0]]), b.affine_map(2, lambda d: list(d))],
                         [b.PARALLEL] * 2, lambda v, _o: v)

    def _combine(self, op, sp, key, flats, init, elem, start: int = 0, bias=None) -> ir.Value:
        """y[p, m] = init[p, m] + the partial sums of row start + m (+ bias[start + m]),
        read from each bucket's products through its combine table. All-parallel, the few
        (<= k) reads per bucket unrolled in the body, so IREE fuses it with consumers."""
        tables, flat_of_slot = [], []  # one input per (bucket, slot s): the table's row s
        maps = []
        for (flat, name, make, _rows), bk in zip(flats, sp.buckets):
            table = self._array(op, sp, key, name, make)
            for s in range(bk.combine.shape[0]):
                tables.append(table)
                flat_of_slot.append(flat)
                maps.append(b.affine_map(2, lambda d, s=s: [ir.AffineConstantExpr.get(s), d[1]]))
        if bias is not None:
            tables.append(bias)
            maps.append(b.affine_map(2, lambda d: [d[1]]))
        length = b.shape(init)[1]
        if length != sp.shape[0]:  # rows [start, start + length) only
            tables = [b.extract_slice(t, [0, start], [b.shape(t)[0], length]) if len(b.shape(t)) == 2
                      else b.extract_slice(t, [start], [length]) for t in tables]
        maps.append(b.affine_map(2, lambda d: [d[0], d[1]]))
        index = ir.IndexType.get()

        def body(*args):
            *slots, acc = args
            p = linalg.IndexOp(0).result
            for j, flat in zip(slots, flat_of_slot):  # a missing sum reads a zero row
                at = arith.IndexCastOp(index, j).result
                acc = arith.AddFOp(acc, tensor.ExtractOp(flat, [p, at]).result).result
            if bias is not None:
                acc = arith.AddFOp(acc, slots[-1]).result
            return acc

        return b.generic(tables, init, maps, [b.PARALLEL, b.PARALLEL], body)


def _row_slices(value: ir.Value) -> list:
    """[(extract_slice, (start, length))] when every use of the 2-D `value` takes whole
    rows [start, start + length) of it, with static offsets; else []."""
    out = []
    for user in users(value):
        op = user.operation if hasattr(user, "operation") else user
        if op.name != "tensor.extract_slice" or len(op.operands) != 1:
            return []  # dynamic offsets, or another kind of use
        offsets = list(ir.DenseI64ArrayAttr(op.attributes["static_offsets"]))
        sizes = list(ir.DenseI64ArrayAttr(op.attributes["static_sizes"]))
        strides = list(ir.DenseI64ArrayAttr(op.attributes["static_strides"]))
        rank = len(ir.RankedTensorType(op.result.type).shape)
        if len(offsets) != 2 or offsets[0] != 0 or strides != [1, 1] or rank != 2 or \
                sizes[0] != b.shape(value)[0]:
            return []
        out.append((op, (offsets[1], sizes[1])))
    return out


def _are_strips(cols: np.ndarray, n: int) -> bool:
    """True when block b keeps exactly columns [b*c, (b+1)*c) and the blocks cover all n:
    the gathered input is the input itself (RTMobile's column strips, rows pruned)."""
    nb, c = cols.shape
    return nb * c == n and np.array_equal(cols.reshape(-1), np.arange(n))


def gather_blocks(x: ir.Value, cols_np: np.ndarray, cols, sizes: list, elem) -> ir.Value:
    """xg[b, p, j] = x[p, cols[b, j]] ([nb, P, c]) for a batched matmul over the blocks.
    Column strips (_are_strips) are x cut in nb pieces: a reshape and a transpose, which
    IREE runs as a copy of x, cheaper than the gather
    (docs/design/block-sparse.md#bspc-and-buckets). `cols`: the index array as a value, or
    a maker of it."""
    nb, rows, c = sizes
    if _are_strips(cols_np, b.shape(x)[1]):
        x3 = b.expand(x, [[0], [1, 2]], [rows, nb, c])
        return b.value(linalg.transpose(x3, outs=[b.empty([nb, rows, c], elem)], permutation=[1, 0, 2]))
    return _gather(x, cols() if callable(cols) else cols, sizes, elem, batch_first=True)


def _gather(x: ir.Value, cols: ir.Value, sizes: list, elem, batch_first: bool,
            cols_first: bool = False) -> ir.Value:
    """xg[p, b, j] (or [b, p, j]; with `cols_first`, [b, j, p]) = x[p, cols[b, j]]."""
    if cols_first:
        pos_p, pos_b, pos_j = 2, 0, 1
    else:
        (pos_p, pos_b), pos_j = ((1, 0) if batch_first else (0, 1)), 2

    def body(col, _out):
        idx = arith.IndexCastOp(ir.IndexType.get(), col).result
        return tensor.ExtractOp(x, [linalg.IndexOp(pos_p).result, idx]).result

    return b.generic([cols], b.empty(sizes, elem),
                     [b.affine_map(3, lambda d: [d[pos_b], d[pos_j]]), b.affine_map(3, lambda d: list(d))],
                     [b.PARALLEL] * 3, body)


_MATMUL_MAPS = ["(d0, d1, d2) -> (d0, d2)", "(d0, d1, d2) -> (d2, d1)", "(d0, d1, d2) -> (d0, d1)"]




def _np_dtype(elem: ir.Type):
    return {"f32": np.float32, "f16": np.float16, "f64": np.float64}.get(str(elem), np.float32)



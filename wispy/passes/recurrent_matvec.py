"""wispy-recurrent-matvec: the dense recurrent product inside GRU/LSTM loops, with the
weight packed in row tiles and a CPU tiling that keeps several tiles' sums in registers.

wispy.compiler.recurrent writes a recurrent layer's step as `(W * h.unsqueeze(-2)).sum(-1)`
(a multiply generic reduced by a sum generic), which IREE compiles as a data-tiled matvec
holding one 16-row tile's sums: each multiply-add waits for the previous one, so the
dense GRU 2x1024 and LSTM 2x512 ran at a quarter of the CPU's multiply-add rate
(docs/design/compiler.md#row-tiles). This pass replaces the pair, at batch 1 and for a
constant W[M, N], by the packed matvec of wispy/kernels/row_tiles.py: W stored [M/T, N, T] (a new parameter, packed once per
weight however many loop sites use it), products sliced back to M rows, plus the sum's
initial value when it is not zero; a constant bias added to the product alone becomes
the sums' initial value (one dispatch fewer per step). Weights wispy-block-sparse
lowered are not seen here (it runs first).

Runs on CPU targets only (a no-op for Vulkan, whose matvec codegen is its own). With
`--explain`, says which weights it lowered and why it declined others (not a constant,
smaller than `min-elements`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wispy._mlir import arith, ir
from wispy.ir import builders as b
from wispy.kernels import row_tiles
from wispy.passes.base import PassContext, WispyPass, walk_ops
from wispy.ir.matching import (
    addend_of,
    bias_add_of,
    erase_if_dead,
    is_binary,
    is_sum_reduction,
    is_zero_fill,
    owner,
    weight_identity,
)


@dataclass(frozen=True)
class RecurrentMatvecPass(WispyPass):
    name = "wispy-recurrent-matvec"
    min_elements: int = 4096  # smaller products are dominated by their dispatch's fixed cost
    row_tile: int = -1        # rows per tile: -1 chosen per target (16 on x86, up to 64 on Arm)
    fold_bias: bool = True    # a constant bias added to the product starts its sums instead

    def run(self, module: ir.Operation, context: PassContext) -> None:
        target = context.target
        if target is not None and not target.is_cpu:
            return
        arm = row_tiles.is_arm(target)
        derived = b.DerivedWeights(context.weights)  # each weight packed once, whatever its sites
        sites: dict = {}  # weight name -> [locations] of the rewritten products
        for red in walk_ops(module, "linalg.generic"):
            if not is_sum_reduction(red):
                continue
            loc = red.location
            why = self._rewrite(red, context, arm, derived, sites)
            if why:
                context.remark(self.name, loc, why)
        for key, locs in sites.items():
            n = f" at {len(locs)} sites" if len(locs) > 1 else ""
            context.remark(self.name, locs[0], f"lowered {key}{n}")
        if context.weights is not None:
            b.erase_unused_globals(module, context.weights)

    def _rewrite(self, red: ir.Operation, context: PassContext, arm: bool, derived, sites: dict):
        mul = owner(red.operands[0])
        if mul is None or mul.name != "linalg.generic" or not is_binary(mul, "arith.mulf"):
            return None
        maps = [str(ir.AffineMapAttr(a).value) for a in mul.attributes["indexing_maps"]]
        if len(maps) != 3 or maps[2] != "(d0, d1, d2) -> (d0, d1, d2)" or \
                "(d0, d1, d2) -> (d1, d2)" not in maps[:2]:
            return None
        wi = maps.index("(d0, d1, d2) -> (d1, d2)")
        h, hmap = mul.operands[1 - wi], maps[1 - wi]
        const = b.constant_value(mul.operands[wi], context.weights)
        if const is None:
            return "declined: the recurrent weight is not a constant"
        w, key = const
        name = key or "a constant"
        if w.ndim != 2 or w.dtype != np.float32:
            return f"declined: weight {name} {w.shape} {w.dtype} is not a float32 matrix"
        if w.size < self.min_elements:
            return f"declined: weight {name} {w.shape} is smaller than min-elements={self.min_elements}"
        hs = b.shape(h)
        if hs[0] != 1 or hmap not in ("(d0, d1, d2) -> (d0, 0, d2)", "(d0, d1, d2) -> (d0, d2)"):
            return f"declined: not a matvec at batch 1 (vector {hs}, indexing {hmap})"
        m, n = w.shape
        tile = self.row_tile if self.row_tile > 0 else \
            row_tiles.row_tile(m, arm, row_tiles.widest_tile(context.target))
        elem = ir.RankedTensorType(red.results[0].type).element_type
        init = red.operands[1]
        # A constant bias added to the product alone starts the sums instead: the add
        # would otherwise be a dispatch of its own at every step (IREE does not fuse it
        # into the tiled matvec across the reshapes).
        bias_add = bias_add_of(red.results[0], m) if self.fold_bias and is_zero_fill(init) else None
        bias = b.constant_value(bias_add.operands[1], context.weights) if bias_add is not None else None
        # Likewise any tensor added to the product alone (an LSTM step's gi_t, the input
        # projection with both biases): it starts the sums, and the add's dispatch goes.
        # Not at a step whose h is a constant (the first of an unrolled loop): IREE cannot
        # fold that product away once its sums start from a tensor, and fails to compile it.
        h_def = owner(h)
        h_const = h_def is not None and h_def.name in ("arith.constant", "linalg.fill")
        addend = addend_of(red.results[0]) if self.fold_bias and is_zero_fill(init) and bias is None \
            and m % tile == 0 and not h_const else None
        with ir.InsertionPoint(red), red.location:
            vals = derived.load(red, (weight_identity(w, key), tile), f"{key or 'weight'}.row_tiles",
                                lambda: row_tiles.pack(w[None], tile), elem)
            x = b.expand(b.collapse(h, [list(range(len(hs)))]), [[0, 1]], [1, n])
            start = None
            if bias is not None:
                bv, bkey = bias
                n1 = -(-m // tile)
                start = derived.load(red, (weight_identity(bv, bkey), tile), f"{bkey or 'bias'}.row_tiles",
                                     lambda: np.pad(bv.astype(np.float32), (0, n1 * tile - m)), elem)
            if addend is not None:
                start = b.collapse(addend[1], [list(range(len(b.shape(addend[1]))))])
            flat = row_tiles.matvec(vals, x, elem, cpu=True, arm=arm, init=start)      # [n1 * T]
            if b.shape(flat)[0] != m:  # the padding rows of the last tile
                flat = b.extract_slice(flat, [0], [m])
            y = b.expand(flat, [[0, 1]], [1, m])
            if not is_zero_fill(init):
                y = b.generic([y], init, [b.affine_map(2, lambda d: list(d))] * 2, [b.PARALLEL] * 2,
                              lambda v, acc: arith.AddFOp(acc, v).result)
        sites.setdefault(key or "a constant", []).append(red.location)
        if bias is not None:
            context.remark(self.name, red.location, f"folded bias {bias[1] or 'a constant'} into the sums")
            bias_add.results[0].replace_all_uses_with(y)
            bias_operand = bias_add.operands[1]
            bias_add.erase()
            erase_if_dead(bias_operand)
        if addend is not None:
            context.remark(self.name, red.location, "folded the added tensor into the sums")
            add_op = addend[0]
            add_op.results[0].replace_all_uses_with(y)
            add_op.erase()
        red.results[0].replace_all_uses_with(y)
        operands = list(red.operands)
        red.erase()
        for v in operands:
            erase_if_dead(v)
        return None

"""A matvec `y[b, i] = sum_j V[b, i, j] * x[b, j]` with V's rows packed in tiles, the form
wispy gives the recurrent products inside GRU/LSTM loops on CPU targets (shared by
wispy-block-sparse and wispy-recurrent-matvec).

IREE compiles a matvec by itself as a data-tiled mmt4d with one output row tile of 16:
each multiply-add waits on the previous one's result (its latency, 4 cycles), so a GRU
2x1024 step ran at a quarter of the CPU's multiply-add rate
(docs/design/compiler.md#row-tiles). Here the weight is
packed [nb, n1, c, T] (row tiles of T, the tile's rows innermost: one vector load per
input element per tile) and the product is one linalg.generic with an explicit CPU
tiling (`compilation_info`) that keeps several tiles' sums in registers:

  * x86 (AVX-512): 4 row tiles of 16 rows, one vector each;
  * Arm (NEON): one tile of up to 64 rows (16 registers, loaded in pairs; 32 rows on
    armv7), 4 input elements per step, loaded as one vector and used lane by lane.
"""
from __future__ import annotations

import platform
from typing import Optional

import numpy as np

from wispy._mlir import arith, ir
from wispy.ir import builders as b


def is_arm(target) -> bool:
    """Whether a wispy Target compiles for Arm (arm64, armv7, or `host` on an Arm machine)."""
    if target is None:
        return False
    if target.name in ("arm64", "armv7"):
        return True
    if target.name == "host":
        machine = platform.machine().lower()
        return machine in ("aarch64", "arm64") or machine.startswith("arm")
    return False


def widest_tile(target) -> int:
    """The most rows one tile may hold on an Arm target: 64 on AArch64 (16 of its 32 vector
    registers accumulate), 32 on armv7, whose NEON has 16 registers in all."""
    return 32 if target is not None and target.name == "armv7" else 64


def row_tile(rows: int, arm: bool, widest: int = 64) -> int:
    """Rows per tile: 16 (one AVX-512 vector) on x86; on Arm the widest of `widest`, 32, 16
    that pads the rows by at most 5% more than 16 does."""
    if not arm:
        return 16
    least = -(-rows // 16) * 16
    return next(t for t in (64, 32, 16) if t <= widest and -(-rows // t) * t <= 1.05 * least)


def pack(values: np.ndarray, tile: int) -> np.ndarray:
    """values [nb, r, c] -> [nb, n1, c, T], rows padded with zeros to n1 * T."""
    nb, r, c = values.shape
    n1 = -(-r // tile)
    padded = np.zeros((nb, n1 * tile, c), values.dtype)
    padded[:, :r] = values
    return np.ascontiguousarray(padded.reshape(nb, n1, tile, c).transpose(0, 1, 3, 2))


def matvec(vals: ir.Value, x: ir.Value, elem: ir.Type, *, cpu: bool, arm: bool,
           init: Optional[ir.Value] = None) -> ir.Value:
    """prod[b, t, i] = sum_j vals[b, t, j, i] * x[b, j] for vals [nb, n1, c, T] and x
    [nb, c]; returns the products flattened to [nb * n1 * T] (block b's padded row
    t*T + i at b*n1*T + t*T + i). With `cpu`, the generic carries the CPU tiling.
    `init` ([nb * n1 * T], in the same order) starts the sums instead of zeros: a bias
    added there costs no dispatch of its own."""
    nb, n1, c, tile = b.shape(vals)
    # Unit dimensions are left out: IREE folds them away, and the tiling must name the
    # generic's dimensions as IREE sees them. Order: [b], [t], i, j.
    keep = [nb > 1, n1 > 1]
    if not keep[0]:
        vals, x = b.collapse(vals, [[0, 1], [2], [3]]), b.collapse(x, [[0, 1]])
    if not keep[1]:
        vals = b.collapse(vals, [[0, 1], [2]] if not keep[0] else [[0], [1, 2], [3]])
    nd = sum(keep) + 2

    def dims(d, which):  # the named dimensions, in order, present ones only
        names = {"b": d[0] if keep[0] else None, "t": d[int(keep[0])] if keep[1] else None,
                 "i": d[nd - 2], "j": d[nd - 1]}
        return [names[w] for w in which if names[w] is not None]

    out_shape = [s for s, kp in zip([nb, n1], keep) if kp] + [tile]
    if init is None:
        start = b.zeros(out_shape, elem)
    else:
        start = init if len(out_shape) == 1 else b.expand(init, [list(range(len(out_shape)))], out_shape)
    prod = b.generic(
        [vals, x], start,
        [b.affine_map(nd, lambda d: dims(d, "btji")), b.affine_map(nd, lambda d: dims(d, "bj")),
         b.affine_map(nd, lambda d: dims(d, "bti"))],
        [b.PARALLEL] * (nd - 1) + [b.REDUCTION],
        lambda v, xv, acc: arith.AddFOp(acc, arith.MulFOp(v, xv).result).result)
    if cpu and c > 1:
        # Several row tiles' sums in registers at once (docs/design/compiler.md#row-tiles).
        acc = 1 if arm else next(g for g in (4, 2, 1) if n1 % g == 0)
        red = 4 if arm and c % 4 == 0 else 1
        par = [1] * keep[0] + [acc] * keep[1]
        prod.owner.attributes["compilation_info"] = ir.Attribute.parse(
            "#iree_codegen.compilation_info<lowering_config = #iree_cpu.lowering_config<"
            f"distribution = {par + [0, 0]}, vector_common_parallel = {par + [tile, 0]}, "
            f"vector_reduction = {[0] * (nd - 1) + [red]}>, translation_info = "
            "#iree_codegen.translation_info<pipeline = #iree_cpu.pipeline<DoubleTilingExpert>>>")
    return b.collapse(prod, [list(range(len(out_shape)))])

"""wispy-conv1d-im2col: 1-D convolutions as an im2col gather plus one matmul.

IREE lowers a batch-1 1-D convolution to a plain loop nest that runs at a few percent
of a CPU's peak; the same work as a matmul is tiled (and data-tiled) like any GEMM.

Matches
  * `linalg.conv_1d_ncw_fcw` (Conv1d, groups=1), any stride and dilation;
  * `linalg.conv_2d_ngchw_gfchw` whose height and kernel height are 1 (what a grouped
    Conv1d becomes), as one batched matmul over the groups.
Emits, at batch 1 with a known constant weight, no groups and a static length, on CPUs
(`packed`, on by default), the packed form `linalg.mmt4d` wants, built by wispy rather
than by IREE's data tiling (see `_packed` for the measured why):
  * the weight repacked at compile time into `[F1, C*K, T, 1]` tiles (T=16 with AVX-512,
    8 on other CPUs), optionally split along C*K into `k-block` pieces, new parameters
    `<name>.mmt4d<T>.k<i>`;
  * `cols[w1, c, k, i] = x[0, c, (w1*T + i)*stride + k*dilation]` (the input padded with
    zeros on the right to whole tiles), seen as `[W1, C*K, T, 1]`;
  * one `linalg.mmt4d` per piece, chained through the accumulator, `linalg.unpack` to
    `[F, Wout]` and a generic adding it to the convolution's init.
Emits, at batch 1 otherwise (speech inference; Vulkan, dynamic lengths, groups),
  * `col[g, c, k, w] = x[0, (g,) c, w*stride + k*dilation]` and one matmul (batch_matmul
    over groups) `W[g][Fg, Cg*K] @ col[g][Cg*K, Wout]`: the weight is only reshaped and
    the product is already NCW, so no transposes are needed; a 1x1 convolution with
    stride 1 multiplies the input itself;
  * a generic adding the product to the convolution's init (the broadcast bias).
Emits, at batch N > 1,
  * `col[g, n, w, c, k] = x[n, (g,) c, w*stride + k*dilation]` (a linalg.generic),
    collapsed to `[G, N*Wout, Cg*K]`;
  * a matmul (batch_matmul over groups when G > 1) against the weight as
    `[G, Cg*K, Fg]`: when the weight is a known constant (a named parameter or a dense
    constant) it is repacked at compile time into a new parameter, else transposed in IR;
  * a generic adding the product to the convolution's init (the broadcast bias),
    transposing back to the NCW layout so the consumer is unchanged.
At batch 1 the number of frames may be dynamic (one module for every utterance length).
Declines (a remark with `--explain`) when any other size is dynamic, the element type
is not a float, or the im2col buffer would exceed `max-col-mb`. Depthwise convolutions keep
IREE's own lowering: they are memory bound and gain nothing from a GEMM.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wispy._mlir import arith, ir
from wispy.ir import builders as b
from wispy.kernels import row_tiles
from wispy.passes.base import PassContext, WispyPass, walk_ops

_OPS = ("linalg.conv_1d_ncw_fcw", "linalg.conv_2d_ngchw_gfchw")


@dataclass(frozen=True)
class Conv1dIm2colPass(WispyPass):
    name = "wispy-conv1d-im2col"
    max_col_mb: int = 512  # largest im2col buffer (MiB) the pass will materialize
    packed: bool = True    # on CPUs, feed linalg.mmt4d with operands packed here (constant weights)
    k_block: int = 0       # reduction elements per mmt4d in the packed form (0: one mmt4d)
    tile: int = 0          # the packed form's tile; 0: the target's (16 with AVX-512, else 8)

    def run(self, module: ir.Operation, context: PassContext) -> None:
        for op_name in _OPS:
            for op in walk_ops(module, op_name):
                why = self._rewrite(op, context)
                if why:
                    context.remark(self.name, op.location, why)
        if context.weights is not None:
            b.erase_unused_globals(module, context.weights)

    def _rewrite(self, op: ir.Operation, context: PassContext):
        x, w, init = op.operands[0], op.operands[1], op.operands[2]
        xs, ws, os_ = b.shape(x), b.shape(w), b.shape(init)
        # Only the time axis (the last one) may be dynamic, and only at batch 1.
        time_dims = {len(xs) - 1} | ({3} if op.name == "linalg.conv_2d_ngchw_gfchw" else set())
        dynamic = any(d is None for d in ws) or any(
            d is None and i not in time_dims for sh in (xs, os_) for i, d in enumerate(sh))
        if dynamic or ((None in xs or None in os_) and xs[0] != 1):
            return "declined: dynamic shapes (only the time axis may be dynamic, at batch 1)"
        elem = ir.RankedTensorType(init.type).element_type
        if not isinstance(elem, ir.FloatType):
            return f"declined: element type {elem} is not a float"
        strides = list(ir.DenseIntElementsAttr(op.attributes["strides"]))
        dilations = list(ir.DenseIntElementsAttr(op.attributes["dilations"]))
        grouped = op.name == "linalg.conv_2d_ngchw_gfchw"
        axis = 0
        if grouped:
            # torch-mlir expands a grouped Conv1d to 2-D with a unit H or W: find the real axis.
            units = [d for d in (3, 4) if xs[d] == 1 and ws[d] == 1 and os_[d] == 1]
            if not units:
                return "declined: a true 2-D convolution (no unit spatial dimension)"
            unit = units[-1]
            axis = 7 - unit  # the other spatial dim: 4 if unit is 3, 3 if unit is 4
            n, g, cg = xs[0], xs[1], xs[2]
            fg, k = ws[1], ws[axis]
            stride, dil = strides[axis - 3], dilations[axis - 3]
        else:
            n, cg, _ = xs
            fg, _, k = ws
            g, unit = 1, None
            stride, dil = strides[0], dilations[0]
        wo = os_[axis] if grouped else os_[-1]
        col_bytes = g * n * (wo or 0) * cg * k * (elem.width // 8)  # unknown for a dynamic width
        if col_bytes > self.max_col_mb * 2**20:
            return f"declined: im2col buffer of {col_bytes / 2**20:.0f} MiB exceeds max-col-mb"

        if n == 1:
            tile = self._mmt4d_tile(context)
            const = (b.constant_value(w, context.weights)
                     if tile and not grouped and isinstance(wo, int) and isinstance(elem, ir.F32Type)
                     else None)
            if const is not None:
                with ir.InsertionPoint(op), op.location:
                    result = self._packed(op, x, const, init, elem, fg, cg, k, wo, stride, dil, tile, context)
                op.results[0].replace_all_uses_with(result)
                op.erase()
                return None
            with ir.InsertionPoint(op), op.location:
                if wo is None:  # a dynamic number of frames
                    wo = b.dim(init, axis if grouped else 2)
                result = self._batch1(x, w, init, elem, grouped, unit, axis, g, fg, cg, k, wo, stride, dil)
            op.results[0].replace_all_uses_with(result)
            op.erase()
            return None

        with ir.InsertionPoint(op), op.location:
            # col[g, n, w, c, k] = x[n, (g,) c, (0,) w*stride + k*dilation]
            def x_map(d):
                gi, ni, wi, ci, ki = d
                pos = wi * stride + ki * dil
                if not grouped:
                    return [ni, ci, pos]
                zero = ir.AffineConstantExpr.get(0)
                return [ni, gi, ci, pos, zero] if unit == 4 else [ni, gi, ci, zero, pos]

            col = b.generic([x], b.empty([g, n, wo, cg, k], elem),
                            [b.affine_map(5, x_map), b.affine_map(5, lambda d: d)],
                            [b.PARALLEL] * 5, lambda v, _out: v)
            col = b.collapse(col, [[0], [1, 2], [3, 4]])  # [G, N*Wo, Cg*K]
            w_t = self._packed_weight(op, w, g, fg, cg, k, context)  # [G, Cg*K, Fg]
            if g == 1:
                col2 = b.collapse(col, [[0, 1], [2]])
                w2 = b.collapse(w_t, [[0, 1], [2]])
                mm = b.matmul(col2, w2, b.zeros([n * wo, fg], elem))
                mm = b.expand(mm, [[0, 1], [2]], [n, wo, fg])  # [N, Wo, F]
                maps = [b.affine_map(3, lambda d: [d[0], d[2], d[1]]), b.affine_map(3, lambda d: d)]
                iters = 3
            else:
                mm = b.batch_matmul(col, w_t, b.zeros([g, n * wo, fg], elem))
                mm = b.expand(mm, [[0], [1, 2], [3]], [g, n, wo, fg])  # [G, N, Wo, Fg]
                # out dims (n, g, f, h, w) read mm[g, n, <conv axis>, f]
                maps = [b.affine_map(5, lambda d: [d[1], d[0], d[axis], d[2]]), b.affine_map(5, lambda d: d)]
                iters = 5
            result = b.generic([mm], init, maps, [b.PARALLEL] * iters,
                               lambda p, acc: arith.AddFOp(acc, p).result)
        op.results[0].replace_all_uses_with(result)
        op.erase()
        return None

    def _mmt4d_tile(self, context) -> int:
        """The f32 mmt4d tile (rows and columns) for the packed form: 16 with AVX-512, 8 on
        other CPUs (IREE's own f32 data tiling: 16x16x1 on AVX-512, 8x8x1 on AVX2 and
        NEON); 0 (no packed form) off the CPU, or when the pass option turns it off."""
        target = context.target
        if not self.packed or (target is not None and not target.is_cpu):
            return 0
        if self.tile > 0:
            return self.tile
        if row_tiles.is_arm(target):
            return 8
        if target is None or target.name == "host":
            from wispy.targets import host_cpu_flags

            return 16 if any("avx512f" in f for f in host_cpu_flags()) else 8
        return 8

    def _packed(self, op, x, const, init, elem, fg, cg, k, wo, stride, dil, tile, context):
        """out[F, Wo] as linalg.mmt4d on operands wispy packs itself: the weight as
        [F1, C*K, T, 1] at compile time, the input columns as [W1, C*K, T, 1] by one
        generic whose innermost dimension reads T consecutive frames (one vector load at
        stride 1). Why not let IREE data-tile the plain matmul: it fuses the im2col gather
        into its own packing, which its codegen runs one element at a time. The reduction
        may be split into mmt4d's of `k_block` elements chained through the accumulator, so
        the weight and column tiles one output tile reads stay in cache; off by default, as
        IREE detaches each block's accumulator and sums the blocks in one more dispatch
        (docs/design/compiler.md#conv1d-as-a-packed-matmul)."""
        array, key = const
        f1, w1 = -(-fg // tile), -(-wo // tile)
        ck = cg * k
        wp = np.zeros((f1 * tile, ck), array.dtype)
        wp[:fg] = array.reshape(fg, ck)
        packed_w = wp.reshape(f1, tile, ck, 1).transpose(0, 2, 1, 3)  # [F1, C*K, T, 1]
        # Frames read by the last (padded) column tile: pad the input with zeros up to them.
        need = (w1 * tile - 1) * stride + (k - 1) * dil + 1
        have = b.shape(x)[-1]
        if need > have:
            x = b.pad_high(x, [0, 0, need - have])
        # cols[w1, c, k, i] = x[0, c, (w1*T + i)*stride + k*dil]
        cols = b.generic([x], b.empty([w1, cg, k, tile], elem),
                         [b.affine_map(4, lambda d: [ir.AffineConstantExpr.get(0), d[1],
                                                     (d[0] * tile + d[3]) * stride + d[2] * dil]),
                          b.affine_map(4, lambda d: d)],
                         [b.PARALLEL] * 4, lambda v, _out: v)
        cols = b.expand(b.collapse(cols, [[0], [1, 2], [3]]), [[0], [1], [2, 3]], [w1, ck, tile, 1])
        n_blocks = max(1, -(-ck // self.k_block)) if self.k_block > 0 else 1
        bounds = [round(i * ck / n_blocks) for i in range(n_blocks + 1)]
        acc = b.zeros([f1, w1, tile, tile], elem)
        for i, (k0, k1) in enumerate(zip(bounds[:-1], bounds[1:])):
            piece = np.ascontiguousarray(packed_w[:, k0:k1])
            name = f"{key or 'conv'}.mmt4d{tile}" + (f".k{i}" if n_blocks > 1 else "")
            if context.weights is not None:
                lhs = b.new_weight(op, context.weights, name, piece)
            else:
                lhs = arith.ConstantOp(ir.RankedTensorType.get(list(piece.shape), elem),
                                       ir.DenseElementsAttr.get(piece)).result
            rhs = cols if n_blocks == 1 else b.extract_slice(cols, [0, k0, 0, 0], [w1, k1 - k0, tile, 1])
            acc = b.mmt4d(lhs, rhs, acc)
        out = b.unpack(acc, b.empty([fg, wo], elem), [0, 1], [tile, tile])
        out = b.expand(out, [[0, 1], [2]], [1, fg, wo])
        ident = b.affine_map(3, lambda d: d)
        return b.generic([out], init, [ident, ident], [b.PARALLEL] * 3,
                         lambda p, acc: arith.AddFOp(acc, p).result)

    def _batch1(self, x, w, init, elem, grouped, unit, axis, g, fg, cg, k, wo, stride, dil):
        """Batch 1, the common case of speech inference: out[g][Fg, Wo] = W[g][Fg, Cg*K] @
        col[g][Cg*K, Wo]. The weight is only reshaped, the gather copies contiguous runs
        of time, and the product is already in NCW order: no transposes at all. A 1x1
        convolution with stride 1 multiplies the input itself."""
        wp = b.shape(x)[axis if grouped else -1]
        if k == 1 and stride == 1 and isinstance(wo, int) and wp == wo:
            col = b.collapse(x, [[0, 1], [2]]) if not grouped else \
                b.collapse(x, [[0, 1], [2], [3, 4]])  # [C, Wo] or [G, Cg, Wo]
            col = col if grouped else b.expand(col, [[0, 1], [2]], [1, cg, wo])
        else:
            # col[g, c, k, w] = x[0, (g,) c, (0,) w*stride + k*dilation]
            def x_map(d):
                gi, ci, ki, wi = d
                pos = wi * stride + ki * dil
                zero = ir.AffineConstantExpr.get(0)
                if not grouped:
                    return [zero, ci, pos]
                return [zero, gi, ci, pos, zero] if unit == 4 else [zero, gi, ci, zero, pos]

            col = b.generic([x], b.empty([g, cg, k, wo], elem),
                            [b.affine_map(4, x_map), b.affine_map(4, lambda d: d)],
                            [b.PARALLEL] * 4, lambda v, _out: v)
            col = b.collapse(col, [[0], [1, 2], [3]])  # [G, Cg*K, Wo]
        if grouped:  # [G, Fg, Cg, KH, KW] with a unit kernel dim -> [G, Fg, Cg*K]
            w3 = b.collapse(w, [[0], [1], [2, 3, 4]])
        else:        # [F, C, K] -> [F, C*K]
            w3 = b.collapse(w, [[0], [1, 2]])
        if g == 1:
            w2 = w3 if not grouped else b.collapse(w3, [[0, 1], [2]])
            mm = b.matmul(w2, b.collapse(col, [[0, 1], [2]]), b.zeros([fg, wo], elem))
            if grouped:  # [F, Wo] -> out dims (n, g, f, h, w)
                mm = b.expand(mm, [[0, 1], [2]], [1, fg, wo])
                maps = [b.affine_map(5, lambda d: [d[1], d[2], d[axis]]), b.affine_map(5, lambda d: d)]
                iters = 5
            else:
                mm = b.expand(mm, [[0, 1], [2]], [1, fg, wo])
                maps = [b.affine_map(3, lambda d: d), b.affine_map(3, lambda d: d)]
                iters = 3
        else:
            mm = b.batch_matmul(w3, col, b.zeros([g, fg, wo], elem))  # [G, Fg, Wo]
            maps = [b.affine_map(5, lambda d: [d[1], d[2], d[axis]]), b.affine_map(5, lambda d: d)]
            iters = 5
        return b.generic([mm], init, maps, [b.PARALLEL] * iters, lambda p, acc: arith.AddFOp(acc, p).result)

    def _packed_weight(self, op, w, g, fg, cg, k, context):
        """The weight as [G, Cg*K, Fg]: repacked in numpy when it is a known constant."""
        const = b.constant_value(w, context.weights)
        if const is not None:
            array, key = const
            packed = np.ascontiguousarray(array.reshape(g, fg, cg * k).transpose(0, 2, 1))
            if context.weights is not None:
                return b.new_weight(op, context.weights, f"{key or 'conv'}.im2col", packed)
            elem = ir.RankedTensorType(w.type).element_type  # no store: an inline constant
            return arith.ConstantOp(ir.RankedTensorType.get(list(packed.shape), elem),
                                    ir.DenseElementsAttr.get(packed)).result
        if g > 1:  # [G, Fg, Cg, KH, KW] with one unit kernel dim -> [G, Fg, Cg*K]
            w3 = b.collapse(w, [[0], [1], [2, 3, 4]])
        else:      # [F, C, K] -> [1, F, C*K]
            w3 = b.expand(b.collapse(w, [[0], [1, 2]]), [[0, 1], [2]], [1, fg, cg * k])
        return b.transpose(w3, [0, 2, 1])

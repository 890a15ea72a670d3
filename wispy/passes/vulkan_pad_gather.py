"""wispy-vulkan-pad-gather: on Vulkan, a `tensor.pad` whose low padding of the innermost
dimension is not a whole 16 bytes becomes a gather: a `linalg.generic` over the padded
shape that reads `src[i - low]` with `tensor.extract` where `i` falls inside the source
and yields the padding value elsewhere.

Why: IREE 3.13 turns a pad into a fill plus an insert of the source at the low offsets,
and fuses the insert into the dispatch that produces the source (a matmul, an
elementwise op: the previous layer). Its SPIR-V code then views the padded buffer as
`vector<4xf32>` elements and drops the insert's offset (2 floats is 0 vec4s): the
producer's values land at column 0 instead of column `low`, silently. Any
[... , W] -> [..., W + low + high] pad with `W + low + high` a multiple of 4 and `low`
not one is wrong (`nn.Conv1d(padding=2)` after any layer, `F.pad(tanh(x), (2, 2))`);
a pad of a function argument (no producer dispatch) is right. Minimal repro:
docs/known-issues/vulkan-misaligned-pad-store.mlir (docs/design/known-issues.md).
As a gather the pad's dispatch writes the whole buffer from offset 0.

Runs on linalg (the wispy phase); the compile pipeline runs it on every Vulkan build
after the wispy passes, even when `wispy_pipeline` is empty, since without it the
module is wrong. CPU targets keep their pads (IREE's CPU code is right).
`always=true` rewrites on every target (for the IR tests).
Declines pads with dynamic low or high amounts, a padding value computed inside the
pad's region, or an empty source dimension.
"""
from __future__ import annotations

from dataclasses import dataclass

from wispy._mlir import arith, ir, linalg, tensor
from wispy.ir import builders as b
from wispy.passes.base import PassContext, WispyPass, walk_ops

_ALIGN_BYTES = 16  # IREE's SPIR-V load/store vectorization: vector<4xf32>


@dataclass(frozen=True)
class VulkanPadGatherPass(WispyPass):
    name = "wispy-vulkan-pad-gather"
    always: bool = False  # on every target, not only Vulkan

    def run(self, module: ir.Operation, context: PassContext) -> None:
        if not self.always and getattr(context.target, "name", None) != "vulkan":
            return
        for op in walk_ops(module, "tensor.pad"):
            why = _rewrite(op)
            if why:
                context.remark(self.name, op.location, why)


def _rewrite(op: ir.Operation):
    src = op.operands[0]
    low = list(ir.DenseI64ArrayAttr(op.attributes["static_low"]))
    high = list(ir.DenseI64ArrayAttr(op.attributes["static_high"]))
    dynamic = ir.ShapedType.get_dynamic_size()
    if dynamic in low or dynamic in high:
        return "declined: dynamic padding amounts"
    src_t = ir.RankedTensorType(src.type)
    elem = src_t.element_type
    width = max(1, _bit_width(elem) // 8)
    if (low[-1] * width) % _ALIGN_BYTES == 0:
        return None  # an aligned offset: IREE's code is right
    if 0 in b.shape(src):
        return "declined: an empty source dimension"
    body = op.regions[0].blocks[0]
    ops = list(body.operations)
    if len(ops) != 1:
        return "declined: the padding value is computed inside the pad"
    pad_value = ops[0].operands[0]
    with ir.InsertionPoint(op), op.location:
        result = _gather(src, src_t, elem, low, high, pad_value, op.result.type)
    op.result.replace_all_uses_with(result)
    op.erase()
    return None


def _bit_width(elem: ir.Type) -> int:
    for cls in (ir.FloatType, ir.IntegerType):
        if isinstance(elem, cls):
            return elem.width
    return 32


def _gather(src, src_t, elem, low, high, pad_value, out_type):
    index = ir.IndexType.get()
    rank = src_t.rank
    out_t = ir.RankedTensorType(out_type)

    def const(v):
        return arith.ConstantOp(index, v).result

    src_sizes = [b.dim(src, i) if src_t.is_dynamic_dim(i) else const(src_t.shape[i]) for i in range(rank)]
    out_sizes = [arith.AddIOp(src_sizes[i], const(low[i] + high[i])).result if out_t.is_dynamic_dim(i)
                 else out_t.shape[i] for i in range(rank)]
    init = b.empty(out_sizes, elem)
    zero = const(0)

    def body(_out):
        inside, coords = None, []
        for i in range(rank):
            at = linalg.IndexOp(i).result
            if low[i] == 0 and high[i] == 0:
                coords.append(at)
                continue
            j = arith.SubIOp(at, const(low[i])).result
            ok = arith.AndIOp(arith.CmpIOp(arith.CmpIPredicate.sge, j, zero).result,
                              arith.CmpIOp(arith.CmpIPredicate.slt, j, src_sizes[i]).result).result
            inside = ok if inside is None else arith.AndIOp(inside, ok).result
            last = arith.SubIOp(src_sizes[i], const(1)).result
            coords.append(arith.MinSIOp(arith.MaxSIOp(j, zero).result, last).result)
        value = tensor.ExtractOp(src, coords).result
        return arith.SelectOp(inside, value, pad_value).result

    ident = b.affine_map(rank, lambda d: d)
    return b.generic([], init, [ident], [b.PARALLEL] * rank, body)

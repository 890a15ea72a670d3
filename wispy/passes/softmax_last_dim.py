"""wispy-softmax-last-dim: on Vulkan, a softmax or log-softmax over any dimension but the
last becomes transpose -> the same op over the last dimension -> transpose back.

Why: IREE 3.13's SPIR-V code for a reduction over a dimension that is not the innermost,
fused with its elementwise consumer (log-softmax's max and subtract over the channels of
a channels-first [B, C, T] tensor, as Wav2letter and ConvDFSMN end), read and wrote the
wrong elements when T was not a multiple of the workgroup's 16 columns: NaNs and wrong
values that changed from run to run on lavapipe (log_softmax(dim=1) of [1, 29, 50];
[1, 29, 64] was right; tests/compiler/test_ops.py::test_channels_first_log_softmax_vulkan). Over the last dimension IREE takes its subgroup
reduction, which is right; the transposes are two small copies. CPU targets keep the op
as it is (their code is right and the copies would cost).

Runs on the imported torch-dialect module (the torch phase), before the recurrent kernel
and the int8 passes. `always=true` rewrites on every target (for the IR tests).
"""
from __future__ import annotations

from dataclasses import dataclass

from wispy._mlir import ir
from wispy.ir import builders as b
from wispy.passes.base import PassContext, WispyPass, walk_ops

# (op, its operands: self, dim, then one more operand kept as it is)
SOFTMAX_OPS = ("torch.aten._log_softmax", "torch.aten._softmax", "torch.aten.log_softmax.int",
               "torch.aten.softmax.int")


@dataclass(frozen=True)
class SoftmaxLastDimPass(WispyPass):
    name = "wispy-softmax-last-dim"
    always: bool = False  # on every target, not only Vulkan

    def run(self, module: ir.Operation, context: PassContext) -> None:
        if not self.always and getattr(context.target, "name", None) != "vulkan":
            return
        for op_name in SOFTMAX_OPS:
            for op in walk_ops(module, op_name):
                _rewrite(op, context)


def _rewrite(op: ir.Operation, context: PassContext) -> None:
    x, dim_v = op.operands[0], op.operands[1]
    try:
        sizes, elem = b.vtensor_shape(x.type)
    except ValueError:
        return
    rank, dim = len(sizes), b.torch_int(dim_v)
    if dim is None or rank < 2:
        return
    dim %= rank
    if dim == rank - 1:
        return
    swapped = list(sizes)
    swapped[dim], swapped[-1] = swapped[-1], swapped[dim]

    def vtensor(shape):
        return ir.Type.parse("!torch.vtensor<[%s],%s>" % (",".join("?" if s < 0 else str(s) for s in shape), elem))

    with ir.InsertionPoint(op), op.location:
        int_type = ir.Type.parse("!torch.int")

        def const(v):
            return ir.Operation.create("torch.constant.int", results=[int_type],
                                       attributes={"value": ir.IntegerAttr.get(ir.IntegerType.get_signless(64), v)}
                                       ).result

        d, last = const(dim), const(rank - 1)

        def transpose(v, shape):
            return ir.Operation.create("torch.aten.transpose.int", results=[vtensor(shape)],
                                       operands=[v, d, last]).result

        t = transpose(x, swapped)
        inner = ir.Operation.create(op.name, results=[vtensor(swapped)],
                                    operands=[t, last] + list(op.operands)[2:]).result
        back = transpose(inner, sizes)
    loc, what = op.location, op.name.removeprefix("torch.aten.")
    op.results[0].replace_all_uses_with(back)
    op.erase()
    context.remark(SoftmaxLastDimPass.name, loc, f"{what} over dimension {dim} of {rank} taken over the last "
                   "between two transposes")

"""wispy-int8-vnni: each `wispy::int8_matmul_vnni` op (an int8 product of a quantized
layer, emitted at export for hosts with AVX-512 VNNI, see wispy.compiler.quant_lowering)
becomes a call of wispy's hand-written VNNI matmul (wispy/passes/int8_vnni_kernel.py).

Runs on the imported torch-dialect module (the torch phase). The weight arrives packed by
torch ops on the constant, which IREE folds at compile time; the pass needs only the
operands' static sizes. Fails (with the op's location) on dynamic sizes or sizes that are
not whole tiles, which the export does not emit.
"""
from __future__ import annotations

from dataclasses import dataclass

from .._mlir import ir
from . import builders as b
from . import int8_vnni_kernel
from .base import PassContext, PassFailure, WispyPass, walk_ops

OP_NAME = "torch.wispy.int8_matmul_vnni"


@dataclass(frozen=True)
class Int8VnniPass(WispyPass):
    name = "wispy-int8-vnni"

    def run(self, module: ir.Operation, context: PassContext) -> None:
        ops = [op for op in walk_ops(module, "torch.operator")
               if ir.StringAttr(op.attributes["name"]).value == OP_NAME]
        if not ops:
            return
        body = module.regions[0].blocks[0]
        made = set()
        for op in ops:
            with op.location:
                _lower(op, body, made, context)


def _lower(op: ir.Operation, body, made: set, context: PassContext) -> None:
    loc = op.location
    a_t, w_t, c_t = op.operands
    (M, K), ea = b.vtensor_shape(a_t.type)
    (NB, K4, lanes), ew = b.vtensor_shape(w_t.type)
    (N,), ec = b.vtensor_shape(c_t.type)
    if min(M, K, NB, K4, N) < 0:
        raise PassFailure("wispy.int8_matmul_vnni needs static sizes", loc)
    if (ea, ew, ec) != ("si8", "si8", "si32") or lanes != 64 or K != 4 * K4 or N != 16 * NB:
        raise PassFailure(f"wispy.int8_matmul_vnni: operands {a_t.type}, {w_t.type}, {c_t.type} "
                          "are not A [M, K] int8, W [N/16, K/4, 64] int8, corr [N] int32", loc)
    if M % int8_vnni_kernel.ROWS or N % int8_vnni_kernel.COLS:
        raise PassFailure(f"wispy.int8_matmul_vnni: {M} rows and {N} columns are not whole tiles of "
                          f"{int8_vnni_kernel.ROWS} x {int8_vnni_kernel.COLS}", loc)
    name = f"wispy_int8_vnni_{M}x{K}x{N}"
    if name not in made:  # one executable per shape
        b.append_text(body, int8_vnni_kernel.executable(name, M, K, N), op.context)
        made.add(name)
    context.remark(Int8VnniPass.name, loc, f"int8 product {M}x{K} @ {K}x{N} on wispy's VNNI kernel")
    args = [b.to_builtin(v, op) for v in (a_t, w_t, c_t)]
    b.replace_by_call(op, f"{name}_call", args, ir.RankedTensorType.get([M, N], ir.IntegerType.get_signless(32)))

"""wispy-int8-vnni: each `wispy::int8_matmul_vnni` op (an int8 product of a quantized
layer, emitted at export for hosts with AVX-512 VNNI, see wispy.dialects.vnni)
becomes a call of wispy's hand-written VNNI matmul (wispy/kernels/int8_vnni.py).

Runs on the imported torch-dialect module (the torch phase). The weight arrives packed by
torch ops on the constant, which IREE folds at compile time; the pass needs only the
operands' static sizes. Fails (with the op's location) on dynamic sizes or
columns that are not whole tiles, which the export does not emit. A [G, M, K] operand (with
the weight [G, N/16, K/4, 64] and corr [G, N]) is G products in one dispatch.
"""
from __future__ import annotations

from dataclasses import dataclass

from wispy._mlir import ir
from wispy.ir import builders as b
from wispy.kernels import int8_vnni as int8_vnni_kernel
from wispy.passes.base import PassContext, PassFailure, WispyPass, walk_ops

OP_NAME = "torch.wispy.int8_matmul_vnni"
CONV_OP_NAME = "torch.wispy.int8_conv_vnni"  # the same, A read through a Window


@dataclass(frozen=True)
class Int8VnniPass(WispyPass):
    name = "wispy-int8-vnni"

    def run(self, module: ir.Operation, context: PassContext) -> None:
        ops = [op for op in walk_ops(module, "torch.operator")
               if ir.StringAttr(op.attributes["name"]).value in (OP_NAME, CONV_OP_NAME)]
        if not ops:
            return
        body = module.regions[0].blocks[0]
        made = set()
        for op in ops:
            with op.location:
                _lower(op, body, made, context)


def _constant_int(value: ir.Value, what: str, loc) -> int:
    v = b.torch_int(value)
    if v is None:
        raise PassFailure(f"wispy.int8_conv_vnni: {what} must be a constant", loc)
    return v


def _lower(op: ir.Operation, body, made: set, context: PassContext) -> None:
    loc = op.location
    conv = ir.StringAttr(op.attributes["name"]).value == CONV_OP_NAME
    a_t, w_t, c_t = list(op.operands)[:3]
    what = "wispy.int8_conv_vnni" if conv else "wispy.int8_matmul_vnni"
    a_shape, ea = b.vtensor_shape(a_t.type)
    w_shape, ew = b.vtensor_shape(w_t.type)
    c_shape, ec = b.vtensor_shape(c_t.type)
    batched = len(a_shape) == 3  # G products in one dispatch (the Winograd positions)
    lead = len(a_shape) - 2
    if min(a_shape + w_shape + c_shape, default=0) < 0:
        raise PassFailure(f"{what} needs static sizes", loc)
    shaped = (len(a_shape) in (2, 3) and len(w_shape) == lead + 3 and len(c_shape) == lead + 1
              and a_shape[:lead] == w_shape[:lead] == c_shape[:lead])
    if shaped:
        (rows, Ka), (NB, K4, lanes), (N,) = a_shape[lead:], w_shape[lead:], c_shape[lead:]
        K = 4 * K4
    if (not shaped or (ea, ew, ec) != ("si8", "si8", "si32") or lanes != 64 or N != 16 * NB
            or (Ka != K if not conv else (Ka % 4 or K % Ka))):
        raise PassFailure(f"{what}: operands {a_t.type}, {w_t.type}, {c_t.type} are not A "
                          "[(G,) M, K] int8 (a convolution's: [(G,) rows, channels], channels dividing K), "
                          "W [(G,) N/16, K/4, 64] int8, corr [(G,) N] int32", loc)
    if N % int8_vnni_kernel.COLS:
        raise PassFailure(f"{what}: {N} columns are not whole tiles of {int8_vnni_kernel.COLS}", loc)
    window, M, scale = None, rows, None
    if conv and len(op.operands) > 7 and not str(op.operands[7].type).startswith("!torch.none"):
        scale = op.operands[7]  # f32(product) * scale[n]: the kernel's result is float32
        s_shape, es = b.vtensor_shape(scale.type)
        if es != "f32" or s_shape != c_shape:
            raise PassFailure(f"{what}: the scale {scale.type} is not [(G,) N] float32 like corr {c_t.type}", loc)
    if conv:
        tiles, seq_rows, row_stride, piece_stride = (
            _constant_int(v, n, loc) for v, n in zip(list(op.operands)[3:7],
                                                      ("tiles", "seq_rows", "row_stride", "piece_stride")))
        P = K // Ka
        if (min(tiles, seq_rows, row_stride, piece_stride) < 0 or rows % seq_rows
                or row_stride * (tiles - 1) + piece_stride * (P - 1) >= seq_rows):
            raise PassFailure(f"{what}: {tiles} tiles of stride {row_stride}, {P} pieces of stride "
                              f"{piece_stride} do not fit sequences of {seq_rows} of the {rows} rows", loc)
        window = int8_vnni_kernel.Window(tiles, seq_rows, row_stride, piece_stride)
        M = rows // seq_rows * tiles
    G = a_shape[0] if batched else None
    name = (f"wispy_int8_vnni_{'%dx' % G if batched else ''}{M}x{K}x{N}"
            + (f"_from{rows}x{Ka}_t{tiles}_s{row_stride}_p{piece_stride}" if window else "")
            + ("_scaled" if scale is not None else ""))
    if name not in made:  # one executable per shape
        b.append_text(body, int8_vnni_kernel.executable(name, M, K, N, G, window, Ka, scale is not None),
                      op.context)
        made.add(name)
    count = f"{G} int8 products" if batched else "int8 product"
    read = f", read from the convolution's input ({Ka} channels, {K // Ka} pieces)" if window else ""
    scaled = ", scaled per column" if scale is not None else ""
    context.remark(Int8VnniPass.name, loc, f"{count} {M}x{K} @ {K}x{N} on wispy's VNNI kernel{read}{scaled}")
    args = [b.to_builtin(v, op) for v in (a_t, w_t, c_t) + ((scale,) if scale is not None else ())]
    out = ([G] if batched else []) + [M, N]
    elt = ir.F32Type.get() if scale is not None else ir.IntegerType.get_signless(32)
    b.replace_by_call(op, f"{name}_call", args, ir.RankedTensorType.get(out, elt))

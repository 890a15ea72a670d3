"""wispy's own ops (the `wispy::` torch.library namespace), one module per family:

    recurrent   wispy::gru_sequence, wispy::lstm_sequence   (lowered by wispy-recurrent-kernel)
    quant       wispy::qconv1d, winograd_qconv1d, qlinear   (decomposed at export: quant_lowering)
    vnni        wispy::int8_matmul_vnni, int8_conv_vnni     (lowered by wispy-int8-vnni)
    bspc        the block-sparse storage format the kernels read (no op)
    winograd    the integer Winograd contract the int8 ops follow (numpy reference, no op)

Importing this package registers every op. `OPS` maps each op's name to its `WispyOp`
(schema, fake, reference, lowering, select, test); `decompositions(options)` is what the
export applies to the ops that leave wispy as ATen ops. README.md has the table.
"""
from __future__ import annotations

import functools

from wispy.dialects import quant, recurrent, vnni
from wispy.dialects.base import Decomposition, LoweredByPass, WispyOp
from wispy.dialects.quant_lowering import LoweringOptions

OPS: dict[str, WispyOp] = {op.name: op for family in (recurrent, quant, vnni) for op in family.OPS}


def get_op(name: str) -> WispyOp:
    """The op called `name` ("wispy::qconv1d" or "qconv1d")."""
    key = name if name.startswith("wispy::") else f"wispy::{name}"
    try:
        return OPS[key]
    except KeyError:
        raise KeyError(f"no wispy op {name!r}: the ops are {', '.join(sorted(OPS))}") from None


def _bind(op: WispyOp, options: LoweringOptions):
    fn = op.lowering.fn

    @functools.wraps(fn)
    def lowered(*args, **kwargs):
        return fn(options, *args, **kwargs)

    return lowered


def decompositions(options: LoweringOptions = LoweringOptions()) -> dict:
    """{op overload: its ATen lowering with `options`} for every op lowered at export."""
    return {op.overload: _bind(op, options) for op in OPS.values() if isinstance(op.lowering, Decomposition)}


__all__ = ["OPS", "Decomposition", "LoweredByPass", "LoweringOptions", "WispyOp", "decompositions", "get_op"]

"""Small IR matchers and clean-up helpers shared by wispy's passes: who defines a value,
what a generic's body computes, and erasing what a rewrite left unused."""
from __future__ import annotations

import hashlib
from typing import Optional

import numpy as np

from wispy._mlir import ir


def owner(value: ir.Value) -> Optional[ir.Operation]:
    o = value.owner
    if not isinstance(o, ir.Operation) and hasattr(o, "operation"):
        o = o.operation
    return o if isinstance(o, ir.Operation) else None


def body_ops(op: ir.Operation) -> list:
    return [o.operation for o in op.regions[0].blocks[0].operations]


def is_binary(op: ir.Operation, name: str) -> bool:
    """The body is `yield name(arg0, arg1)` over the two inputs."""
    ops = body_ops(op)
    if len(ops) != 2 or ops[0].name != name or ops[1].name != "linalg.yield":
        return False
    a0, a1 = list(op.regions[0].blocks[0].arguments)[:2]
    x, y = list(ops[0].operands)
    return (x == a0 and y == a1) or (x == a1 and y == a0)


def is_sum_reduction(op: ir.Operation) -> bool:
    """A 3-D generic summing its one input over the last dim into a [d0, d1] output."""
    iters = [str(a) for a in op.attributes["iterator_types"]]
    if iters != ["#linalg.iterator_type<parallel>"] * 2 + ["#linalg.iterator_type<reduction>"]:
        return False
    if len(op.operands) != 2:
        return False
    maps = [str(ir.AffineMapAttr(a).value) for a in op.attributes["indexing_maps"]]
    if maps != ["(d0, d1, d2) -> (d0, d1, d2)", "(d0, d1, d2) -> (d0, d1)"]:
        return False
    return is_binary(op, "arith.addf")


def is_zero_fill(value: ir.Value) -> bool:
    op = owner(value)
    if op is None or op.name != "linalg.fill":
        return False
    cst = owner(op.operands[0])
    return cst is not None and cst.name == "arith.constant" and \
        float(ir.FloatAttr(cst.attributes["value"]).value) == 0.0


def weight_identity(w: np.ndarray, key):
    """What a weight is known by: its parameter name, or for an unnamed constant its
    contents (never id(): a freed array's id is reused by the next one)."""
    if key:
        return key
    return ("constant", w.shape, str(w.dtype), hashlib.sha1(np.ascontiguousarray(w).tobytes()).hexdigest())


PURE = ("arith.constant", "linalg.generic", "linalg.transpose", "linalg.fill", "tensor.empty", "util.global.load",
        "tensor.collapse_shape", "tensor.expand_shape", "torch_c.from_builtin_tensor")


def erase_if_dead(value: ir.Value) -> None:
    """Erases the pure op defining `value` once nothing uses it, then its operands'."""
    op = owner(value)
    if op is None or op.name not in PURE or any(list(r.uses) for r in op.results):
        return
    operands = list(op.operands)
    op.erase()
    for v in operands:
        erase_if_dead(v)


def users(value: ir.Value) -> list:
    return [u.owner for u in value.uses]


def _only_add_user(result: ir.Value) -> Optional[ir.Operation]:
    """The elementwise (all-parallel) two-input addf generic that is the only use of
    `result`, else None."""
    found = users(result)
    if len(found) != 1:
        return None
    op = found[0]
    op = op.operation if hasattr(op, "operation") else op
    if op.name != "linalg.generic" or len(op.operands) != 3 or not is_binary(op, "arith.addf"):
        return None
    if any(str(t) != "#linalg.iterator_type<parallel>" for t in op.attributes["iterator_types"]):
        return None
    return op


def _maps(op: ir.Operation) -> list[str]:
    return [str(ir.AffineMapAttr(a).value) for a in op.attributes["indexing_maps"]]


def addend_of(result: ir.Value) -> Optional[tuple[ir.Operation, ir.Value]]:
    """(the op, the other operand) when the only use of `result` is an elementwise add of
    a tensor of the same shape (an LSTM step's `gi_t + W_hh h`), else None."""
    op = _only_add_user(result)
    if op is None:
        return None
    ident = str(ir.AffineMap.get_identity(len(ir.RankedTensorType(result.type).shape)))
    ins = [op.operands[0], op.operands[1]]
    if any(m != ident for m in _maps(op)) or result not in ins or ins[0] == ins[1] or \
            op.operands[2].type != result.type:
        return None
    other = ins[1] if ins[0] == result else ins[0]
    return (op, other) if other.type == result.type else None


def bias_add_of(result: ir.Value, m: int) -> Optional[ir.Operation]:
    """The op adding a 1-D [M] bias to the 2-D `result` when that is its only use (the
    product of a Linear or of a GRU's recurrent matrix): `result + bias[m]`, elementwise."""
    op = _only_add_user(result)
    if op is None or op.operands[0] != result:
        return None
    if _maps(op) != ["(d0, d1) -> (d0, d1)", "(d0, d1) -> (d1)", "(d0, d1) -> (d0, d1)"] or \
            ir.RankedTensorType(op.operands[1].type).shape != [m]:
        return None
    return op

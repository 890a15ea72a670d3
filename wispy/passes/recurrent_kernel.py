"""wispy-recurrent-kernel: each `wispy::gru_sequence` op (a GRU layer's recurrence over
all frames, emitted at export for CPU targets when its recurrent matrix is block-sparse,
see wispy.compiler.recurrent) becomes one hand-written dispatch that runs every step
(wispy/passes/gru_kernel.py), its recurrent matrix repacked from the weight itself.

Runs on the imported torch-dialect module (the torch phase): the op's operands are
taken as builtin tensors, the matrix is read from its parameter, packed in BSPC buckets
(wispy/passes/bspc.py, the zeros need no mask) and in the kernel's tiles, stored as new
parameters, and the op is replaced by a call of a function that dispatches the kernel.
IREE's input conversion keeps the dispatch as it is.

Fails (with the op's location) on what the export should not have emitted: a matrix
that is not a constant, dynamic sizes, or a hidden size the kernel does not take.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .._mlir import ir
from . import builders as b
from . import bspc, gru_kernel
from .base import PassContext, PassFailure, WispyPass, walk_ops
from .matching import erase_if_dead

OP_NAME = "torch.wispy.gru_sequence"


@dataclass(frozen=True)
class RecurrentKernelPass(WispyPass):
    name = "wispy-recurrent-kernel"
    max_buckets: int = 4   # kernels per matrix (blocks padded to a few sizes)
    row_tile: int = -1     # rows per tile (a vector); -1: chosen per target
    tiles: int = -1        # row tiles in flight; -1: chosen per target

    def run(self, module: ir.Operation, context: PassContext) -> None:
        ops = [op for op in walk_ops(module, "torch.operator")
               if ir.StringAttr(op.attributes["name"]).value == OP_NAME]
        if not ops:
            return
        shape = gru_kernel.shape_for(context.target)
        if self.row_tile > 0 or self.tiles > 0:
            shape = gru_kernel.KernelShape(self.row_tile if self.row_tile > 0 else shape.tl,
                                           self.tiles if self.tiles > 0 else shape.g, shape.uj, shape.gw)
        derived = b.DerivedWeights(context.weights)
        packed: dict = {}
        for n, op in enumerate(ops):
            with op.location:
                _lower(op, f"wispy_gru_sequence_{n}", shape, self.max_buckets, context, derived,
                       packed)
        if context.weights is not None:
            b.erase_unused_globals(module, context.weights)


def _vtensor_shape(t: ir.Type) -> tuple[list, str]:
    """[sizes] and element type of a `!torch.vtensor<[a,b],f32>` (-1: dynamic)."""
    m = re.fullmatch(r"!torch\.vtensor<\[([^\]]*)\],(\w+)>", str(t))
    if not m:
        raise ValueError(str(t))
    sizes = [int(s) if s != "?" else -1 for s in m.group(1).split(",") if s]
    return sizes, m.group(2)


def _builtin(v: ir.Value, anchor: ir.Operation) -> ir.Value:
    """`v` (a torch value) as a builtin tensor."""
    owner = v.owner
    if isinstance(owner, ir.OpView):
        owner = owner.operation
    if isinstance(owner, ir.Operation) and owner.name == "torch_c.from_builtin_tensor":
        return owner.operands[0]
    sizes, elem = _vtensor_shape(v.type)
    ttype = ir.RankedTensorType.get(sizes, ir.F32Type.get() if elem == "f32" else ir.Type.parse(elem))
    with ir.InsertionPoint(anchor), anchor.location:
        return ir.Operation.create("torch_c.to_builtin_tensor", results=[ttype], operands=[v]).result


def _lower(op: ir.Operation, name: str, shape, max_buckets: int, context: PassContext,
           derived, packed: dict) -> None:
    loc = op.location
    gi_t, h0_t, w_t, bias_t = op.operands
    (T, B, M), _ = _vtensor_shape(gi_t.type)
    H = M // 3
    if min(T, B, M) < 0:
        raise PassFailure("wispy.gru_sequence needs static sizes (compile without dynamic shapes)", loc)
    if not gru_kernel.supports(H, shape):
        raise PassFailure(f"wispy.gru_sequence: hidden size {H} is not one the kernel takes", loc)
    w_b = _builtin(w_t, op)
    const = b.constant_value(w_b, context.weights)
    if const is None:
        raise PassFailure("wispy.gru_sequence: the recurrent matrix is not a constant", loc)
    w, key = const
    ident = key if key is not None else id(w)
    if ident not in packed:
        grid, _cost = bspc.detect(np.asarray(w, np.float32))
        sp = bspc.pack(np.ascontiguousarray(w, dtype=np.float32), grid, max_buckets=max_buckets)
        buckets = [gru_kernel.pack_bucket(bk.values, bk.rows, bk.cols, M, shape) for bk in sp.buckets]
        packed[ident] = (sp, buckets)
    sp, buckets = packed[ident]
    context.remark(RecurrentKernelPass.name, loc,
                   f"lowered a GRU recurrence (T={T}, batch {B}, hidden {H}) to one dispatch: {sp.describe()}")

    module = op
    while module.parent is not None:
        module = module.parent
    body = module.regions[0].blocks[0]
    parsed = ir.Module.parse(gru_kernel.executable(name, T, B, H, buckets, shape), module.context)
    for inner in list(parsed.body.operations):
        body.append(inner.operation)

    args = [_builtin(gi_t, op), _builtin(h0_t, op), _builtin(bias_t, op)]
    wkey = key or "recurrent"
    for k, bk in enumerate(buckets):
        for part, arr in (("values", bk.values), ("rows", bk.rows), ("cols", bk.cols)):
            args.append(derived.load(op, (ident, k, part, shape), f"{wkey}.gru_kernel.{k}.{part}",
                                     lambda arr=arr: arr))
    out_type = ir.RankedTensorType.get([T, B, H], ir.F32Type.get())
    with ir.InsertionPoint(op), loc:
        call = ir.Operation.create("func.call", results=[out_type], operands=args,
                                   attributes={"callee": ir.FlatSymbolRefAttr.get(f"{name}_call")})
        back = ir.Operation.create("torch_c.from_builtin_tensor", results=[op.results[0].type],
                                   operands=[call.result])
    op.results[0].replace_all_uses_with(back.result)
    operands = list(op.operands)
    op.erase()
    for v in operands:
        erase_if_dead(v)


MODES = ("auto", "on", "off")


def kernel_predicate(target, mode: str = "auto", min_gain: float = 2.0):
    """For the export (wispy.compiler.recurrent): a function w_hh -> True for the GRU
    layers to export as one wispy::gru_sequence op, or None for none. "auto": on CPU
    targets, recurrent matrices whose block-structured zeros save at least `min_gain`
    times the work (as wispy-block-sparse decides); "on": every GRU layer on CPU targets
    (dense ones too); "off": none."""
    if mode not in MODES:
        raise ValueError(f"recurrent_kernel must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "off" or (target is not None and not getattr(target, "is_cpu", True)):
        return None
    shape = gru_kernel.shape_for(target)

    def use(w_hh) -> bool:
        m, n = w_hh.shape
        if m != 3 * n or not gru_kernel.supports(n, shape):
            return False
        if mode == "on":
            return True
        w = w_hh.detach().float().cpu().numpy()
        try:
            _grid, cost = bspc.detect(w)
        except ValueError:
            return False
        return w.size / max(cost, 1) >= min_gain

    return use

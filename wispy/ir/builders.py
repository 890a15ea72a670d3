"""Small helpers over the dialect builders, shared by the passes: no MLIR text templates."""
from __future__ import annotations

import re
from typing import Callable, Optional, Sequence

import numpy as np

from wispy._mlir import arith, ir, linalg, tensor, util
from wispy.ir.weights import parameter_attr, parameter_key, symbol_for

PARALLEL = "parallel"
REDUCTION = "reduction"


def affine_map(n_dims: int, exprs: Callable[[list], list]) -> ir.AffineMapAttr:
    dims = [ir.AffineDimExpr.get(i) for i in range(n_dims)]
    return ir.AffineMapAttr.get(ir.AffineMap.get(n_dims, 0, exprs(dims)))


def generic(inputs: Sequence[ir.Value], init: ir.Value, maps: Sequence[ir.AffineMapAttr],
            iterators: Sequence[str], body: Callable[..., ir.Value]) -> ir.Value:
    """A one-result linalg.generic; `body(*in_scalars, out_scalar)` returns the yield value."""
    iters = ir.ArrayAttr.get([ir.Attribute.parse(f"#linalg.iterator_type<{t}>") for t in iterators])
    op = linalg.GenericOp([init.type], list(inputs), [init], ir.ArrayAttr.get(list(maps)), iters)
    elem_types = [ir.RankedTensorType(v.type).element_type for v in list(inputs) + [init]]
    block = op.regions[0].blocks.append(*elem_types)
    with ir.InsertionPoint(block):
        linalg.YieldOp([body(*block.arguments)])
    return op.result


def value(x) -> ir.Value:
    """The single result of whatever a dialect builder returned (op or value)."""
    if isinstance(x, ir.Value):
        return x
    if isinstance(x, ir.OpResultList):
        return x[0]
    results = x.results if hasattr(x, "results") else x.operation.results
    return results[0]


def matmul(a: ir.Value, b_: ir.Value, init: ir.Value) -> ir.Value:
    return value(linalg.matmul(a, b_, outs=[init]))


def batch_matmul(a: ir.Value, b_: ir.Value, init: ir.Value) -> ir.Value:
    return value(linalg.batch_matmul(a, b_, outs=[init]))


def transpose(x: ir.Value, permutation: Sequence[int]) -> ir.Value:
    t = ir.RankedTensorType(x.type)
    out = empty([t.shape[p] for p in permutation], t.element_type)
    return value(linalg.transpose(x, outs=[out], permutation=list(permutation)))


def empty(shape: Sequence, elem: ir.Type) -> ir.Value:
    """tensor.empty; a size may be an int or an index Value (a dynamic size)."""
    return tensor.EmptyOp(list(shape), elem).result


def shape(value: ir.Value) -> list:
    """The sizes of a ranked tensor, None where dynamic."""
    t = ir.RankedTensorType(value.type)
    return [None if t.is_dynamic_dim(i) else t.shape[i] for i in range(t.rank)]


def dim(value: ir.Value, i: int) -> ir.Value:
    """Size i of a tensor as an index Value (tensor.dim)."""
    idx = arith.ConstantOp(ir.IndexType.get(), i).result
    return tensor.DimOp(value, idx).result


def zeros(shape: Sequence, elem: ir.Type) -> ir.Value:
    zero = arith.ConstantOp(elem, 0.0 if isinstance(elem, ir.FloatType) else 0).result
    return value(linalg.fill(zero, outs=[empty(shape, elem)]))


_DYN = ir.ShapedType.get_dynamic_size()


def collapse(value: ir.Value, groups: list[list[int]]) -> ir.Value:
    t = ir.RankedTensorType(value.type)
    sizes = [_DYN if any(t.is_dynamic_dim(i) for i in g) else int(np.prod([t.shape[i] for i in g]))
             for g in groups]
    out = ir.RankedTensorType.get(sizes, t.element_type)
    return tensor.CollapseShapeOp(out, value, _reassoc(groups)).result


def expand(value: ir.Value, groups: list[list[int]], sizes: Sequence) -> ir.Value:
    """tensor.expand_shape to `sizes`; a size may be an index Value (dynamic)."""
    t = ir.RankedTensorType(value.type)
    static = [_DYN if isinstance(s, ir.Value) else int(s) for s in sizes]
    dynamic = [s for s in sizes if isinstance(s, ir.Value)]
    out = ir.RankedTensorType.get(static, t.element_type)
    return tensor.ExpandShapeOp(out, value, _reassoc(groups), dynamic, static).result


def extract_slice(value: ir.Value, offsets: Sequence[int], sizes: Sequence[int]) -> ir.Value:
    """A static, unit-stride tensor.extract_slice."""
    t = ir.RankedTensorType(value.type)
    out = ir.RankedTensorType.get(list(sizes), t.element_type)
    return tensor.ExtractSliceOp(out, value, [], [], [], list(offsets), list(sizes), [1] * len(sizes)).result


def pad_high(value: ir.Value, high: Sequence[int]) -> ir.Value:
    """tensor.pad with zeros after the end of each dimension (static sizes)."""
    t = ir.RankedTensorType(value.type)
    out = ir.RankedTensorType.get([s + h for s, h in zip(t.shape, high)], t.element_type)
    op = tensor.PadOp(out, value, [], [], [0] * t.rank, list(high))
    block = op.regions[0].blocks.append(*([ir.IndexType.get()] * t.rank))
    with ir.InsertionPoint(block):
        elem = t.element_type
        zero = arith.ConstantOp(elem, 0.0 if isinstance(elem, ir.FloatType) else 0).result
        tensor.YieldOp(zero)
    return op.result


def mmt4d(lhs: ir.Value, rhs: ir.Value, init: ir.Value) -> ir.Value:
    """linalg.mmt4d: lhs [M1, K1, M0, K0], rhs [N1, K1, N0, K0] -> [M1, N1, M0, N0]."""
    return value(linalg.mmt4d(lhs, rhs, outs=[init]))


def unpack(packed: ir.Value, dest: ir.Value, inner_dims_pos: Sequence[int], tiles: Sequence[int],
           outer_dims_perm: Optional[Sequence[int]] = None) -> ir.Value:
    """linalg.unpack of `packed` (inner tiles `tiles` on `inner_dims_pos`) into `dest`,
    dropping the padding of partial tiles."""
    return linalg.UnPackOp(dest.type, packed, dest, list(inner_dims_pos), [], list(tiles),
                           outer_dims_perm=list(outer_dims_perm) if outer_dims_perm else None).result


def scatter_add(updates: ir.Value, indices: ir.Value, original: ir.Value) -> ir.Value:
    """iree_linalg_ext.scatter adding updates[k] to original[indices[k, 0]] (indices may
    repeat): 1-D `original`, `updates` [K], `indices` [K, 1] i32."""
    op = ir.Operation.create(
        "iree_linalg_ext.scatter", results=[original.type], operands=[updates, indices, original],
        attributes={"dimension_map": ir.DenseI64ArrayAttr.get([0]), "unique_indices": ir.BoolAttr.get(False)},
        regions=1)
    elem = ir.RankedTensorType(original.type).element_type
    block = op.regions[0].blocks.append(elem, elem)
    with ir.InsertionPoint(block):
        total = arith.AddFOp(block.arguments[1], block.arguments[0]).result
        ir.Operation.create("iree_linalg_ext.yield", operands=[total])
    return op.results[0]


def _reassoc(groups):
    i64 = ir.IntegerType.get_signless(64)
    return ir.ArrayAttr.get([ir.ArrayAttr.get([ir.IntegerAttr.get(i64, i) for i in g]) for g in groups])


def static_shape(value: ir.Value) -> Optional[list[int]]:
    t = ir.RankedTensorType(value.type)
    return None if not t.has_static_shape else list(t.shape)



def _module_of(op: ir.Operation) -> ir.Operation:
    while op.parent is not None and op.name != "builtin.module":
        op = op.parent
    return op


def constant_value(value: ir.Value, weights) -> Optional[tuple[np.ndarray, Optional[str]]]:
    """The array behind `value` if it is a compile-time constant, with its parameter key.

    Handles `util.global.load` of a `#flow.parameter.named` global held in `weights`, a
    global with an inline dense initial value, and `arith.constant dense<...>`.
    """
    owner = value.owner
    if not isinstance(owner, ir.Operation) and hasattr(owner, "operation"):
        owner = owner.operation
    if not isinstance(owner, ir.Operation):
        return None  # a block argument
    if owner.name in ("tensor.expand_shape", "tensor.collapse_shape"):
        inner = constant_value(owner.operands[0], weights)
        if inner is None:
            return None
        return inner[0].reshape(static_shape(value)), inner[1]
    if owner.name == "arith.constant":
        attr = owner.attributes["value"]
        if isinstance(attr, ir.DenseElementsAttr) and not isinstance(attr, ir.DenseResourceElementsAttr):
            return np.array(ir.DenseElementsAttr(attr)), None
        return None
    if owner.name == "util.global.load":
        name = ir.FlatSymbolRefAttr(owner.attributes["global"]).value
        table = ir.SymbolTable(_module_of(owner))
        try:
            glob = table[name]
        except KeyError:
            return None
        glob = glob.operation
        if "is_mutable" in glob.attributes or "initial_value" not in glob.attributes:
            return None
        init = glob.attributes["initial_value"]
        key = parameter_key(init)
        if key is not None:
            if weights is not None and weights.scope == key[0] and key[1] in weights:
                return weights[key[1]], key[1]
            return None
        if isinstance(init, ir.DenseElementsAttr) and not isinstance(init, ir.DenseResourceElementsAttr):
            return np.array(ir.DenseElementsAttr(init)), None
    return None


_NP_TO_MLIR = {np.float32: ir.F32Type.get, np.float16: ir.F16Type.get, np.float64: ir.F64Type.get}


def element_type_for(dtype: np.dtype) -> ir.Type:
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return _NP_TO_MLIR[dtype.type]()
    if dtype.kind in "iu":
        return ir.IntegerType.get_signless(dtype.itemsize * 8)
    if dtype.kind == "b":
        return ir.IntegerType.get_signless(1)
    raise TypeError(f"no MLIR element type for {dtype}")


def new_weight(anchor: ir.Operation, weights, key: str, array: np.ndarray) -> ir.Value:
    """Registers `array` as a new parameter global and loads it before `anchor`.

    Used by passes that repack a weight at compile time (transposes, compact sparse
    formats): the new array goes into the WeightStore; the IR refers to it by name.
    """
    key = weights.add(key, array)
    tensor_type = ir.RankedTensorType.get(list(array.shape), element_type_for(array.dtype))
    module = _module_of(anchor)
    with ir.InsertionPoint.at_block_begin(module.regions[0].blocks[0]), ir.Location.unknown():
        util.GlobalOp(symbol_for(key), tensor_type, sym_visibility="private",
                      initial_value=parameter_attr(ir, weights.scope, key, tensor_type),
                      inlining_policy=ir.Attribute.parse("#util.inline.never"))
    with ir.InsertionPoint(anchor), anchor.location:
        return util.GlobalLoadOp(tensor_type, symbol_for(key), is_immutable=True).result


class DerivedWeights:
    """Arrays a pass derives from weights (repacked values, index tables), each made once
    however many sites use it: a new named parameter loaded at every site, or, without a
    WeightStore (`wispy opt` on inline constants), an inline constant at every site."""

    def __init__(self, weights):
        self.weights = weights
        self._made: dict = {}  # cache key -> (global symbol or None, array, tensor type)

    def load(self, anchor: ir.Operation, cache_key, name: str, make: Callable[[], np.ndarray],
             elem: Optional[ir.Type] = None) -> ir.Value:
        """The array `make()` returns, as a value before `anchor`; `make` runs the first time
        `cache_key` is asked for only. `elem` types an inline constant (default: the
        array's dtype); `name` is the new parameter's key."""
        if cache_key not in self._made:
            array = make()
            if self.weights is None:
                et = elem if elem is not None else element_type_for(array.dtype)
                self._made[cache_key] = (None, array, ir.RankedTensorType.get(list(array.shape), et))
            else:
                load = new_weight(anchor, self.weights, name, array)
                symbol = ir.FlatSymbolRefAttr(load.owner.attributes["global"]).value
                self._made[cache_key] = (symbol, None, load.type)
                return load
        symbol, array, ttype = self._made[cache_key]
        with ir.InsertionPoint(anchor), anchor.location:
            if symbol is None:
                return arith.ConstantOp(ttype, ir.DenseElementsAttr.get(array, type=ttype.element_type)).result
            return util.GlobalLoadOp(ttype, symbol, is_immutable=True).result


def erase_unused_globals(module: ir.Operation, weights) -> None:
    """Drops private globals no op loads any more, and their arrays from the store."""
    used: set[str] = set()

    def visit(op):
        if op.name == "util.global.load":
            used.add(ir.FlatSymbolRefAttr(op.attributes["global"]).value)
        return ir.WalkResult.ADVANCE

    module.walk(visit)
    kept_keys: set[str] = set()
    for op in list(module.regions[0].blocks[0].operations):
        op = op.operation
        if op.name != "util.global":
            continue
        name = ir.StringAttr(op.attributes["sym_name"]).value
        key = parameter_key(op.attributes["initial_value"]) if "initial_value" in op.attributes else None
        if name not in used and str(op.attributes.get("sym_visibility", "")) == '"private"' \
                and "is_mutable" not in op.attributes:
            op.erase()
        elif key is not None:
            kept_keys.add(key[1])
    if weights is not None:
        weights.retain(kept_keys)


# -- torch-phase ops replaced by calls of hand-written dispatches -----------------------------

def torch_int(value: ir.Value) -> Optional[int]:
    """The value of a `torch.constant.int` operand, or None when `value` is no such constant."""
    owner = value.owner
    if isinstance(owner, ir.OpView):
        owner = owner.operation
    if getattr(owner, "name", None) != "torch.constant.int":
        return None
    return ir.IntegerAttr(owner.attributes["value"]).value


def vtensor_shape(t: ir.Type) -> tuple[list, str]:
    """[sizes] and element type of a `!torch.vtensor<[a,b],f32>` (-1: dynamic)."""
    m = re.fullmatch(r"!torch\.vtensor<\[([^\]]*)\],(\w+)>", str(t))
    if not m:
        raise ValueError(str(t))
    sizes = [int(s) if s != "?" else -1 for s in m.group(1).split(",") if s]
    return sizes, m.group(2)


def to_builtin(v: ir.Value, anchor: ir.Operation) -> ir.Value:
    """`v` (a torch value) as a builtin tensor, converted before `anchor`."""
    owner = v.owner
    if isinstance(owner, ir.OpView):
        owner = owner.operation
    if isinstance(owner, ir.Operation) and owner.name == "torch_c.from_builtin_tensor":
        return owner.operands[0]
    sizes, elem = vtensor_shape(v.type)
    # torch's signed/unsigned integers are signless in builtin tensors (si8 -> i8)
    ttype = ir.RankedTensorType.get(sizes, ir.F32Type.get() if elem == "f32" else
                                    ir.Type.parse(re.sub(r"^[su]i(\d+)$", r"i\1", elem)))
    with ir.InsertionPoint(anchor), anchor.location:
        return ir.Operation.create("torch_c.to_builtin_tensor", results=[ttype], operands=[v]).result


def append_text(body: ir.Block, text: str, context: ir.Context) -> None:
    """Parses MLIR `text` (executables, functions) and appends its top-level ops to `body`."""
    parsed = ir.Module.parse(text, context)
    for inner in list(parsed.body.operations):
        body.append(inner.operation)


def replace_by_call(op: ir.Operation, callee: str, args: Sequence[ir.Value], result_type) -> list:
    """Replaces the torch op `op` by `func.call @callee(args)` (builtin tensors; `result_type`
    one type, or a list of them, one per result of `op`) converted back to the op's torch
    types; erases `op` and returns its operands."""
    types = list(result_type) if isinstance(result_type, (list, tuple)) else [result_type]
    with ir.InsertionPoint(op), op.location:
        call = ir.Operation.create("func.call", results=types, operands=list(args),
                                   attributes={"callee": ir.FlatSymbolRefAttr.get(callee)})
        backs = [ir.Operation.create("torch_c.from_builtin_tensor", results=[r.type], operands=[c])
                 for r, c in zip(op.results, call.results)]
    for r, back in zip(op.results, backs):
        r.replace_all_uses_with(back.result)
    operands = list(op.operands)
    op.erase()
    return operands

"""Phase `import`: a PyTorch module becomes torch-dialect MLIR, weights as named globals.

torch.export traces the model (with decompositions to core ATen ops that IREE's input
conversion legalizes), and the FX importer vendored in iree-base-compiler builds the
torch-dialect module. Every tensor literal bigger than a few elements becomes a
`util.global` initialised from `#flow.parameter.named<"model"::KEY>`, its array kept in
a `WeightStore` so later passes can read and repack it (see weights.py for why).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import torch

from wispy._mlir import ir, util
from wispy.compiler.checks import check_example_args, check_exported, export_failure
from wispy.dialects import LoweringOptions, decompositions  # importing it registers the wispy:: ops
from wispy.errors import CompileError, ModelLoadError
from wispy.ir.weights import WeightStore, parameter_attr, symbol_for

# Literals up to this many elements stay inline (index tables, scalars): IREE folds them.
INLINE_LITERAL_MAX_ELEMENTS = 16


@dataclass
class ImportedModule:
    module: ir.Module
    weights: WeightStore
    input_specs: list  # [(shape with None for dynamic dims, numpy dtype)]
    output_count: int
    float64: tuple = ((), False)  # float64.float64_values: (named float64 values, any float64 at all)


def _to_torch(arg: Any) -> Any:
    if isinstance(arg, np.ndarray):
        return torch.from_numpy(np.asarray(arg, order="C"))  # a 0-d array stays 0-d
    return arg


def normalize_args(example_args) -> tuple:
    if isinstance(example_args, (torch.Tensor, np.ndarray)):
        example_args = (example_args,)
    if not isinstance(example_args, (tuple, list)):
        raise ModelLoadError(
            f"example_args must be a tensor or a tuple of tensors, got {type(example_args).__name__}")
    return tuple(_to_torch(a) for a in example_args)


class _ParameterHooks:
    """FX importer hooks: weights and large constants become named parameter globals."""

    def __init__(self, store: WeightStore):
        self.store = store
        self.module_op = None
        self._by_tensor: dict[int, tuple[str, Any]] = {}
        self._n_const = 0

    # The FxImporter calls these three by name.
    def prepare_module(self, module_op):
        self.module_op = module_op

    def resolve_input(self, gni, value, info):
        return None  # fall through to resolve_literal for parameters and buffers

    def store_produced_value(self, gni, py_value, produced_ir_value, info):
        raise CompileError("import", f"the model mutates {info.input_spec.target} in forward(); "
                                     "wispy compiles inference functions without side effects")

    def resolve_literal(self, gni, literal, info):
        if not isinstance(literal, torch.Tensor):
            return None
        from iree.compiler.extras.fx_importer import TORCH_DTYPE_TO_NPY_TYPE

        tensor = literal.detach().cpu().contiguous()
        if tensor.numel() <= INLINE_LITERAL_MAX_ELEMENTS and tensor.dtype in TORCH_DTYPE_TO_NPY_TYPE \
                and tensor.dtype != torch.bfloat16:
            # Inline as plain dense<...> (not dense_resource) so passes can read it.
            elem = gni._cc.dtype_to_type(tensor.dtype)
            tensor_type = ir.RankedTensorType.get(list(tensor.shape), elem)
            attr = ir.DenseElementsAttr.get(tensor.numpy(), type=tensor_type)
            vtensor = gni._cc.get_vtensor_type(tensor.shape, tensor.dtype)
            return ir.Operation.create("torch.vtensor.literal", results=[vtensor],
                                       attributes={"value": attr}).result
        ident = id(literal)
        if ident not in self._by_tensor:
            if info is not None and info.input_spec.target:
                key = info.input_spec.target
            else:
                key = f"constant_{self._n_const}"
                self._n_const += 1
            np_dtype = TORCH_DTYPE_TO_NPY_TYPE.get(tensor.dtype)
            if np_dtype is None:
                raise CompileError("import", f"weight {key} has dtype {tensor.dtype}, "
                                             "which parameter archives cannot hold")
            array = tensor.numpy() if tensor.dtype != torch.bfloat16 else \
                tensor.view(torch.int16).numpy()
            key = self.store.add(key, array)
            elem = _signless(gni._cc.dtype_to_type(tensor.dtype))
            tensor_type = ir.RankedTensorType.get(list(tensor.shape), elem)
            with ir.InsertionPoint.at_block_begin(self.module_op.regions[0].blocks[0]), \
                    ir.Location.unknown():
                util.GlobalOp(symbol_for(key), tensor_type, sym_visibility="private",
                              initial_value=parameter_attr(ir, self.store.scope, key, tensor_type),
                              inlining_policy=ir.Attribute.parse("#util.inline.never"))
            self._by_tensor[ident] = (key, tensor_type)
        key, tensor_type = self._by_tensor[ident]
        loaded = util.GlobalLoadOp(tensor_type, symbol_for(key), is_immutable=True).result
        vtensor = gni._cc.get_vtensor_type(tensor.shape, tensor.dtype)
        return ir.Operation.create("torch_c.from_builtin_tensor", results=[vtensor],
                                   operands=[loaded]).result


def _signless(elem):
    """Builtin tensors (the weight globals) hold signless integers: torch's si8/si32 element
    types are for !torch.vtensor only (`torch_c.from_builtin_tensor` maps i8 to si8)."""
    if isinstance(elem, ir.IntegerType) and not elem.is_signless:
        return ir.IntegerType.get_signless(elem.width)
    return elem


def decomposition_table(lowering: Optional[LoweringOptions] = None):
    """Core ATen decompositions plus the few ops IREE's torch input does not legalize, and
    wispy's int8 ops as ATen int8 arithmetic, lowered with `lowering` (the target's choices;
    default: the portable form)."""
    from torch._decomp import core_aten_decompositions, get_decompositions

    table = dict(core_aten_decompositions())
    table.update(get_decompositions([
        torch.ops.aten.squeeze.dims, torch.ops.aten.gru.input, torch.ops.aten.lstm.input,
        # IREE 3.13's own GELU(tanh) uses sqrt(2/pi) = 0.797724 (not 0.797885): 0.2% off.
        torch.ops.aten.gelu.default,
    ]))
    table[torch.ops.aten._native_batch_norm_legit_no_training.default] = _batch_norm_inference
    # IREE 3.13's CPU backends call libm's log10f, which its linker cannot find
    table[torch.ops.aten.log10.default] = _log10
    table.update(decompositions(lowering if lowering is not None else LoweringOptions()))
    return table


def _log10(x):
    return torch.log(x) / math.log(10.0)


def _batch_norm_inference(x, weight, bias, running_mean, running_var, momentum, eps):
    """Inference BatchNorm as a per-channel affine map. IREE's torch input does not
    legalize the ATen op, and torch's own decomposition brings back a mutating form."""
    shape = [1, -1] + [1] * (x.dim() - 2)
    scale = torch.rsqrt(running_var + eps)
    if weight is not None:
        scale = scale * weight
    shift = -running_mean * scale
    if bias is not None:
        shift = shift + bias
    out = x * scale.reshape(shape) + shift.reshape(shape)
    return out, x.new_empty((0,)), x.new_empty((0,))


def export_model(model: torch.nn.Module, args: tuple, dynamic_shapes=None, rnn_loops: bool = True,
                 recurrent_kernel=None, lowering: Optional[LoweringOptions] = None):
    """torch.export with decompositions; an export failure becomes a CompileError.

    With `rnn_loops`, nn.GRU/nn.LSTM layers are exported as loops over time
    (recurrent.py) instead of one unrolled cell per frame; `recurrent_kernel(w_hh)` picks
    the GRU layers exported as one wispy::gru_sequence op (wispy-recurrent-kernel); `lowering`:
    how wispy's int8 ops become ATen ops (decomposition_table)."""
    from wispy.compiler.recurrent import as_loops, recurrent_as_loops

    if not isinstance(model, torch.nn.Module):
        raise ModelLoadError(f"compile_model expects a torch.nn.Module, got {type(model).__name__}")
    _forget_dynamo_history()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if rnn_loops:
                with recurrent_as_loops(model, recurrent_kernel):
                    ep = torch.export.export(as_loops(model, recurrent_kernel), args,
                                             dynamic_shapes=dynamic_shapes, strict=False)
            else:
                ep = torch.export.export(model, args, dynamic_shapes=dynamic_shapes, strict=False)
            ep = ep.run_decompositions(decomposition_table(lowering))
    except CompileError:
        raise
    except Exception as e:  # torch raises many kinds; all mean "could not trace"
        raise export_failure(e, model, args) from e
    check_exported(ep)
    return ep


def _forget_dynamo_history() -> None:
    """Export as a fresh process would. The loops' `scan` is traced by Dynamo (torch.compile
    inside torch.export), which keeps, for the whole process, compiled entries and guards
    per code object: after a dozen-odd exports of recurrent layers of several sizes, the
    next trace of the same `scan` wrapper came in as a recompilation that made the
    weights' sizes symbols of the export's ShapeEnv, solved the gate slices against them
    and specialised the frame count: a dynamic-length GRU failed with `Constraints
    violated (T)` where a fresh process compiled it (issue 27, finding 7;
    tests/compiler/test_compile_isolation.py). Turning automatic dynamic shapes off did
    not help; clearing Dynamo's caches does. This also drops the caller's own
    torch.compile caches (they recompile on their next call; results are unchanged)."""
    torch.compiler.reset()


def import_exported(ep, context: ir.Context, store: Optional[WeightStore] = None,
                    func_name: str = "main") -> ImportedModule:
    from iree.compiler.extras.fx_importer import FxImporter

    store = store if store is not None else WeightStore()
    hooks = _ParameterHooks(store)
    from wispy.compiler.loop_importer import LoopGraphNodeImporter

    importer = FxImporter(context=context, hooks=hooks, graph_node_importer_cls=LoopGraphNodeImporter)
    try:
        importer.import_program(ep, func_name=func_name)
    except CompileError:
        raise
    except NotImplementedError as e:
        raise CompileError("import", f"the FX importer does not support: {e}") from e
    module = importer.module
    try:
        module.operation.verify()
    except ir.MLIRError as e:
        raise CompileError("import", f"the imported module does not verify: {e}") from e
    from torch.export.graph_signature import InputKind

    specs = []
    user_nodes = {s.arg.name for s in ep.graph_signature.input_specs
                  if s.kind == InputKind.USER_INPUT}
    for node in ep.graph.nodes:
        if node.op == "placeholder" and node.name in user_nodes:
            val = node.meta.get("val")
            shape = tuple(int(d) if isinstance(d, int) else None for d in val.shape)
            specs.append((shape, torch.empty((), dtype=val.dtype).numpy().dtype))
    n_out = len(ep.graph_signature.user_outputs)
    from wispy.compiler.float64 import float64_values

    return ImportedModule(module, store, specs, n_out, float64_values(ep))


def import_model(model: torch.nn.Module, example_args: Sequence, context: ir.Context,
                 dynamic_shapes=None, rnn_loops: bool = True, recurrent_kernel=None,
                 lowering: Optional[LoweringOptions] = None) -> ImportedModule:
    args = normalize_args(example_args)
    check_example_args(args)
    was_training = model.training if isinstance(model, torch.nn.Module) else False
    if was_training:
        model.eval()
    try:
        with torch.no_grad():
            ep = export_model(model, args, dynamic_shapes, rnn_loops, recurrent_kernel, lowering)
    finally:
        if was_training:
            model.train()
    with context:
        return import_exported(ep, context)

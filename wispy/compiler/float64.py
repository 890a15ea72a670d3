"""float64 in a model: where it is, and what a target makes of it.

IREE demotes f64 to f32 by default (`--iree-input-demote-f64-to-f32`), but IREE 3.13 leaves
the module's f64 inputs and results declared f64 over f32-sized buffers, so such a module
compiles and then fails on every call ("buffer view byte length 48 exceeds backing buffer
byte length 24"). wispy therefore turns the demotion off on CPU targets for a model with any
float64 value, which then computes in float64 as PyTorch does; GPU targets have no float64
arithmetic (Vulkan's `shaderFloat64` is rare on phones and absent from IREE's targets), so a
model with a float64 input, output, parameter or buffer is refused there, by name.
"""
from __future__ import annotations

import torch

from wispy.errors import CompileError

KEEP_F64_FLAG = "--iree-input-demote-f64-to-f32=false"


def float64_values(ep: torch.export.ExportedProgram) -> tuple[list[str], bool]:
    """(the float64 inputs, outputs, parameters and buffers of `ep`, named for a user;
    whether any value of the graph at all is float64)."""
    sig = ep.graph_signature
    owners = {**{k: f"parameter '{v}'" for k, v in sig.inputs_to_parameters.items()},
              **{k: f"buffer '{v}'" for k, v in sig.inputs_to_buffers.items()},
              **{k: f"constant '{v}'" for k, v in sig.inputs_to_lifted_tensor_constants.items()}}
    inputs = {name: i for i, name in enumerate(sig.user_inputs)}
    outputs = {name: i for i, name in enumerate(sig.user_outputs)}
    named, anywhere = [], False
    for node in ep.graph.nodes:
        if getattr(node.meta.get("val"), "dtype", None) != torch.float64:
            continue
        anywhere = True
        if node.op == "placeholder" and node.name in owners:
            named.append(owners[node.name])
        elif node.op == "placeholder" and node.name in inputs:
            named.append(f"input {inputs[node.name]}")
        if node.name in outputs:
            named.append(f"output {outputs[node.name]}")
    return named, anywhere


def float64_flags(named: list[str], anywhere: bool, target_name: str) -> list[str]:
    """The IREE flags a model with float64 values needs on `target_name` (see the module's
    docstring); a CompileError where the target cannot compute in float64."""
    if not anywhere:
        return []
    if target_name == "vulkan" and named:
        raise CompileError("import", f"Vulkan modules cannot compute in float64, and the model has float64 "
                                     f"{', '.join(named[:6])}{' ...' if len(named) > 6 else ''}: convert them "
                                     f"to float32 (model.float(), x.float()) before compiling")
    return [] if target_name == "vulkan" else [KEEP_F64_FLAG]

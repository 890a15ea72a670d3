"""The user's entry point: `wispy.compile_model`, the compiler's `compile_model` plus the
choice of each int8 Conv1d layer's Winograd form (which needs the training side)."""
from __future__ import annotations

from typing import Sequence, Union

import torch

from wispy.compiler.api import CompiledModel, compile_model as _compile
from wispy.compiler.importer import normalize_args
from wispy.compress.quant import QuantConv1d, with_winograd
from wispy.compress.winograd_choice import choose_winograd
from wispy.errors import OptionError
from wispy.targets import Target

_WINOGRAD_DOC = """
    winograd          int8 Conv1d layers (models from wispy.compress.quantize): "auto" as
                      quantized, per layer; "off" all direct int8; "f23" / "f43" every
                      stride-1 layer of >= 3 taps in that Winograd form; "measure" the
                      cheapest of the three per layer, each compiled alone and measured on
                      the target (arm64: instructions under qemu; host: time), the costs
                      in `remarks`; or a dict of layer patterns to modes. Changing a
                      layer's mode needs its float weight: quantize(..., strip=False)
"""


def compile_model(model, example_args: Sequence = (), *, winograd: Union[str, dict] = "auto",
                  **options) -> CompiledModel:
    choices: list[str] = []
    if winograd != "auto":
        if isinstance(model, torch.export.ExportedProgram):
            raise OptionError("winograd= needs the nn.Module (an exported program's layers are fixed): "
                              "pass the quantized model itself")
        if winograd == "measure":
            target = options.get("target", "host")
            tgt = target if isinstance(target, Target) else Target.parse(
                target, cpu_features=options.get("cpu_features", ""), vulkan_target=options.get("vulkan_target"))
            chosen = choose_winograd(model, normalize_args(example_args)[0], target=tgt.name,
                                     cpu_features=tgt.cpu_features, progress=True, log=choices.append)
            winograd = {n: chosen.get(n, m.mode) for n, m in model.named_modules() if isinstance(m, QuantConv1d)}
        try:
            model = with_winograd(model, winograd)
        except ValueError as e:
            raise OptionError(f"winograd={winograd!r}: {e}") from None
    compiled = _compile(model, example_args, **options)
    compiled.remarks[:0] = choices
    return compiled


compile_model.__doc__ = _compile.__doc__.rstrip() + "\n" + _WINOGRAD_DOC

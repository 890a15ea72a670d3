"""Per-layer choice between direct int8, Winograd F(2,3) and F(4,3), by measuring each
layer on the target.

What wins depends on the target: F(4,3) saves most arm64 instructions over direct int8
without the dot-product extensions, little with `+dotprod,+i8mm` (IREE tiles the direct
int8 matmul for SDOT/SMMLA, while the Winograd transforms stay), and about nothing in time
on an AVX-512 VNNI host (docs/design/int8-winograd.md#why-winograd-f43-and-why-per-layer).
So `choose_winograd` compiles every eligible layer alone, at its shape in the model, in
each mode, and keeps the cheapest: arm64 by instructions per call under qemu
(deterministic), the host by median time. Layers of equal shape are measured once.

Changing a layer's mode needs its float weight: quantize with `strip=False`.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from wispy.compress.quant import QuantConv1d, legal_modes, with_winograd


def _layer_inputs(qmodel: nn.Module, example: torch.Tensor) -> dict:
    """{name: input shape} of each QuantConv1d, from one forward pass."""
    shapes, hooks = {}, []
    for name, mod in qmodel.named_modules():
        if isinstance(mod, QuantConv1d):
            hooks.append(mod.register_forward_pre_hook(lambda m, a, n=name: shapes.__setitem__(n, tuple(a[0].shape))))
    try:
        with torch.no_grad():
            qmodel(example)
    finally:
        for h in hooks:
            h.remove()
    return shapes


def _measure(module: nn.Module, x: torch.Tensor, target: str, cpu_features: str, repeat: int) -> float:
    """The cost of one call: arm64 instructions (qemu), host milliseconds (median)."""
    from wispy.compiler.api import compile_model

    cm = compile_model(module, (x,), target=target, cpu_features=cpu_features, progress=False)
    if target == "arm64":
        from wispy.runtime.arm64 import count_instructions_arm64

        with tempfile.TemporaryDirectory(prefix="wispy-wgchoice-") as tmp:
            vmfb = cm.save(Path(tmp) / "layer.vmfb")
            return float(count_instructions_arm64(vmfb, [x.numpy()], iterations=2, warmup=1))
    xn = x.numpy()
    cm(xn)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        cm(xn)
        times.append((time.perf_counter() - t) * 1e3)
    return float(np.median(times))


def choose_winograd(qmodel: nn.Module, example: torch.Tensor, target: str = "arm64", *, cpu_features: str = "",
                    modes=("direct", "f23", "f43"), repeat: int = 20, progress: bool = True,
                    log=print) -> dict:
    """{layer name: the cheapest mode} for every int8 Conv1d with a Winograd form (stride 1,
    >= 3 taps, groups 1), measured on `target`. Records each layer's costs in
    `qmodel.wispy_quant["layers"][name]["cost"]` ({mode: cost, "unit": ...}). Pass the
    result to `with_winograd` or `compile_model(winograd=...)`."""
    if target not in ("host", "arm64"):
        raise ValueError(f"measuring needs a target that runs here, host or arm64 (qemu), not {target!r}")
    shapes = _layer_inputs(qmodel, example)
    unit = "instructions" if target == "arm64" else "ms"
    cache: dict = {}
    choice: dict = {}
    info = getattr(qmodel, "wispy_quant", {}).get("layers", {})
    layers = [(n, m) for n, m in qmodel.named_modules() if isinstance(m, QuantConv1d) and n in shapes]
    for name, mod in layers:
        tried = [m for m in modes if m in legal_modes(mod)]
        if len(tried) < 2:
            continue
        key = (shapes[name], mod.in_channels, mod.out_channels, mod.kernel_size[0], mod.padding[0],
               mod.dilation[0], mod.groups, target, cpu_features)
        if key not in cache:
            costs = {}
            x = torch.randn(shapes[name])
            for mode in tried:
                single = _Single(mod)
                single = with_winograd(single, {"conv": mode}) if mode != mod.mode else single
                costs[mode] = _measure(single.eval(), x, target, cpu_features, repeat)
            cache[key] = costs
        costs = cache[key]
        best = min(costs, key=costs.get)
        choice[name] = best
        if name in info:
            info[name] = {**info[name], "cost": {**costs, "unit": unit}}
        if progress and log is not None:
            shown = ", ".join(f"{m} {c / 1e6:.2f}M" if unit == "instructions" else f"{m} {c:.2f} ms"
                              for m, c in costs.items())
            log(f"winograd choice: {name} ({mod.in_channels}->{mod.out_channels}, k={mod.kernel_size[0]}, "
                f"input {list(shapes[name])}): {shown} -> {best}")
    return choice


class _Single(nn.Module):
    """One quantized conv as a model of its own (with_winograd re-moded by name)."""

    def __init__(self, conv: QuantConv1d):
        super().__init__()
        self.conv = conv

    def forward(self, x):
        return self.conv(x)

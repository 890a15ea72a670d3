"""float64 values: computed in float64 on CPU targets (they compiled, then failed on every call),
refused by name on Vulkan."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import wispy
from wispy.compiler.float64 import float64_values
from wispy.runtime import qemu_available

needs_qemu = pytest.mark.skipif(not qemu_available(), reason="qemu-aarch64 / aarch64 sysroot missing: make setup")


class ScaledLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)
        self.register_buffer("scale", torch.tensor([1.5, 2.0, 1e-3], dtype=torch.float64))

    def forward(self, x):
        return self.lin(x) * self.scale


class Float64Input(nn.Module):
    def forward(self, x, y):
        return x.sum(), (y * 3.0 + 1e-9).exp()


X = torch.randn(2, 4)
Y = torch.randn(5, dtype=torch.float64)


@pytest.mark.parametrize("target", ["host", pytest.param("arm64", marks=[pytest.mark.arm64, needs_qemu])])
def test_float64_buffer_runs_in_float64(target):
    model = ScaledLinear().eval()
    cm = wispy.compile_model(model, (X,), target=target, progress=False)
    got, want = cm(X), model(X)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, want.detach(), rtol=1e-6, atol=1e-7)


def test_float64_input_and_output():
    model = Float64Input()
    cm = wispy.compile_model(model, (X, Y), progress=False)
    s, e = cm(X, Y)
    assert e.dtype == torch.float64
    torch.testing.assert_close(e, model(X, Y)[1], rtol=1e-12, atol=0)  # float64 arithmetic, not float32
    torch.testing.assert_close(s, X.sum())


def test_float64_values_are_named():
    ep = torch.export.export(ScaledLinear(), (X,))
    assert float64_values(ep) == (["buffer 'scale'", "output 0"], True)
    ep = torch.export.export(Float64Input(), (X, Y))
    assert float64_values(ep) == (["input 1", "output 1"], True)
    assert float64_values(torch.export.export(nn.Linear(4, 3), (X,))) == ([], False)


def test_vulkan_refuses_float64_by_name():
    with pytest.raises(wispy.CompileError, match="Vulkan modules cannot compute in float64.*buffer 'scale'"):
        wispy.compile_model(ScaledLinear(), (X,), target="vulkan", vulkan_target="lavapipe", progress=False)

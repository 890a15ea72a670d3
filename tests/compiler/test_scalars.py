"""0-d tensors in and out of a compiled model: a scalar result is 0-d, a scalar input is accepted."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import wispy
from wispy.runtime import qemu_available

needs_qemu = pytest.mark.skipif(not qemu_available(), reason="qemu-aarch64 / aarch64 sysroot missing: make setup")


class MeanAndSum(nn.Module):
    def forward(self, x):
        return x.mean(), x.sum()


class Scaled(nn.Module):
    def forward(self, x, s):
        return (x * s).mean()


X = torch.randn(3, 4)
S = torch.tensor(2.5)
TARGETS = ["host", pytest.param("arm64", marks=[pytest.mark.arm64, needs_qemu])]


@pytest.fixture(scope="module", params=TARGETS)
def compiled(request):
    target = request.param
    return (wispy.compile_model(MeanAndSum(), (X,), target=target, progress=False),
            wispy.compile_model(Scaled(), (X, S), target=target, progress=False))


def test_scalar_results_are_0d(compiled):
    reductions, _ = compiled
    for got, want in zip(reductions(X), MeanAndSum()(X)):
        assert isinstance(got, torch.Tensor) and got.shape == () == want.shape
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    outs = reductions.run(X.numpy())
    assert [o.shape for o in outs] == [(), ()]


def test_scalar_inputs(compiled):
    _, scaled = compiled
    assert scaled.input_specs[1][0] == ()
    want = Scaled()(X, S)
    got = scaled(X, S)
    assert got.shape == ()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    for s in (np.float32(2.5), np.array(2.5, np.float32)):  # numpy scalars and 0-d arrays too
        np.testing.assert_allclose(scaled.run(X.numpy(), s)[0], want.numpy(), rtol=1e-5)


def test_a_1d_input_where_a_scalar_was_compiled(compiled):
    _, scaled = compiled
    with pytest.raises(wispy.InputMismatchError, match="input 1 has shape 1, the model was compiled for scalar"):
        scaled(X, S.reshape(1))

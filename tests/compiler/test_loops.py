"""Recurrent layers compiled as loops: one module serves every sequence length, its size
does not grow with the length, and it matches PyTorch at any length."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import wispy
from wispy.compiler.loop_importer import FRAMES_PER_ITERATION

# f32 recurrences accumulate rounding over time; measured errors stay below 2e-6 at
# T=1000 for a 2x1024 GRU (the outputs are bounded by tanh).
ATOL, RTOL = 2e-5, 1e-4


class TwoLayerGRU(nn.Module):
    def __init__(self, n_in=12, hidden=24):
        super().__init__()
        self.rnn = nn.GRU(n_in, hidden, num_layers=2, batch_first=True)

    def forward(self, x):
        return self.rnn(x)[0]


def _compile(model, n_in, t_example):
    frames = torch.export.Dim("frames", min=1, max=100_000)
    return wispy.compile_model(model, (torch.randn(1, t_example, n_in),),
                               dynamic_shapes={"x": {1: frames}}, progress=False)


def test_one_module_every_length():
    torch.manual_seed(0)
    model = TwoLayerGRU().eval()
    cm = _compile(model, 12, 19)
    # lengths below, at and around multiples of the frames run per loop iteration
    for t in (1, 2, FRAMES_PER_ITERATION - 1, FRAMES_PER_ITERATION, FRAMES_PER_ITERATION + 1, 37, 100, 257):
        x = torch.randn(1, t, 12)
        with torch.no_grad():
            want = model(x)
        np.testing.assert_allclose(cm(x).numpy(), want.numpy(), atol=ATOL, rtol=RTOL, err_msg=f"T={t}")


@pytest.mark.slow  # ~70 s: compiles the GRU 2x1024 at two lengths
def test_module_size_independent_of_length(tmp_path):
    torch.manual_seed(0)
    model = TwoLayerGRU().eval()
    short = _compile(model, 12, 10)
    long = _compile(model, 12, 400)
    assert abs(len(short.vmfb) - len(long.vmfb)) <= 0.01 * len(short.vmfb), (len(short.vmfb), len(long.vmfb))
    unrolled = wispy.compile_model(model, (torch.randn(1, 60, 12),), rnn_loops=False, progress=False)
    assert len(unrolled.vmfb) > len(long.vmfb)  # an unrolled chain grows with T


@pytest.mark.slow
def test_rtmobile_gru_lengths():
    """The 2x1024 GRU: one module, T = 1, 37, 100 and 1000."""
    from wispy.models import gru_rtmobile

    torch.manual_seed(0)
    model = gru_rtmobile()
    frames = torch.export.Dim("frames", min=1, max=100_000)
    cm = wispy.compile_model(model, (torch.randn(1, 100, 153),), dynamic_shapes={"x": {1: frames}},
                             progress=False)
    for t in (1, 37, 100, 1000):
        x = torch.randn(1, t, 153)
        with torch.no_grad():
            want = model(x)
        np.testing.assert_allclose(cm(x).numpy(), want.numpy(), atol=ATOL, rtol=RTOL, err_msg=f"T={t}")

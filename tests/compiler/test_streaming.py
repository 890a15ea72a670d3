"""Streaming: a compiled step function fed chunk by chunk gives the whole-utterance output."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import wispy
from wispy.models.acoustic import GRUAcousticModel, LSTMAcousticModel

# Streamed and whole-utterance runs do the same f32 operations per frame; the recurrent
# state crosses chunk boundaries through host memory unchanged. Measured <= 5e-7.
ATOL = 1e-5


def _stream(sm, x, chunk):
    s = sm.session()
    return np.concatenate([s.feed(x[:, i:i + chunk]) for i in range(0, x.shape[1], chunk)], axis=1)


@pytest.mark.parametrize("cls", [GRUAcousticModel, LSTMAcousticModel])
def test_streamed_equals_whole(cls):
    torch.manual_seed(0)
    model = cls(20, 32, 2, 10).eval()
    sm = wispy.compile_streaming(model, torch.randn(1, 4, 20), progress=False)
    x = torch.randn(1, 53, 20)
    with torch.no_grad():
        whole = model(x).numpy()
    for chunk in (1, 7, 16, 53):  # one module serves every chunk size
        np.testing.assert_allclose(_stream(sm, x, chunk), whole, atol=ATOL, err_msg=f"chunk={chunk}")


def test_session_reset_and_state():
    torch.manual_seed(0)
    model = GRUAcousticModel(8, 16, 1, 5).eval()
    sm = wispy.compile_streaming(model, torch.randn(1, 3, 8), progress=False)
    x = torch.randn(1, 12, 8)
    s = sm.session()
    first = s.feed(x[:, :6])
    s.feed(x[:, 6:])
    assert s.frames == 12 and any(np.abs(st).max() > 0 for st in s.states)
    s.reset()
    np.testing.assert_allclose(s.feed(x[:, :6]), first, atol=ATOL)


def test_refuses_what_cannot_stream():
    conv = nn.Sequential(nn.Conv1d(4, 4, 3, padding=1))
    with pytest.raises(wispy.WispyError, match="convolutions over time are not streamed"):
        wispy.compile_streaming(conv, torch.randn(1, 4, 4))
    bi = nn.GRU(4, 4, batch_first=True, bidirectional=True)
    with pytest.raises(wispy.WispyError, match="bidirectional"):
        wispy.compile_streaming(bi, torch.randn(1, 4, 4))
    with pytest.raises(wispy.WispyError, match="no nn.GRU or nn.LSTM"):
        wispy.compile_streaming(nn.Linear(4, 4), torch.randn(1, 4, 4))


@pytest.mark.parametrize("target,kw", [pytest.param("arm64", {}, marks=pytest.mark.arm64),
                                       pytest.param("vulkan", {"vulkan_target": "lavapipe"},
                                                    marks=pytest.mark.vulkan)])
def test_streaming_on_device_targets(target, kw):
    torch.manual_seed(0)
    model = GRUAcousticModel(8, 16, 2, 5).eval()
    sm = wispy.compile_streaming(model, torch.randn(1, 4, 8), target=target, progress=False, **kw)
    x = torch.randn(1, 13, 8)
    with torch.no_grad():
        whole = model(x).numpy()
    np.testing.assert_allclose(_stream(sm, x, 5), whole, atol=ATOL)

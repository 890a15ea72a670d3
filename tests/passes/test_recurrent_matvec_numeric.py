"""wispy-recurrent-matvec against PyTorch: dense GRU and LSTM (with projection) compiled
with their recurrent products in row tiles, on the host and arm64, at several lengths."""
import numpy as np
import pytest
import torch
from torch import nn

import wispy
from wispy.models.acoustic import GRUAcousticModel


def _lowered(cm):
    return [r for r in cm.remarks if "wispy-recurrent-matvec" in r and "lowered" in r]


class _LSTMProj(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(12, 48, num_layers=2, batch_first=True, proj_size=24)
        self.head = nn.Linear(24, 7)

    def forward(self, x):
        return self.head(self.rnn(x)[0])


@pytest.mark.parametrize("target", ["host", pytest.param("arm64", marks=pytest.mark.arm64)])
def test_gru_any_length(target):
    torch.manual_seed(0)
    model = GRUAcousticModel(n_feats=12, hidden=80, layers=2, n_classes=7).eval()  # 240 rows: uneven tiles on Arm
    T = torch.export.Dim("T", min=1, max=200)
    cm = wispy.compile_model(model, (torch.randn(1, 20, 12),), target=target, progress=False, explain=True,
                             dynamic_shapes={"x": {1: T}})
    assert any("weight_hh_l0" in r for r in _lowered(cm)) and any("weight_hh_l1" in r for r in _lowered(cm)), \
        cm.remarks
    folded = [r for r in cm.remarks if "folded bias" in r]
    assert any("bias_hh_l0" in r for r in folded) and any("bias_hh_l1" in r for r in folded), cm.remarks
    for t in (1, 37):
        x = torch.randn(1, t, 12)
        with torch.no_grad():
            np.testing.assert_allclose(cm(x), model(x).numpy(), atol=2e-5)


def test_lstm_with_projection():
    torch.manual_seed(0)
    model = _LSTMProj().eval()
    x = torch.randn(1, 30, 12)
    cm = wispy.compile_model(model, (x,), progress=False, explain=True)
    assert len(_lowered(cm)) >= 2, cm.remarks  # the recurrent matrices of both layers
    # gi_t (the input projection, both biases in it) starts the sums: one add fewer a step.
    assert any("folded the added tensor" in r for r in cm.remarks), cm.remarks
    with torch.no_grad():
        np.testing.assert_allclose(cm(x), model(x).numpy(), atol=2e-5)


def test_vulkan_keeps_iree_matvec():
    """A no-op off the CPU: Vulkan's matvec codegen is its own."""
    model = GRUAcousticModel(n_feats=12, hidden=80, layers=1, n_classes=7).eval()
    cm = wispy.compile_model(model, (torch.randn(1, 5, 12),), target="vulkan", progress=False, explain=True)
    assert not _lowered(cm)

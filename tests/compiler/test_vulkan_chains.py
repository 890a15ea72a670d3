"""Chains of layers on Vulkan (lavapipe) against PyTorch.

Each layer alone compiled right on Vulkan; two Conv1d's in a row did not (issue 27,
finding 1: relative error 1.3). IREE fused the second layer's padding into the first
layer's dispatch as a store at column `padding`, and its SPIR-V code dropped that offset
when it was not a whole vec4 (docs/design/known-issues.md#vulkan-misaligned-pad-store);
wispy-vulkan-pad-gather turns such pads into gathers. The chains vary kernel size,
dilation, stride, padding and groups, so each layer's pad follows another layer's output.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import wispy
from wispy.runtime import vulkan_available

needs_vulkan = pytest.mark.skipif(not vulkan_available(), reason="no Vulkan device: make setup")
# lavapipe's SPIR-V math differs from the CPU's by a few ulps (tests/compiler/test_ops.py VULKAN)
ATOL, RTOL = 5e-5, 1e-3


class _PadAfterTanh(nn.Module):
    """No convolution at all: an elementwise result padded by 2 on the last axis."""

    def forward(self, x):
        return F.pad(torch.tanh(x), (2, 2))


def _chains():
    c = nn.Conv1d
    return {
        # the finding, as reported: two layers, the second dilated
        "conv5-conv3dil2": (nn.Sequential(c(24, 64, 5, padding=2), c(64, 64, 3, dilation=2, padding=2)),
                            (1, 24, 60)),
        "relu-stride-1x1": (nn.Sequential(c(8, 16, 3, padding=1), nn.ReLU(), c(16, 16, 5, stride=2, padding=2),
                                          nn.Hardtanh(0, 20), c(16, 12, 1)), (1, 8, 37)),
        "groups-depthwise": (nn.Sequential(c(16, 32, 3, padding=1, groups=4), c(32, 32, 3, padding=3, dilation=3,
                                                                                 groups=32), c(32, 8, 1)),
                             (1, 16, 40)),
        "odd-pads-stride3": (nn.Sequential(c(6, 12, 7, padding=3), nn.Tanh(), c(12, 12, 3, stride=3, padding=1),
                                           c(12, 10, 2, padding=1), c(10, 10, 3, padding=1)), (1, 6, 50)),
        "batch2": (nn.Sequential(c(5, 9, 3, padding=1), c(9, 9, 5, padding=2, dilation=1), c(9, 4, 3, padding=6,
                                                                                             dilation=3)),
                   (2, 5, 21)),
        "pad-after-tanh": (_PadAfterTanh(), (1, 8, 8)),
    }


@pytest.mark.vulkan
@needs_vulkan
@pytest.mark.parametrize("name", sorted(_chains()))
def test_layer_chain_vulkan(name):
    model, shape = _chains()[name]
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.Conv1d):
            m.reset_parameters()
    model.eval()
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model(x).numpy()
    cm = wispy.compile_model(model, (x,), target="vulkan", vulkan_target="lavapipe", progress=False)
    got = cm(x).numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL, err_msg=name)


@pytest.mark.vulkan
@needs_vulkan
def test_pad_gather_runs_without_wispy_passes():
    """The work-around is part of every Vulkan build, not of the (optional) wispy pipeline."""
    model, shape = _chains()["pad-after-tanh"]
    x = torch.randn(*shape)
    cm = wispy.compile_model(model, (x,), target="vulkan", vulkan_target="lavapipe", progress=False,
                             torch_pipeline="", wispy_pipeline="")
    np.testing.assert_allclose(cm(x).numpy(), model(x).numpy(), atol=ATOL, rtol=RTOL)

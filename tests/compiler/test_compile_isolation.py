"""A compile does not depend on what compiled before it in the same process.

Issue 27, finding 7: after a dozen-odd compiles, a dynamic-length GRU failed to export
with `Constraints violated (T)` (and another with `'NoneType' object has no attribute
'size'`) that a fresh process compiled. The state was Dynamo's, which traces the
recurrent loops' `scan` inside torch.export and kept its compiled entries and guards
for the whole process (importer._forget_dynamo_history). The sequence below is one that
failed every time, at its last, dynamic, GRU.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

import wispy
from wispy.compiler.importer import export_model

# (kind, hidden, bidirectional, layers, batch, frames): exported static, in this order
_BEFORE = [
    (nn.LSTM, 8, True, 2, 1, 12), (nn.LSTM, 16, False, 1, 1, 16), (nn.GRU, 16, False, 1, 1, 8),
    (nn.LSTM, 8, False, 2, 1, 12), (nn.GRU, 16, False, 2, 2, 1), (nn.GRU, 16, False, 1, 1, 16),
    (nn.LSTM, 4, False, 1, 2, 3), (nn.GRU, 16, False, 1, 2, 8), (nn.LSTM, 4, False, 2, 1, 20),
    (nn.GRU, 16, False, 2, 1, 12), (nn.LSTM, 8, False, 2, 1, 3),
]
_DYNAMIC_AT = {1, 6}  # these two with a dynamic frame count, as in the failing run


class _RNN(nn.Module):
    def __init__(self, kind, hidden, bidirectional, layers):
        super().__init__()
        self.rnn = kind(6, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional)

    def forward(self, x):
        return self.rnn(x)[0]


def _frames():
    return ({1: torch.export.Dim("T", min=2, max=256)},)


def test_dynamic_gru_after_a_dozen_compiles():
    torch.manual_seed(0)
    for i, (kind, hidden, bi, layers, batch, frames) in enumerate(_BEFORE):
        model = _RNN(kind, hidden, bi, layers).eval()
        with torch.no_grad():  # as compile_model exports (the export alone: a quicker test)
            export_model(model, (torch.randn(batch, frames, 6),),
                         dynamic_shapes=_frames() if i in _DYNAMIC_AT else None)
    model = _RNN(nn.GRU, 16, False, 2).eval()
    # recurrent_kernel="off": the loop as a scan (as on Vulkan), the path Dynamo traces
    cm = wispy.compile_model(model, (torch.randn(1, 12, 6),), target="host", dynamic_shapes=_frames(),
                             recurrent_kernel="off", progress=False)
    for frames in (12, 5, 31):
        x = torch.randn(1, frames, 6)
        with torch.no_grad():
            want = model(x).numpy()
        np.testing.assert_allclose(cm(x).numpy(), want, atol=2e-5, rtol=1e-3)

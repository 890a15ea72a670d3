"""wispy::gru_sequence and wispy::lstm_sequence (wispy.dialects.recurrent): the references compute
what one nn.GRU / nn.LSTM layer computes, the fakes give their shapes and dtypes, the export
emits the op for the layers `select` accepts, and `select`'s rule. Their lowering,
wispy-recurrent-kernel, is checked against PyTorch in tests/passes/test_recurrent_kernel_numeric.py
and tests/passes/wispy-recurrent-kernel*.mlir."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from wispy.compiler.recurrent import as_loops, recurrent_as_loops
from wispy.dialects import get_op
from wispy.dialects.recurrent import select
from wispy.targets import Target

ATOL = 1e-6


def _layer_args(rnn: nn.RNNBase):
    return (rnn.weight_ih_l0, rnn.bias_ih_l0, rnn.weight_hh_l0, rnn.bias_hh_l0)


def test_gru_sequence():
    torch.manual_seed(0)
    gru = nn.GRU(12, 16)
    x, h0 = torch.randn(9, 3, 12), torch.randn(3, 16)
    op = get_op("gru_sequence")
    with torch.no_grad():
        args = (x, h0, *_layer_args(gru))
        hs = op(*args)
        want, _ = gru(x, h0.unsqueeze(0))
        torch.testing.assert_close(hs, want, atol=ATOL, rtol=1e-5)
        torch.testing.assert_close(op(x, h0, gru.weight_ih_l0, None, gru.weight_hh_l0, None),
                                   _without_bias(gru)(x, h0.unsqueeze(0))[0], atol=ATOL, rtol=1e-5)
        torch.library.opcheck(op.overload, args, test_utils=("test_schema", "test_faketensor"))
        fake = op.fake(*[a.to("meta") for a in args])
        assert fake.shape == hs.shape == (9, 3, 16) and fake.dtype == hs.dtype


def _without_bias(rnn):
    """A copy of `rnn` without biases (its weights kept)."""
    kw = dict(input_size=rnn.input_size, hidden_size=rnn.hidden_size, bias=False)
    out = type(rnn)(**kw)
    out.weight_ih_l0.data.copy_(rnn.weight_ih_l0)
    out.weight_hh_l0.data.copy_(rnn.weight_hh_l0)
    return out


def test_lstm_sequence():
    torch.manual_seed(1)
    lstm = nn.LSTM(10, 8)
    x, h0, c0 = torch.randn(7, 2, 10), torch.randn(2, 8), torch.randn(2, 8)
    op = get_op("lstm_sequence")
    with torch.no_grad():
        args = (x, h0, c0, *_layer_args(lstm))
        hs, cs = op(*args)
        want, (h_n, c_n) = lstm(x, (h0.unsqueeze(0), c0.unsqueeze(0)))
        torch.testing.assert_close(hs, want, atol=ATOL, rtol=1e-5)
        torch.testing.assert_close(cs[-1], c_n[0], atol=ATOL, rtol=1e-5)
        torch.library.opcheck(op.overload, args, test_utils=("test_schema", "test_faketensor"))
        fake_h, fake_c = op.fake(*[a.to("meta") for a in args])
        assert fake_h.shape == fake_c.shape == hs.shape == cs.shape == (7, 2, 8)


class _TwoLayers(nn.Module):
    def __init__(self, cell):
        super().__init__()
        self.rnn = cell(6, 16, 2)

    def forward(self, x):
        return self.rnn(x)[0]


@pytest.mark.parametrize("cell,op", [(nn.GRU, "wispy.gru_sequence.default"), (nn.LSTM, "wispy.lstm_sequence.default")])
def test_export_emits_the_op_where_select_says(cell, op):
    """The export (LoopedRNN) writes a layer as the op where the rule takes its W_hh, else as a loop."""
    torch.manual_seed(2)
    model = _TwoLayers(cell).eval()
    x = torch.randn(5, 1, 6)
    first = model.rnn.weight_hh_l0
    rule = lambda w: w is first  # noqa: E731  (only the first layer)
    with torch.no_grad(), recurrent_as_loops(model, rule):
        ep = torch.export.export(as_loops(model, rule), (x,), strict=False)
        got = ep.module()(x)
    called = [str(n.target) for n in ep.graph.nodes if n.op == "call_function"]
    assert called.count(op) == 1
    torch.testing.assert_close(got, model(x), atol=1e-5, rtol=1e-5)


def test_select(monkeypatch):
    """The rule, with a kernel that takes hidden sizes that are multiples of 8: CPU targets only;
    dense matrices up to 1 MiB (16 MiB on several workers), block-sparse ones that save
    min_gain; "on" every layer the kernel takes; only parameters."""
    import wispy.targets as targets

    monkeypatch.setattr(targets, "host_cores", lambda: 1)
    takes = lambda hidden: hidden % 8 == 0  # noqa: E731
    host = Target.parse("host")
    assert select(Target.parse("vulkan"), takes=takes) is None
    assert select(host, "off", takes=takes) is None
    with pytest.raises(ValueError, match="recurrent_kernel must be one of auto, on, off"):
        select(host, "fast", takes=takes)
    small = nn.Parameter(torch.ones(96, 32))
    large = nn.Parameter(torch.ones(3 * 304, 304))           # dense, 1.1 MB
    sparse = nn.Parameter(torch.zeros(3 * 304, 304))
    with torch.no_grad():
        sparse[:, :32] = 1.0
    assert select(host, takes=takes)(small)
    assert not select(host, takes=takes)(large)
    assert select(host, takes=takes)(sparse)
    assert not select(host, sparse=False, takes=takes)(sparse)
    assert select(host, workers=2, takes=takes)(large)
    assert select(host, "on", takes=takes)(large)
    assert not select(host, "on", takes=takes)(nn.Parameter(torch.ones(3 * 12, 12)))   # 12 units: not taken
    assert not select(host, "on", takes=takes)(torch.ones(96, 32))                     # not a parameter
    assert not select(host, "on", takes=takes)(nn.Parameter(torch.ones(50, 32)))       # neither 3H nor 4H rows

"""Streaming: a compiled step function fed chunk by chunk gives the whole-utterance output."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import wispy
from wispy.compiler.streaming import streaming_reference
from wispy.models.acoustic import ConvDFSMN, ConvGRUModel, GRUAcousticModel, LSTMAcousticModel, Wav2Letter

# Streamed and whole-utterance runs do the same f32 operations per frame; the states cross
# chunk boundaries through host memory unchanged. Measured <= 5e-7.
ATOL = 1e-5


def _stream(sm, x, chunk, *, flush=True):
    """Feeds x chunk frames at a time along the model's time axis, then flushes."""
    x = x.numpy() if isinstance(x, torch.Tensor) else x
    ax, n = sm.time_axis, x.shape[sm.time_axis]
    s = sm.session()
    outs = [s.feed(np.take(x, range(i, min(i + chunk, n)), axis=ax)) for i in range(0, n, chunk)]
    if flush:
        outs.append(s.flush())
    return np.concatenate(outs, axis=sm.output_time_axis)


def _whole(model, x):
    with torch.no_grad():
        return model(x).numpy()


def _randomise_batchnorm(model):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


class ResidualConv(nn.Module):
    """Channels-first convs with 'same' padding, a strided conv, a causal F.pad conv, and
    residual adds between branches of different lookahead."""

    def __init__(self, cin=6, c=8, n_classes=5):
        super().__init__()
        self.a = nn.Conv1d(cin, c, 3, padding=1)
        self.b = nn.Conv1d(c, c, 5, padding=2)
        self.bn = nn.BatchNorm1d(c)
        self.down = nn.Conv1d(c, c, 3, stride=2, padding=1)
        self.causal = nn.Conv1d(c, c, 4)
        self.head = nn.Linear(c, n_classes)

    def forward(self, x):  # [B, C, T] -> [B, T/2, classes]
        y = F.relu(self.a(x))
        y = y + F.relu(self.bn(self.b(y)))
        y = self.down(y)
        y = y + self.causal(F.pad(y, (3, 0)))
        return torch.log_softmax(self.head(y.transpose(1, 2)), dim=-1)


class ConvResGRU(nn.Module):
    """[B, T, F]: a strided conv front end, a residual 'same' conv, a GRU, a linear head."""

    def __init__(self, feats=8, c=12, hidden=16, n_classes=5):
        super().__init__()
        self.front = nn.Conv1d(feats, c, 5, stride=2, padding=2)
        self.mid = nn.Conv1d(c, c, 3, padding=1)
        self.rnn = nn.GRU(c, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x):
        y = torch.relu(self.front(x.transpose(1, 2)))
        y = y + torch.tanh(self.mid(y))
        y, _ = self.rnn(y.transpose(1, 2))
        return torch.log_softmax(self.head(y), dim=-1)


def _tiny_dfsmn():
    return ConvDFSMN(n_feats=12, n_classes=9, conv_layers=1, conv_channels=16, layers=3, hidden=32, proj=16,
                     lookback=4, lookahead=2, stride=2, fc_layers=1)


# -- recurrent models ----------------------------------------------------------------------

@pytest.mark.parametrize("cls", [GRUAcousticModel, LSTMAcousticModel])
def test_streamed_equals_whole(cls):
    torch.manual_seed(0)
    model = cls(20, 32, 2, 10).eval()
    sm = wispy.compile_streaming(model, torch.randn(1, 4, 20), progress=False)
    assert sm.latency_frames == 0 and sm.frame_multiple == 1
    x = torch.randn(1, 53, 20)
    whole = _whole(model, x)
    for chunk in (1, 7, 16, 53):  # one module serves every chunk size
        np.testing.assert_allclose(_stream(sm, x, chunk, flush=False), whole, atol=ATOL, err_msg=f"chunk={chunk}")
    assert sm.session().flush().shape == (1, 0, 10)  # no lookahead: nothing left at the end


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


def test_recurrent_model_that_fx_cannot_trace():
    """A forward with Python control flow on the input (torch.fx cannot trace it) still
    streams when its only layers over time are recurrent."""

    class Unbatched(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.head = nn.GRU(6, 8, batch_first=True), nn.Linear(8, 4)

        def forward(self, x):
            if x.dim() == 2:
                x = x.unsqueeze(0)
            return self.head(self.rnn(x)[0])

    torch.manual_seed(0)
    model = Unbatched().eval()
    sm = wispy.compile_streaming(model, torch.randn(1, 4, 6), progress=False)
    x = torch.randn(1, 19, 6)
    np.testing.assert_allclose(_stream(sm, x, 4), _whole(model, x), atol=ATOL)


# -- convolutional models ------------------------------------------------------------------

CONV_MODELS = {
    # name: (factory, input shape [1, ., .] of one utterance, chunk sizes)
    "wav2letter": (lambda: Wav2Letter(12, 7, width=0.05), (1, 12, 61), (1, 2, 7, 20, 61)),
    "convgru": (lambda: ConvGRUModel(10, 16, 16, 2, 7), (1, 41, 10), (1, 2, 3, 8, 41)),
    "residual": (ResidualConv, (1, 6, 37), (1, 2, 5, 16, 37)),
    "convdfsmn": (_tiny_dfsmn, (1, 12, 53), (1, 2, 5, 16, 53)),
}


# convgru (convs then a GRU) adds nothing the other conv models and the recurrent tests above
# do not cover, so it runs with -m slow.
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "convgru" else n
                                  for n in CONV_MODELS])
def test_conv_streamed_equals_whole(name):
    """Chunks of 1 frame up to the whole utterance, then flush(): the concatenation equals
    the whole-utterance output exactly where PyTorch's is defined (all its frames)."""
    factory, shape, chunks = CONV_MODELS[name]
    torch.manual_seed(0)
    model = _randomise_batchnorm(factory())
    x = torch.randn(shape)
    sm = wispy.compile_streaming(model, x, progress=False)
    assert not any(m.training for m in model.modules())  # compiling leaves the model as it was
    whole = _whole(model, x)
    for chunk in chunks:
        got = _stream(sm, x, chunk)
        assert got.shape == whole.shape, f"chunk={chunk}"
        np.testing.assert_allclose(got, whole, atol=1e-4, err_msg=f"chunk={chunk}")
    # a second utterance on the same session starts from the initial state
    s = sm.session()
    s.feed(torch.randn(shape))
    s.flush()
    again = np.concatenate([s.feed(x), s.flush()], axis=sm.output_time_axis)
    np.testing.assert_allclose(again, whole, atol=1e-4)


def test_latency_and_frame_multiple():
    """The output lags the input by the model's lookahead, rounded up to its stride; a
    strided model's session holds an odd frame back until the next one."""
    torch.manual_seed(0)
    w2l = streaming_reference(Wav2Letter(12, 7, width=0.05).eval(), torch.randn(1, 12, 8))
    # k=48 s=2 (23 frames ahead), 7 x k=7 (3 each) and k=32 (16), at half rate: 23 + 2 * 37
    assert w2l.frame_multiple == 2 and w2l.latency_frames == 98
    dfsmn = _tiny_dfsmn().eval()
    sm = streaming_reference(dfsmn, torch.randn(1, 12, 8))
    assert sm.frame_multiple == 1 and sm.latency_frames == dfsmn.context()[1]

    gru = ConvGRUModel(10, 16, 16, 1, 7).eval()
    sm = streaming_reference(gru, torch.randn(1, 4, 10))
    assert sm.frame_multiple == 2 and sm.latency_frames == 2
    s = sm.session()
    sizes = [s.feed(torch.randn(1, 1, 10)).shape[1] for _ in range(8)]
    assert sizes == [0, 0, 0, 1, 0, 1, 0, 1]  # 2 frames of lookahead, 1 output per 2 input frames
    assert s.frames == 8 and s.flush().shape[1] == 1  # 8 frames -> 4 outputs in all


@pytest.mark.parametrize("case", ["layout", "pools-slices", "time-major-lstm", "batch"])
def test_stream_plans_in_pytorch(case):
    """The step function's plan for less common layers (checked without compiling: the same
    step function, run by PyTorch)."""
    torch.manual_seed(1)

    class Layout(nn.Module):  # reshapes that keep time whole, LayerNorm, chunk + GLU-like gate
        def __init__(self):
            super().__init__()
            self.c, self.ln, self.lin = nn.Conv1d(4, 8, 3, padding=1), nn.LayerNorm(8), nn.Linear(4, 3)

        def forward(self, x):
            y = self.ln(self.c(x).transpose(1, 2))
            a, b = torch.chunk(y, 2, dim=-1)
            y = (a * torch.sigmoid(b)).unsqueeze(1).reshape(y.shape[0], y.shape[1], 2, 2).flatten(2)
            return self.lin(y)

    class PoolsSlices(nn.Module):  # stride 3 phase, padding wider than the kernel, slicing, F.conv1d,
        def __init__(self):        # concatenation of branches of different delays, pooling
            super().__init__()
            self.c1 = nn.Conv1d(5, 6, 4, stride=3, padding=2)
            self.c3 = nn.Conv1d(6, 6, 3, padding=4)
            self.w = nn.Parameter(torch.randn(6, 6, 3) * 0.3)
            self.bn, self.mp, self.ap = nn.BatchNorm1d(12), nn.MaxPool1d(2), nn.AvgPool1d(3, 1, 1)

        def forward(self, x):
            y = torch.tanh(self.c1(x))
            z = self.c3(y)[:, :, 3:-3]
            u = F.conv1d(F.pad(y, (2, 0)), self.w)
            v = self.bn(torch.cat([z, u + y], 1))
            return self.mp(self.ap(torch.relu(v)))

    class TimeMajor(nn.Module):  # [T, B, F] into a non-batch_first LSTM
        def __init__(self):
            super().__init__()
            self.c, self.rnn = nn.Conv1d(4, 4, 3, padding=1), nn.LSTM(4, 3, num_layers=2)

        def forward(self, x):
            return self.rnn(self.c(x.permute(1, 2, 0)).permute(2, 0, 1))[0]

    kw = {}
    if case == "layout":
        model, xs = Layout(), [torch.randn(1, 4, 19)]
    elif case == "pools-slices":
        model, xs = PoolsSlices(), [torch.randn(1, 5, t) for t in (29, 30, 31, 40)]
    elif case == "time-major-lstm":
        model, xs, kw = TimeMajor(), [torch.randn(23, 1, 4)], {"time_axis": 0}
    else:
        model, xs = ConvResGRU(), [torch.randn(3, 29, 8)]
    model = _randomise_batchnorm(model)
    sm = streaming_reference(model, xs[0], **kw)
    for x in xs:
        whole = _whole(model, x)
        for chunk in (1, 2, 3, 5, 7, x.shape[sm.time_axis]):
            got = _stream(sm, x, chunk)
            assert got.shape == whole.shape, f"chunk={chunk} T={x.shape[sm.time_axis]}"
            np.testing.assert_allclose(got, whole, atol=1e-5, err_msg=f"chunk={chunk}")


def test_refuses_what_cannot_stream():
    class MeanOverTime(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv1d(4, 4, 3, padding=1)

        def forward(self, x):
            y = self.c(x)
            return y - y.mean(dim=2, keepdim=True)

    class FinalState(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.head = nn.GRU(4, 4, batch_first=True), nn.Linear(4, 3)

        def forward(self, x):
            y, h = self.rnn(x)
            return self.head(y) + self.head(h[-1]).unsqueeze(1)

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv1d(4, 4, 1)

        def forward(self, x):
            y = self.c(x)
            return torch.bmm(y, torch.softmax(torch.bmm(y.transpose(1, 2), y), -1))

    cases = [
        (nn.GRU(4, 4, batch_first=True, bidirectional=True), (1, 5, 4), "bidirectional"),
        (MeanOverTime(), (1, 4, 5), r"'\.mean\(\)' at test_streaming.py:\d+ works over the time axis"),
        (FinalState(), (1, 5, 4), "layer 'rnn' .*final state is known only at the end"),
        (Attention(), (1, 4, 5), "cannot tell whether 'bmm' at test_streaming.py"),
        (nn.Sequential(nn.Conv1d(4, 4, 3, padding=1, padding_mode="reflect")), (1, 4, 5),
         "layer '0' .* pads with 'reflect'"),
        (nn.Sequential(nn.ConvTranspose1d(4, 4, 2, stride=2)), (1, 4, 5), "layer '0' .*ConvTranspose1d"),
        (nn.LSTM(4, 4), (5, 1, 4), "say time_axis=0"),
    ]
    for model, shape, match in cases:
        with pytest.raises(wispy.WispyError, match=match):
            wispy.compile_streaming(model.eval(), torch.randn(shape))


def test_step_needs_a_multiple_of_the_stride():
    sm = streaming_reference(ConvGRUModel(10, 16, 16, 1, 7).eval(), torch.randn(1, 4, 10))
    with pytest.raises(wispy.WispyError, match="multiple of 2 frames"):
        sm.step(np.zeros((1, 3, 10), np.float32), sm.initial_state(), sm.plan.limits(0, None))


def test_streaming_benchmark_on_a_conv_model():
    from wispy.bench.harness import run_streaming_benchmark

    torch.manual_seed(0)
    model = ResidualConv().eval()
    res = run_streaming_benchmark(model, torch.randn(1, 6, 40), chunk=4, repeat=1, echo=False)
    assert res["frames"] == 40 and res["lookahead_frames"] == 4 and res["rtf"] > 0
    assert res["max_abs_err_vs_whole"] < 1e-4


@pytest.mark.parametrize("target,kw", [pytest.param("arm64", {}, marks=pytest.mark.arm64),
                                       pytest.param("vulkan", {"vulkan_target": "lavapipe"},
                                                    marks=pytest.mark.vulkan)])
def test_streaming_on_device_targets(target, kw):
    """Strided and 'same' convs with a residual add, then a GRU: the state of both kinds
    crosses chunks on the device."""
    torch.manual_seed(0)
    model = ConvResGRU().eval()
    x = torch.randn(1, 23, 8)
    sm = wispy.compile_streaming(model, x, target=target, progress=False, **kw)
    np.testing.assert_allclose(_stream(sm, x, 5), _whole(model, x), atol=ATOL)


@pytest.mark.parametrize("target,kw", [pytest.param("arm64", {}, marks=pytest.mark.arm64),
                                       pytest.param("vulkan", {"vulkan_target": "lavapipe"},
                                                    marks=pytest.mark.vulkan)])
def test_convdfsmn_streaming_on_device_targets(target, kw):
    torch.manual_seed(0)
    model = _randomise_batchnorm(_tiny_dfsmn())
    x = torch.randn(1, 12, 23)
    sm = wispy.compile_streaming(model, x, target=target, progress=False, **kw)
    for chunk in (1, 6):
        np.testing.assert_allclose(_stream(sm, x, chunk), _whole(model, x), atol=1e-4)

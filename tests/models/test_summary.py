"""wispy.models.summary: parameters and MACs per second of audio against hand computations."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from wispy.models import ZOO, ConvDFSMN, GRUAcousticModel, LSTMAcousticModel, Wav2Letter, count_macs, summary
from wispy.models.registry import MODELS


def test_tiny_gru_by_hand():
    m = GRUAcousticModel(n_feats=3, hidden=4, layers=2, n_classes=5)
    s = summary(m, frames_per_second=100)
    # params: layer 0: 3 gates x 4 x (3 + 4) weights + 2 x 12 biases; layer 1: 3 x 4 x (4 + 4) + 24; head 4 x 5 + 5
    assert s["params"] == (84 + 24) + (96 + 24) + 25 == 253
    assert s["mb"] == pytest.approx(253 * 4 / 1e6)
    # MACs per frame: 3 x 4 x (3 + 4) + 3 x 4 x (4 + 4) + 4 x 5
    assert s["macs_per_frame"] == 200 and s["macs_per_second"] == 20_000 and s["flops_per_second"] == 40_000
    assert not s["channels_first"] and s["n_feats"] == 3


def test_tiny_lstm_with_projection_by_hand():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(3, 6, num_layers=2, proj_size=2, batch_first=True)

        def forward(self, x):
            return self.rnn(x)[0]

    # layer 0: 4 gates x 6 x (3 inputs + 2 recurrent) + 6 x 2 projection; layer 1: 4 x 6 x (2 + 2) + 12
    assert count_macs(M(), torch.zeros(1, 10, 3)) == 10 * ((120 + 12) + (96 + 12))
    lstm = LSTMAcousticModel(n_feats=3, hidden=4, layers=1, n_classes=5)
    assert summary(lstm, frames_per_second=50)["macs_per_second"] == 50 * (4 * 4 * (3 + 4) + 4 * 5)


def test_tiny_convdfsmn_by_hand():
    m = ConvDFSMN(n_feats=3, n_classes=5, conv_layers=1, conv_channels=4, layers=2, hidden=6, proj=2,
                  lookback=2, lookahead=1, stride=2, fc_layers=1)
    s = summary(m)
    assert s["channels_first"]
    # per frame: conv 3->4 k=3; layer 1: 4->6, 6->2, depthwise 2 x 4 taps; layer 2: 2->6, 6->2, 2 x 4; fc 2->6; head 6->5
    per_frame = 3 * 4 * 3 + (4 * 6 + 6 * 2 + 2 * 4) + (2 * 6 + 6 * 2 + 2 * 4) + 2 * 6 + 6 * 5
    assert s["macs_per_frame"] == per_frame == 154
    # params: conv 36 + 4, BN 4 + 4; layers (24 + 6) + (12 + 2) + 8 and (12 + 6) + (12 + 2) + 8; fc 12 + 6; head 30 + 5
    assert s["params"] == 40 + 8 + 52 + 40 + 18 + 35


def test_tiny_wav2letter_by_hand():
    m = Wav2Letter(n_feats=3, n_classes=5, width=0.01)  # 8 channels, 20 wide
    # stride 2 first: one output frame per 2 input frames; per output frame: k=48 3->8, 7 x k=7 8->8,
    # k=32 8->20, 1x1 20->20, head 20->5
    per_out = 3 * 8 * 48 + 7 * 8 * 8 * 7 + 8 * 20 * 32 + 20 * 20 + 20 * 5
    assert summary(m)["macs_per_second"] == 50 * per_out


def test_agrees_with_torch_flop_counter():
    from torch.utils.flop_counter import FlopCounterMode

    gru_cls, gru_kw = MODELS["gru-small"]
    for model, x1, x2 in [(ZOO["convdfsmn-small"][0](), torch.zeros(1, 40, 30), torch.zeros(1, 40, 60)),
                          (ZOO["wav2letter-small"][0](), torch.zeros(1, 40, 30), torch.zeros(1, 40, 60)),
                          (gru_cls(**gru_kw, n_classes=46), torch.zeros(1, 30, 40), torch.zeros(1, 60, 40))]:
        counts = []
        for x in (x1, x2):
            with torch.no_grad(), FlopCounterMode(display=False) as fc:
                model.eval()(x)
            counts.append(fc.get_total_flops())
        assert summary(model, frames_per_second=30)["flops_per_second"] == counts[1] - counts[0]


def test_unknown_layers_are_refused():
    with pytest.raises(TypeError, match="Conv2d"):
        count_macs(nn.Sequential(nn.Conv2d(1, 1, 3)), torch.zeros(1, 1, 5, 5))


def test_documented_figures_are_the_counted_ones():
    """The size table in wispy.models.acoustic's docstring is what summary() counts."""
    import re

    import wispy.models.acoustic as A

    rows = re.findall(r"^    ([a-z0-9-]+) .*?(\d[\d.]*)(k|M) +([\d.]+) +([\d.]+)$", A.__doc__, re.M)
    assert {r[0] for r in rows} == {"gru", "gru-small", "lstm", "lstm-small", "wav2letter", "wav2letter-small",
                                    "convdfsmn", "convdfsmn-small"}
    for name, params, unit, mb, mmacs in rows:
        if name in ZOO:
            model = ZOO[name][0]()
        else:
            cls, kw = MODELS[name]
            model = cls(**kw, n_classes=46)
        s = summary(model, frames_per_second=20)  # the cost is linear in the length: 20 frames suffice
        s["macs_per_second"] = s["macs_per_frame"] * 100
        scale = 1e3 if unit == "k" else 1e6
        digits = len(params.split(".")[1]) if "." in params else 0
        assert round(s["params"] / scale, digits) == float(params), name
        assert round(s["mb"], len(mb.split(".")[1])) == float(mb), name
        assert round(s["macs_per_second"] / 1e6, 1) == float(mmacs), name

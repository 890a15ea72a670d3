"""Speech acoustic models wispy is built for.

Each factory returns an `nn.Module` in eval mode taking features `[batch, time, n_feats]`
(recurrent models) or `[batch, n_feats, time]` (convolutional models, like Wav2letter's
own code) and returning per-frame log-probabilities over `n_classes` (CTC, blank = 0).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn


class GRUAcousticModel(nn.Module):
    """RTMobile's model (Dong et al., DAC 2020): a unidirectional GRU over filterbank or
    MFCC frames and a linear head over phone classes. Default: 2 layers of 1024, input 153
    (51 filterbank channels with deltas and delta-deltas, as in RTMobile's TIMIT setup),
    61 TIMIT phones + blank. ~9.9M parameters; ~2 x 9.9M MACs per frame."""

    def __init__(self, n_feats: int = 153, hidden: int = 1024, layers: int = 2, n_classes: int = 62):
        super().__init__()
        self.rnn = nn.GRU(n_feats, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x):
        y, _ = self.rnn(x)
        return torch.log_softmax(self.head(y), dim=-1)


class LSTMAcousticModel(nn.Module):
    """An LSTM acoustic model: 2 layers of 512 by default over 40 log-mel features."""

    def __init__(self, n_feats: int = 40, hidden: int = 512, layers: int = 2, n_classes: int = 62):
        super().__init__()
        self.rnn = nn.LSTM(n_feats, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x):
        y, _ = self.rnn(x)
        return torch.log_softmax(self.head(y), dim=-1)


def _conv_block(cin, cout, k, stride=1, dilation=1):
    pad = dilation * (k - 1) // 2
    return nn.Sequential(nn.Conv1d(cin, cout, k, stride=stride, padding=pad, dilation=dilation),
                         nn.BatchNorm1d(cout), nn.Hardtanh(0.0, 20.0))


class Wav2Letter(nn.Module):
    """Wav2letter (Collobert et al., 2016): 1-D convolutions only. A strided first layer
    (k=48, stride 2), seven k=7 layers, a wide k=32 layer, two 1x1 layers, CTC output.
    `width` scales the channels: 250/2000 at full size (~23M parameters); `width=0.25`
    is the small model that trains on a CPU here."""

    def __init__(self, n_feats: int = 40, n_classes: int = 29, width: float = 1.0):
        super().__init__()
        c, wide = max(8, int(250 * width)), max(16, int(2000 * width))
        layers = [_conv_block(n_feats, c, 48, stride=2)]
        layers += [_conv_block(c, c, 7) for _ in range(7)]
        layers += [_conv_block(c, wide, 32), _conv_block(wide, wide, 1)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv1d(wide, n_classes, 1)

    def forward(self, x):
        return torch.log_softmax(self.head(self.body(x)), dim=1)


class ConvGRUModel(nn.Module):
    """The demo model: a strided Conv1d front end (halves the frame rate), a GRU and a
    linear head. Input `[batch, time, n_feats]` log-mel frames."""

    def __init__(self, n_feats: int = 40, channels: int = 256, hidden: int = 256, layers: int = 2,
                 n_classes: int = 62):
        super().__init__()
        self.front = nn.Sequential(nn.Conv1d(n_feats, channels, 5, stride=2, padding=2),
                                   nn.BatchNorm1d(channels), nn.ReLU())
        self.rnn = nn.GRU(channels, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x):
        y = self.front(x.transpose(1, 2)).transpose(1, 2)
        y, _ = self.rnn(y)
        return torch.log_softmax(self.head(y), dim=-1)


def demo_model() -> nn.Module:
    """The shipped trained model: `gru-small` (GRU 2x128 over 40 log-mel features, 45
    phones + blank), CTC-trained on wispy's espeak-ng corpus (scripts in README)."""
    from ..train import load_checkpoint  # lazy: wispy.train imports this module

    return load_checkpoint(_DATA / "gru_small.pt")


def gru_rtmobile(**kw) -> nn.Module:
    return GRUAcousticModel(**kw).eval()


def lstm_512(**kw) -> nn.Module:
    return LSTMAcousticModel(**kw).eval()


def wav2letter(**kw) -> nn.Module:
    return Wav2Letter(**kw).eval()


# name -> (factory, example input shape); used by the CLI and benchmarks.
ZOO = {
    "demo": (demo_model, (1, 362, 40)),  # the trained gru-small on the shipped utterance
    "gru": (gru_rtmobile, (1, 100, 153)),
    "lstm": (lstm_512, (1, 100, 40)),
    "wav2letter": (wav2letter, (1, 40, 400)),
    "wav2letter-small": (lambda: wav2letter(width=0.25), (1, 40, 400)),
}


def example_input(name: str, seed: int = 0) -> torch.Tensor:
    if name == "demo":
        return torch.from_numpy(demo_features())[None]
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*ZOO[name][1], generator=g)


_DATA = Path(__file__).parent / "data"


def demo_features(normalized: bool = True):
    """The shipped utterance's 40 log-mel features [T, 40], normalised as the shipped
    model was trained (the training set's mean and std) unless `normalized=False`."""
    from ..data.corpus import read_audio
    from .features import log_mel

    feats = log_mel(read_audio(_DATA / "demo_utterance.wav"), n_mels=40)
    if normalized:
        import torch as _torch

        norm = _torch.load(_DATA / "gru_small.pt", map_location="cpu", weights_only=False)["config"]["norm"]
        feats = (feats - np.asarray(norm["mean"], np.float32)) / np.asarray(norm["std"], np.float32)
    return np.ascontiguousarray(feats, dtype=np.float32)

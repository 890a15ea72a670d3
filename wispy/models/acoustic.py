"""Speech acoustic models wispy is built for.

Each factory returns an `nn.Module` in eval mode taking features `[batch, time, n_feats]`
(recurrent models) or `[batch, n_feats, time]` (convolutional models, like Wav2letter's
own code; their class has `channels_first = True`) and returning per-frame log-probabilities
over `n_classes` (CTC, blank = 0).

Sizes and compute, counted by `wispy.models.summary` (MACs: multiply-accumulates in the
matrix products and convolutions per second of audio at 100 frames/s; MB at float32):

    zoo / train name   model                               params      MB   MMAC/s
    gru                GRU 2x1024, 153 in, 62 out          9.98M    39.9    997.1
    gru-small          GRU 2x128, 40 in, 46 out            170k      0.68    16.9
    lstm               LSTM 2x512, 40 in, 62 out           3.27M    13.1    325.9
    lstm-small         LSTM 2x128, 40 in, 46 out           225k      0.90    22.3
    wav2letter         Wav2letter, 40 in, 29 letters       23.6M    94.5   1180.0
    wav2letter-small   width 0.25 (29 out; 46 out: 1.58M)  1.57M     6.27    78.2
    convdfsmn          ConvDFSMN 10 x 2048-512, 62 out     27.3M   109.2   2727.1
    convdfsmn-small    ConvDFSMN 4 x 256-128, 46 out       382k      1.53    37.9
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class GRUAcousticModel(nn.Module):
    """RTMobile's model (Dong et al., "RTMobile: beyond real-time mobile acceleration of RNNs
    for speech recognition", DAC 2020): a unidirectional GRU over filterbank or MFCC frames
    and a linear head over phone classes.

    Full (default, zoo `gru`): 2 layers of 1024, input 153 (51 filterbank channels with
    deltas and delta-deltas, as in RTMobile's TIMIT setup), 61 TIMIT phones + blank:
    9.98M parameters (39.9 MB), 997M MACs (1.99 GFLOPs) per second of audio.
    Small (`gru-small`, the shipped trained model): 2 x 128 over 40 log-mel, 45 phones +
    blank: 170k parameters (0.68 MB), 16.9M MACs (33.7 MFLOPs) per second of audio."""

    def __init__(self, n_feats: int = 153, hidden: int = 1024, layers: int = 2, n_classes: int = 62):
        super().__init__()
        self.rnn = nn.GRU(n_feats, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x):
        y, _ = self.rnn(x)
        return torch.log_softmax(self.head(y), dim=-1)


class LSTMAcousticModel(nn.Module):
    """A unidirectional LSTM acoustic model with a linear head (CTC): the classic recurrent
    acoustic model, in sizes of wispy's choosing rather than one paper's.

    Full (default, zoo `lstm`): 2 layers of 512 over 40 log-mel features, 62 classes: 3.27M
    parameters (13.1 MB), 326M MACs (652 MFLOPs) per second of audio.
    Small (`lstm-small`): 2 x 128, 46 classes: 225k parameters (0.90 MB), 22.3M MACs
    (44.6 MFLOPs) per second of audio."""

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
    """Wav2letter (Collobert, Puhrsch, Synnaeve: "Wav2Letter: an end-to-end ConvNet-based
    speech recognition system", 2016): 1-D convolutions only. A strided first layer (k=48,
    stride 2), seven k=7 layers, a wide k=32 layer, two 1x1 layers, CTC output (here; the
    paper's own criterion is ASG). Its outputs are letters: 29 classes by default.

    Full (default, zoo `wav2letter`): 250/2000 channels: 23.6M parameters (94.5 MB), 1.18G
    MACs (2.36 GFLOPs) per second of audio (it outputs 50 frames per second).
    Small (`width=0.25`, zoo `wav2letter-small`, the one trained here): 62/500 channels:
    1.57M parameters (6.27 MB), 78.2M MACs (156 MFLOPs) per second of audio (1.58M and
    78.6M with 46 phone classes)."""

    channels_first = True

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


class DFSMNLayer(nn.Module):
    """One DFSMN component (Zhang et al. 2018), channels first ([B, C, T] in and out):

        h_t  = ReLU(W x_t + b)                       hidden layer (a k=1 Conv1d: a per-frame Linear)
        p_t  = V h_t + v                             linear projection (low rank)
        m_t  = m'_t + p_t + sum_{i=0..N1} a_i * p_{t - s*i} + sum_{j=1..N2} c_j * p_{t + s*j}

    The two sums are one depthwise Conv1d over time (N1 + 1 + N2 taps, dilation s, no bias);
    m'_t is the previous layer's memory output (the skip connection between memory blocks;
    absent in the first layer). The paper allows different lookback and lookahead strides
    (s1, s2); wispy uses one stride, so the memory is a single convolution. `hidden_kernel` > 1
    makes the hidden layer a k-tap Conv1d over time (odd k, same padding)."""

    def __init__(self, cin: int, hidden: int, proj: int, lookback: int, lookahead: int, stride: int = 1,
                 hidden_kernel: int = 1):
        super().__init__()
        if hidden_kernel % 2 != 1:
            raise ValueError(f"hidden_kernel must be odd, not {hidden_kernel}")
        if lookback < 0 or lookahead < 0 or stride < 1:
            raise ValueError(f"bad memory order/stride ({lookback}, {lookahead}, {stride})")
        self.hidden = nn.Conv1d(cin, hidden, hidden_kernel, padding=hidden_kernel // 2)
        self.proj = nn.Conv1d(hidden, proj, 1)
        self.lookback, self.lookahead, self.stride = lookback, lookahead, stride
        symmetric = lookback == lookahead
        # Symmetric orders pad inside the Conv1d; otherwise an explicit (left, right) pad.
        self.pad = None if symmetric else (stride * lookback, stride * lookahead)
        self.memory = nn.Conv1d(proj, proj, lookback + lookahead + 1, dilation=stride, groups=proj, bias=False,
                                padding=stride * lookback if symmetric else 0)

    def forward(self, x, skip: Optional[torch.Tensor] = None):
        p = self.proj(torch.relu(self.hidden(x)))
        m = p + self.memory(p if self.pad is None else F.pad(p, self.pad))
        return m if skip is None else m + skip


class ConvDFSMN(nn.Module):
    """ConvDFSMN: a Deep-FSMN acoustic model (Zhang, Lei, Yan, Dai: "Deep-FSMN for large
    vocabulary continuous speech recognition", ICASSP 2018) with regular Conv1d layers in
    front, as in the "Conv1D equipped DFSMN" of Lv et al. ("INT8 Winograd acceleration for
    Conv1D equipped ASR models deployed on mobile devices", arXiv 2010.14841), whose k=3,
    stride-1 convolutions are what int8 Winograd F(m, 3) accelerates.

    Layout: features [B, n_feats, T] -> log-probs [B, n_classes, T] (channels first, like
    Wav2letter; CTC, blank = 0). Every layer keeps the frame rate and the length.

        front   `conv_layers` x (Conv1d k=`conv_kernel`, stride 1, same padding + BatchNorm + ReLU)
        body    `layers` x DFSMNLayer(hidden, proj, memory (lookback, lookahead, stride)),
                with skip connections between consecutive memory blocks
        head    `fc_layers` x (k=1 Conv1d to `hidden` + ReLU), then a k=1 Conv1d to n_classes

    Per-frame Linear layers are k=1 Conv1d, so the model stays channels first without a
    transpose. The paper's own models end in a low-rank projection before a softmax over
    thousands of tied states; with tens of phone classes wispy's head goes straight to them.
    The sizes are wispy's choices within the DFSMN paper's range (hidden 2048, projection
    512, memory orders of 10-20 frames with stride 2):

        full (default, zoo `convdfsmn`): 2 convs of 512, 10 layers 2048-512, memory
            (10, 5) stride 2, 2 fc layers of 2048; 62 classes: 27.3M parameters (109 MB),
            2.73G MACs (5.45 GFLOPs) per second of audio at 100 frames/s.
        small (`convdfsmn-small`, trains here in ~10 min): 2 convs of 128, 4 layers 256-128,
            memory (10, 5) stride 2, 1 fc layer of 256; 46 classes: 382k parameters
            (1.53 MB), 37.9M MACs (75.9 MFLOPs) per second of audio.

    A layer sees 2*lookback frames of the past and 2*lookahead of the future (stride 2), so
    the full model's output at frame t depends on frames t-202 .. t+102 (latency 1.02 s)."""

    channels_first = True

    def __init__(self, n_feats: int = 40, n_classes: int = 62, conv_layers: int = 2, conv_channels: int = 512,
                 conv_kernel: int = 3, layers: int = 10, hidden: int = 2048, proj: int = 512, lookback: int = 10,
                 lookahead: int = 5, stride: int = 2, fc_layers: int = 2, hidden_kernel: int = 1):
        super().__init__()
        if conv_kernel % 2 != 1:
            raise ValueError(f"conv_kernel must be odd (same padding), not {conv_kernel}")
        self.hparams = dict(n_feats=n_feats, n_classes=n_classes, conv_layers=conv_layers,
                            conv_channels=conv_channels, conv_kernel=conv_kernel, layers=layers, hidden=hidden,
                            proj=proj, lookback=lookback, lookahead=lookahead, stride=stride,
                            fc_layers=fc_layers, hidden_kernel=hidden_kernel)
        front, c = [], n_feats
        for _ in range(conv_layers):
            front += [nn.Conv1d(c, conv_channels, conv_kernel, padding=conv_kernel // 2),
                      nn.BatchNorm1d(conv_channels), nn.ReLU()]
            c = conv_channels
        self.front = nn.Sequential(*front)
        self.dfsmn = nn.ModuleList()
        for _ in range(layers):
            self.dfsmn.append(DFSMNLayer(c, hidden, proj, lookback, lookahead, stride, hidden_kernel))
            c = proj
        fc = []
        for _ in range(fc_layers):
            fc += [nn.Conv1d(c, hidden, 1), nn.ReLU()]
            c = hidden
        self.fc = nn.Sequential(*fc)
        self.head = nn.Conv1d(c, n_classes, 1)

    def forward(self, x):
        y = self.front(x)
        m = None
        for layer in self.dfsmn:
            m = layer(y, m)
            y = m
        return torch.log_softmax(self.head(self.fc(y)), dim=1)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Output frames per input length: every layer keeps the length."""
        return lengths.clone()

    def context(self) -> tuple[int, int]:
        """(past, future) input frames an output frame depends on."""
        h = self.hparams
        k = h["conv_layers"] * (h["conv_kernel"] // 2) + h["layers"] * (h["hidden_kernel"] // 2)
        return (k + h["layers"] * h["stride"] * h["lookback"], k + h["layers"] * h["stride"] * h["lookahead"])


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
    from wispy.models.registry import load_checkpoint  # lazy: the registry imports this module

    return load_checkpoint(DATA_DIR / "gru_small.pt")


def gru_rtmobile(**kw) -> nn.Module:
    return GRUAcousticModel(**kw).eval()


def lstm_512(**kw) -> nn.Module:
    return LSTMAcousticModel(**kw).eval()


def wav2letter(**kw) -> nn.Module:
    return Wav2Letter(**kw).eval()


# ConvDFSMN's small size (the one `wispy train convdfsmn-small` trains), without n_feats/n_classes.
CONVDFSMN_SMALL = dict(conv_layers=2, conv_channels=128, layers=4, hidden=256, proj=128, lookback=10,
                       lookahead=5, stride=2, fc_layers=1)


def convdfsmn(**kw) -> nn.Module:
    return ConvDFSMN(**kw).eval()


def convdfsmn_small(**kw) -> nn.Module:
    return ConvDFSMN(**{"n_classes": 46, **CONVDFSMN_SMALL, **kw}).eval()


# name -> (factory, example input shape); used by the CLI and benchmarks.
ZOO = {
    "demo": (demo_model, (1, 362, 40)),  # the trained gru-small on the shipped utterance
    "gru": (gru_rtmobile, (1, 100, 153)),
    "lstm": (lstm_512, (1, 100, 40)),
    "wav2letter": (wav2letter, (1, 40, 400)),
    "wav2letter-small": (lambda: wav2letter(width=0.25), (1, 40, 400)),
    "convdfsmn": (convdfsmn, (1, 40, 400)),
    "convdfsmn-small": (convdfsmn_small, (1, 40, 400)),
}


def example_input(name: str, seed: int = 0) -> torch.Tensor:
    if name == "demo":
        return torch.from_numpy(demo_features())[None]
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*ZOO[name][1], generator=g)


DATA_DIR = Path(__file__).parent / "data"


def demo_features(normalized: bool = True):
    """The shipped utterance's 40 log-mel features [T, 40], normalised as the shipped
    model was trained (the training set's mean and std) unless `normalized=False`."""
    from wispy.data.corpus import read_audio
    from wispy.data.features import log_mel

    feats = log_mel(read_audio(DATA_DIR / "demo_utterance.wav"), n_mels=40)
    if normalized:
        from wispy.models.loading import load_torch_file

        norm = load_torch_file(DATA_DIR / "gru_small.pt")["config"]["norm"]
        feats = (feats - np.asarray(norm["mean"], np.float32)) / np.asarray(norm["std"], np.float32)
    return np.ascontiguousarray(feats, dtype=np.float32)

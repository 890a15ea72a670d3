"""Size and compute of an acoustic model, counted on the model itself.

    >>> from wispy.models import summary, ZOO
    >>> s = summary(ZOO["gru"][0]())    # RTMobile's GRU 2x1024
    >>> s["params"], round(s["mb"], 1), s["macs_per_second"], s["flops_per_second"]
    (9983038, 39.9, 997068800, 1994137600)

Parameters are counted from `model.parameters()`; `mb` is their size at their own dtype
(float32: 4 bytes each). Multiply-accumulates are counted by running the model on inputs of
`frames_per_second` and 2 x `frames_per_second` frames with a forward hook on every layer
that multiplies: the difference is what one more second of audio costs in a long utterance
(so a convolution's unpadded borders do not count). One MAC is one multiply and one add
(2 FLOPs). Counted: Linear, Conv1d (depthwise and grouped as such), GRU, LSTM (with
`proj_size`) and RNN layers, whose per-frame cost is their input and recurrent matrix products
(gates x (input x hidden + hidden x hidden)). Not counted: elementwise work (activations, gate
products, adds, the log-softmax) and normalisation, which folds into the layer before it at
inference; these are a few percent at most in these models. A leaf layer with weights of any
other kind is refused rather than silently skipped.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

# Layers with weights that cost no matrix products (normalisation folds into the layer before).
_FREE = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm1d)


def _rnn_macs(m: nn.RNNBase, x: torch.Tensor) -> int:
    """MACs of one call of a GRU/LSTM/RNN on input `x` (all layers and directions)."""
    gates = {"GRU": 3, "LSTM": 4}.get(m.mode, 1)
    steps = x.shape[1] if m.batch_first else x.shape[0]
    batch = (x.shape[0] if m.batch_first else x.shape[1]) if x.dim() == 3 else 1
    dirs = 2 if m.bidirectional else 1
    proj = getattr(m, "proj_size", 0)
    out_size = proj or m.hidden_size
    total = 0
    for layer in range(m.num_layers):
        inp = m.input_size if layer == 0 else out_size * dirs
        per_step = gates * m.hidden_size * (inp + out_size) + (m.hidden_size * proj if proj else 0)
        total += dirs * per_step
    return total * steps * batch


def count_macs(model: nn.Module, *args) -> int:
    """Multiply-accumulates of `model(*args)` in its matrix products (see the module doc)."""
    total = [0]
    unknown = []

    def hook(m, inputs, output):
        if isinstance(m, nn.Linear):
            total[0] += output.numel() * m.in_features
        elif isinstance(m, nn.Conv1d):
            total[0] += output.numel() * (m.in_channels // m.groups) * m.kernel_size[0]
        elif isinstance(m, nn.RNNBase):
            total[0] += _rnn_macs(m, inputs[0])

    handles = []
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.RNNBase)):
            handles.append(m.register_forward_hook(hook))
        elif not list(m.children()) and list(m.parameters(recurse=False)) and not isinstance(m, _FREE):
            unknown.append(type(m).__name__)
    if unknown:
        for h in handles:
            h.remove()
        raise TypeError(f"count_macs cannot count layers of type {', '.join(sorted(set(unknown)))}")
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(*args)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total[0]


def input_layout(model: nn.Module) -> tuple[int, bool]:
    """(n_feats, channels_first) of one of wispy's acoustic models: channels first when the
    class says so (`channels_first = True`: Wav2Letter, ConvDFSMN), the feature count from the
    first layer that consumes the input."""
    for m in model.modules():
        if isinstance(m, nn.Conv1d):
            n = m.in_channels
            break
        if isinstance(m, nn.RNNBase):
            n = m.input_size
            break
        if isinstance(m, nn.Linear):
            n = m.in_features
            break
    else:
        raise TypeError(f"cannot tell the input size of a {type(model).__name__}")
    return n, bool(getattr(model, "channels_first", False))


def summary(model: nn.Module, frames_per_second: int = 100, *, n_feats: Optional[int] = None,
            channels_first: Optional[bool] = None) -> dict:
    """{"params", "mb", "macs_per_second", "flops_per_second", "macs_per_frame",
    "frames_per_second", "n_feats", "channels_first"} of `model` (a module, or a zoo name).

    `frames_per_second` is the input frame rate (100 for a 10 ms hop); `macs_per_frame` is per
    input frame. The input layout comes from `input_layout` unless given."""
    if isinstance(model, str):
        from wispy.models.acoustic import ZOO

        model = ZOO[model][0]()
    f, cf = input_layout(model)
    n_feats = f if n_feats is None else n_feats
    channels_first = cf if channels_first is None else channels_first

    def macs(frames):
        x = torch.zeros(1, n_feats, frames) if channels_first else torch.zeros(1, frames, n_feats)
        return count_macs(model, x)

    per_second = macs(2 * frames_per_second) - macs(frames_per_second)
    params = list(model.parameters())
    return {"params": sum(p.numel() for p in params),
            "mb": sum(p.numel() * p.element_size() for p in params) / 1e6,
            "macs_per_second": per_second, "flops_per_second": 2 * per_second,
            "macs_per_frame": per_second / frames_per_second, "frames_per_second": frames_per_second,
            "n_feats": n_feats, "channels_first": channels_first}


def format_summary(s: dict) -> str:
    return (f"{s['params'] / 1e6:.3g}M parameters ({s['mb']:.3g} MB), {s['macs_per_second'] / 1e6:,.1f}M MACs "
            f"({s['flops_per_second'] / 1e6:,.1f} MFLOPs) per second of audio")

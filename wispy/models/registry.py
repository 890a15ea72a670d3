"""The acoustic models' registry: CLI names, configs that rebuild a model, layouts and output
lengths, and checkpoints (`load_checkpoint`)."""
from __future__ import annotations

import torch
from torch import nn

from wispy.errors import ModelLoadError
from wispy.models.acoustic import CONVDFSMN_SMALL, ConvDFSMN, ConvGRUModel, GRUAcousticModel, LSTMAcousticModel, Wav2Letter
from wispy.models.loading import load_torch_file

# CLI model names -> (class, kwargs without n_classes, which comes from the corpus)
MODELS = {
    "gru-small": (GRUAcousticModel, {"n_feats": 40, "hidden": 128, "layers": 2}),
    "gru-medium": (GRUAcousticModel, {"n_feats": 40, "hidden": 256, "layers": 2}),  # pruning's headroom
    "lstm-small": (LSTMAcousticModel, {"n_feats": 40, "hidden": 128, "layers": 2}),
    "wav2letter-small": (Wav2Letter, {"n_feats": 40, "width": 0.25}),
    "convdfsmn-small": (ConvDFSMN, {"n_feats": 40, **CONVDFSMN_SMALL}),
}
CLASSES = {c.__name__: c for c in (GRUAcousticModel, LSTMAcousticModel, Wav2Letter, ConvGRUModel, ConvDFSMN)}


# ---------------------------------------------------------------------------------------------
# Models: config, layout, output lengths


def model_config(model: nn.Module) -> dict:
    """{"class": name, "kwargs": constructor arguments} of one of wispy's acoustic models,
    read back from its layers (so any instance can be checkpointed and rebuilt)."""
    if isinstance(model, (GRUAcousticModel, LSTMAcousticModel)):
        r = model.rnn
        kw = {"n_feats": r.input_size, "hidden": r.hidden_size, "layers": r.num_layers,
              "n_classes": model.head.out_features}
    elif isinstance(model, Wav2Letter):
        c, wide = model.body[0][0].out_channels, model.head.in_channels
        width = next((w for w in (wide / 2000, c / 250, 1.0)
                      if max(8, int(250 * w)) == c and max(16, int(2000 * w)) == wide), None)
        if width is None:
            raise ValueError(f"cannot infer Wav2Letter's width from {c}/{wide} channels")
        kw = {"n_feats": model.body[0][0].in_channels, "n_classes": model.head.out_channels, "width": width}
    elif isinstance(model, ConvDFSMN):
        kw = dict(model.hparams)
    elif isinstance(model, ConvGRUModel):
        r = model.rnn
        kw = {"n_feats": model.front[0].in_channels, "channels": model.front[0].out_channels,
              "hidden": r.hidden_size, "layers": r.num_layers, "n_classes": model.head.out_features}
    else:
        raise TypeError(f"train/evaluate support {', '.join(CLASSES)}, not {type(model).__name__}")
    return {"class": type(model).__name__, "kwargs": kw}


def build_model(config: dict) -> nn.Module:
    return CLASSES[config["class"]](**config["kwargs"])


def is_channels_first(model_or_cfg) -> bool:
    """True when the model takes [B, F, T] and returns [B, C, T'] (Wav2Letter, ConvDFSMN)."""
    name = model_or_cfg["class"] if isinstance(model_or_cfg, dict) else type(model_or_cfg).__name__
    return name in ("Wav2Letter", "ConvDFSMN")


def output_lengths(model: nn.Module, lengths: torch.Tensor) -> torch.Tensor:
    """Output frames per input length. A model with its own `output_lengths` method
    (ConvDFSMN: its depthwise memory convolutions pad explicitly and keep the length) says
    so itself; otherwise every Conv1d in order (all of them are on the time axis and in
    sequence in these models) maps L -> floor((L + 2p - d(k-1) - 1) / s) + 1."""
    if callable(getattr(model, "output_lengths", None)):
        return model.output_lengths(lengths)
    out = lengths.clone()
    for m in model.modules():
        if isinstance(m, nn.Conv1d):
            (k,), (s,), (p,), (d,) = m.kernel_size, m.stride, m.padding, m.dilation
            out = torch.div(out + 2 * p - d * (k - 1) - 1, s, rounding_mode="floor") + 1
    return out


def min_frames(model: nn.Module) -> int:
    """The shortest input with at least one output frame (dynamic-shape lower bound)."""
    t = 1
    while output_lengths(model, torch.tensor([t]))[0] < 1:
        t += 1
    return t


def forward_frames(model, x: torch.Tensor, channels_first: bool) -> torch.Tensor:
    """x: [B, T, F] -> log-probs [B, T', C] whatever the model's layout."""
    if channels_first:
        return model(x.transpose(1, 2)).transpose(1, 2)
    return model(x)


def load_checkpoint(path) -> nn.Module:
    """Rebuilds the model of a best.pt/last.pt (eval mode, `.wispy_config` set)."""
    ck = load_torch_file(path)
    if not isinstance(ck, dict) or not isinstance(ck.get("model"), dict) or not isinstance(ck.get("config"), dict):
        keys = sorted(map(str, ck)) if isinstance(ck, dict) else type(ck).__name__
        raise ModelLoadError(f"{path} is not a wispy checkpoint: it needs 'model' (a state dict) and 'config' "
                             f"(the model's settings), and has {keys}; give a best.pt/last.pt of `wispy train` "
                             f"or a final.pt of `wispy prune`")
    model = build_model(ck["config"])
    model.load_state_dict(ck["model"])
    model.eval()
    model.wispy_config = ck["config"]
    return model

"""The normalised training data of a model: features as its config says, normalised with its
statistics (or the train split's)."""
from __future__ import annotations

from torch import nn

from wispy.data.loaders import apply_norm, load_examples, norm_stats
from wispy.models.registry import model_config


def ensure_config(model: nn.Module) -> dict:
    """The model's wispy_config (set by wispy.training); a default one (log-mel 40, no
    normalisation) for a model built by hand and trained on data given directly."""
    if getattr(model, "wispy_config", None) is None:
        model.wispy_config = {**model_config(model), "feature": "logmel", "n_mels": 40, "norm": None}
    return model.wispy_config


def prepare_data(model: nn.Module, corpus_dir, splits=("train", "valid")) -> dict:
    """{split: [(normalised features [T, F], target ids)]} with the model's config (feature,
    n_mels, norm, units); a model without one gets the default config (`ensure_config`) and
    the train split's statistics, kept in `model.wispy_config`."""
    cfg = getattr(model, "wispy_config", None)
    if cfg is None:
        cfg = {**model_config(model), "feature": "logmel", "n_mels": 40, "norm": None}
    units = cfg.get("units", "phones")
    feature, n_mels = cfg.get("feature", "logmel"), cfg.get("n_mels", 40)
    need = list(splits) if cfg.get("norm") is not None or "train" in splits else ["train", *splits]
    data = {s: load_examples(corpus_dir, s, feature, n_mels, units) for s in need}
    if cfg.get("norm") is None:
        cfg = {**cfg, "norm": norm_stats(data["train"])}
    model.wispy_config = cfg
    return {s: [(apply_norm(x, cfg["norm"]), ids) for x, ids in data[s]] for s in splits}

"""Arguments and argument types shared by several `wispy` commands."""
from __future__ import annotations

import argparse
import sys


def workers(text: str):
    """--recurrent-workers: 'auto' or a count."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto or a whole number, not {text!r}") from None


def add_target_args(p):
    p.add_argument("--target", default="host", help="host, arm64, armv7 or vulkan (default host)")
    p.add_argument("--cpu-features", default="", help="CPU features, e.g. +dotprod,+i8mm on arm64")
    p.add_argument("--vulkan-target", default=None, help="vulkan: valhall (default), adreno, ...")


def add_model_args(p):
    p.add_argument("model", help="PATH.py:FACTORY, a saved torch.export program PATH.pt2, or zoo:NAME "
                                 "(zoo: gru, lstm, wav2letter, wav2letter-small, convdfsmn, convdfsmn-small)")
    p.add_argument("--input", action="append", default=[], help="example input .npy (repeat per input)")
    p.add_argument("--input-shape", action="append", default=[],
                   help="example input shape instead of a file, e.g. 1x100x153[:float32]")


def count(text: str) -> int:
    if not text.isdigit():
        raise ValueError(text)
    return int(text)


def name_values(items, command: str, flag: str, form: str, convert=str):
    """{NAME: VALUE} from repeated `flag NAME=VALUE` options, or None after printing what
    is wrong (the caller exits with 2)."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[name] = convert(value)
        except ValueError:
            print(f"wispy {command}: error: {flag} wants {form}, not {item!r}", file=sys.stderr)
            return None
    return out


def seed_arg(p):
    p.add_argument("--seed", type=int, default=0,
                   help="order of the training batches (default 0); another seed trains another sample of "
                        "the same recipe, to see how much of a PER difference is chance")


def new_model(name: str, corpus, *, n_mels: int = 40, units: str = "phones", seed: int = 0):
    """A fresh model of the training zoo (`wispy.models.registry.MODELS`) sized for the corpus."""
    import torch

    from wispy.models.registry import MODELS
    from wispy.data.vocab import vocabulary

    cls, kw = MODELS[name]
    torch.manual_seed(seed)
    return cls(**{**kw, "n_feats": n_mels, "n_classes": len(vocabulary(corpus, units))})

"""Knowledge distillation for the training loops: the per-frame KL divergence to a teacher's
output distribution, as a loss term of `run_epoch`."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from wispy.errors import ModelLoadError
from wispy.models.registry import forward_frames


def kd_loss(student_lp: torch.Tensor, teacher_lp: torch.Tensor, olen: torch.Tensor, tlen: torch.Tensor) -> torch.Tensor:
    """Sum over valid frames of KL(teacher || student) per utterance / its target length, mean
    over the batch. lp: [B, T', C] log-probabilities."""
    kl = (teacher_lp.exp() * (teacher_lp - student_lp)).sum(-1)  # [B, T']
    mask = torch.arange(kl.shape[1])[None, :] < olen[:, None]
    per_utt = (kl * mask).sum(1) / tlen.clamp(min=1).to(kl.dtype)
    return per_utt.mean()


def teacher_kd(student_lp: torch.Tensor, teacher: nn.Module, x: torch.Tensor, channels_first: bool,
               olen: torch.Tensor, tlen: torch.Tensor) -> torch.Tensor:
    """`kd_loss` against `teacher`'s outputs on the same batch (the teacher run without grad)."""
    with torch.no_grad():
        teacher_lp = forward_frames(teacher, x, channels_first)
    return kd_loss(student_lp, teacher_lp, olen, tlen)


def kd_term(teacher: nn.Module) -> Callable:
    """`teacher_kd` as a loss term of `wispy.training.loop.run_epoch` (a function of the batch)."""
    return lambda b: teacher_kd(b.log_probs, teacher, b.x, b.channels_first, b.output_lengths, b.target_lengths)


def check_teacher(model: nn.Module, teacher: nn.Module) -> None:
    """The teacher sees the student's (normalized) inputs and its outputs are compared frame by
    frame, so features, normalization and output classes must agree."""
    s, t = getattr(model, "wispy_config", None) or {}, getattr(teacher, "wispy_config", None) or {}
    s = {**s, "n_classes": (s.get("kwargs") or {}).get("n_classes")}
    t = {**t, "n_classes": (t.get("kwargs") or {}).get("n_classes")}
    for key in ("feature", "n_mels", "units", "phones", "n_classes", "norm"):
        if key in s and key in t and _differs(s[key], t[key]):
            raise ModelLoadError(f"the distillation teacher's {key!r} differs from the student's "
                                 f"({t[key]!r} against {s[key]!r}): distil from the dense model the "
                                 "pruned one was made from")


def _differs(a, b) -> bool:
    if a is None or b is None:  # (np.asarray(None, float) is nan, which differs from itself)
        return a is not b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() != b.keys() or any(_differs(a[k], b[k]) for k in a)
    try:
        return not np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    except (TypeError, ValueError):
        return a != b

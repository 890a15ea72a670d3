"""Quantization-aware training and Range-Scaled Quantization (RSQ, Lv et al., arXiv 2010.14841)
of a model `wispy.compress.quant.prepare`d and calibrated; `quantize(method="qat"|"rsq")` calls
`qat_train`.

QAT: the quantized layers run their fake-quant forward (the int8 arithmetic carried in float32,
straight-through estimators at every rounding), in the direct or the Winograd domain: in a
Winograd layer the weights are transformed (U = G g) and quantized per output channel and
Winograd position at every step, the input tiles transformed (B^T z) and requantized to int8
with v_scale, so the training sees exactly the rounding and clamping the int8 code will do.
Activation scales (x_scale) and Winograd-domain scales (v_scale) stay at their calibrated
values; the float weights and biases are trained with CTC on the corpus.

RSQ adds the two things the paper names:

- the range scaled for the transformed values: each Winograd layer's v_scale is a trained
  parameter, v_scale[j] = x_scale * exp(v_log_range[j]) (one per Winograd position), started
  at the calibrated range and moved by the loss's gradient through the requantization (the
  straight-through estimator gives the LSQ gradient: round(v/s) - v/s inside the range, +-127
  at the clamp), so each position settles where resolution and clipping balance for the task
  rather than for the worst case value; `range_lr` is its learning rate;
- knowledge distillation from the full-precision model: the per-frame KL divergence
  KL(p_float || p_int8) of the output distributions, summed over an utterance's frames and
  divided by its target length (the normalisation CTC's "mean" reduction uses), averaged over
  the batch, added to the CTC loss with weight `kd_weight` (1.0: the two terms have the same
  scale). The teacher is the float model (BatchNorm as trained), in eval mode.

Learning rates follow a cosine from `lr` to lr/20 over all the steps (Adam). Every epoch
validates (greedy PER on the valid split, fake-quant in eval mode: the int8 numbers) and writes
`qat_last.pt` (resumable, same batch order) and `best.pt`; the model ends with the best epoch's
weights (and ranges).
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from wispy.compress.quant import QuantConv1d, quant_layers
from wispy.training.checkpoints import load_file, resume_from, save_checkpoint, write_history
from wispy.training.data import prepare_data  # noqa: F401  (also importable from here)
from wispy.training.distill import kd_loss, kd_term, teacher_kd  # noqa: F401  (kd_loss, teacher_kd: also from here)
from wispy.training.loop import EpochHooks, n_batches, run_epoch
from wispy.training.validate import valid_per


def qat_train(qmodel: nn.Module, corpus_dir, *, epochs: int = 1, lr: float = 3e-4, range_lr: float = 1e-2,
              learn_range: bool = False, teacher: Optional[nn.Module] = None, kd_weight: float = 0.0,
              batch_size: int = 16, max_batches: Optional[int] = None, clip: float = 5.0, out_dir=None,
              resume: bool = True, seed: int = 0, progress: bool = True, data: Optional[dict] = None) -> dict:
    """Trains a calibrated quantized model (fake-quant) in place; see the module docstring.

    learn_range  RSQ's trained Winograd-domain ranges (v_scale); False keeps the calibrated ones
    teacher / kd_weight   distillation from `teacher` (KL per frame) with this weight
    max_batches  at most this many batches per epoch (a seeded random subset), for a quick run
    out_dir      qat_last.pt (every epoch, resumable), best.pt, history.json
    Returns {"history": [{"epoch", "train_loss", "ctc", "kd", "valid_per", "seconds"}],
    "best_valid_per", "best_epoch", "valid_per_before", "v_scale": {layer: [...]}}."""
    from tqdm import tqdm

    data = data or prepare_data(qmodel, corpus_dir)
    train, valid = data["train"], data["valid"]
    if getattr(qmodel, "wispy_config", None) is None:
        from wispy.models.registry import model_config

        qmodel.wispy_config = model_config(qmodel)
    torch.manual_seed(seed)
    opt, weights = _qat_optimizer(qmodel, learn_range, lr, range_lr)
    terms = {}
    if teacher is not None:
        teacher = teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        if kd_weight > 0:
            terms["kd"] = (kd_weight, kd_term(teacher))
    per_epoch = min(n_batches(train, batch_size), max_batches) if max_batches else n_batches(train, batch_size)
    total_steps = max(1, epochs * per_epoch)
    name = "RSQ" if learn_range else "QAT"
    out = Path(out_dir) if out_dir else None
    start, history, best, best_epoch, best_state, per0 = _resume_qat(out, resume, qmodel, opt)
    if per0 is None or best_state is None:  # training must beat the calibrated model to replace it
        per0 = valid_per(qmodel, valid)
        if progress:
            tqdm.write(f"quantized, before training: valid PER {per0:.4f}")
        best, best_epoch = per0, 0
        best_state = {k: v.clone() for k, v in qmodel.state_dict().items()}
        if out is not None:
            save_checkpoint({"model": best_state, "epoch": 0, "valid_per": per0}, out / "best.pt")
    for epoch in range(start + 1, epochs + 1):
        t0 = time.perf_counter()
        hooks = EpochHooks(before_batch=_cosine_lr(opt, (epoch - 1) * per_epoch, total_steps), loss_terms=terms)
        stats = run_epoch(qmodel, train, opt, seed=seed, epoch=epoch, salt=7, batch_size=batch_size, clip=clip,
                          clip_params=weights, max_batches=per_epoch, hooks=hooks,
                          desc=f"{name} {epoch}/{epochs}", progress=progress)
        per = valid_per(qmodel, valid)
        rec = {"epoch": epoch, "train_loss": stats["loss"], "ctc": stats["ctc"], "kd": stats.get("kd", 0.0),
               "valid_per": per, "batches": stats["batches"], "seconds": time.perf_counter() - t0}
        history.append(rec)
        if progress:
            tqdm.write(f"{name} epoch {epoch}: loss {rec['train_loss']:.3f} "
                       f"(CTC {rec['ctc']:.3f}, KD {rec['kd']:.3f})  valid PER {per:.4f}  ({rec['seconds']:.0f} s)")
        if per < best:
            best, best_epoch = per, epoch
            best_state = {k: v.clone() for k, v in qmodel.state_dict().items()}
            if out is not None:
                save_checkpoint({"model": best_state, "epoch": epoch, "valid_per": per}, out / "best.pt")
        if out is not None:
            save_checkpoint({"model": qmodel.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                             "history": history, "best_valid_per": best, "best_epoch": best_epoch,
                             "valid_per_before": per0, "quant": qmodel.wispy_quant}, out / "qat_last.pt")
            write_history(out, history)
    qmodel.load_state_dict(best_state)
    qmodel.eval()
    return {"history": history, "best_valid_per": best, "best_epoch": best_epoch, "valid_per_before": per0,
            "learn_range": learn_range, "kd_weight": kd_weight if teacher is not None else 0.0, "lr": lr,
            "range_lr": range_lr if learn_range else None, "epochs": epochs, "batches_per_epoch": per_epoch,
            "v_scale": _v_scales(qmodel)}


def _qat_optimizer(qmodel: nn.Module, learn_range: bool, lr: float, range_lr: float):
    """(Adam over the weights at `lr` and, with `learn_range`, the Winograd layers' trained
    ranges at `range_lr`; the weights, whose gradient norm is clipped)."""
    ranges = []
    if learn_range:
        for mod in quant_layers(qmodel).values():
            if isinstance(mod, QuantConv1d) and mod.m is not None:
                ranges.append(mod.enable_range_training())
    range_ids = {id(p) for p in ranges}
    weights = [p for p in qmodel.parameters() if id(p) not in range_ids and p.requires_grad]
    groups = [{"params": weights, "lr": lr, "base_lr": lr}]
    if ranges:
        groups.append({"params": ranges, "lr": range_lr, "base_lr": range_lr})
    return torch.optim.Adam(groups), weights


def _cosine_lr(opt, first_step: int, total_steps: int):
    """A `before_batch` hook: every group's learning rate on a cosine from its base_lr to
    base_lr/20 over `total_steps`, at step `first_step` + the batch's index."""
    def set_lr(i):
        s = (first_step + i) / total_steps
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * s)))
    return set_lr


def _resume_qat(out: Optional[Path], resume: bool, qmodel: nn.Module, opt):
    """(start epoch, history, best valid PER, best epoch, best weights, valid PER before
    training): from out/qat_last.pt (model and optimizer loaded) and out/best.pt, or a fresh
    start (None for the last two)."""
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    ck = resume_from(out / "qat_last.pt" if out is not None else None, resume)
    if ck is None:
        return 0, [], math.inf, 0, None, None
    qmodel.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    best_state = load_file(out / "best.pt")["model"] if (out / "best.pt").exists() else None
    return ck["epoch"], ck["history"], ck["best_valid_per"], ck["best_epoch"], best_state, ck.get("valid_per_before")


def _v_scales(qmodel: nn.Module) -> dict:
    """{layer: [v_scale per Winograd position]} of the Winograd layers."""
    return {n: [float(v) for v in m.current_v_scale().detach()] for n, m in quant_layers(qmodel).items()
            if isinstance(m, QuantConv1d) and m.m is not None}

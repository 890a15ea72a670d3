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

import json
import math
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

from wispy.compress.quant import QuantConv1d, quant_layers


def prepare_data(model: nn.Module, corpus_dir, splits=("train", "valid")) -> dict:
    """{split: [(normalised features [T, F], target ids)]} with the model's config (feature,
    n_mels, norm, units); a model without one gets the train split's statistics."""
    from wispy.data.loaders import (
        apply_norm as _apply_norm,
        load_examples as _load,
        norm_stats as _norm_stats,
    )
    from wispy.models.registry import model_config

    cfg = getattr(model, "wispy_config", None)
    if cfg is None:
        cfg = {**model_config(model), "feature": "logmel", "n_mels": 40, "norm": None}
    units = cfg.get("units", "phones")
    feature, n_mels = cfg.get("feature", "logmel"), cfg.get("n_mels", 40)
    need = list(splits) if cfg.get("norm") is not None or "train" in splits else ["train", *splits]
    data = {s: _load(corpus_dir, s, feature, n_mels, units) for s in need}
    if cfg.get("norm") is None:
        cfg = {**cfg, "norm": _norm_stats(data["train"])}
    model.wispy_config = cfg
    return {s: [(_apply_norm(x, cfg["norm"]), ids) for x, ids in data[s]] for s in splits}


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
    from wispy.models.registry import forward_frames as _forward

    with torch.no_grad():
        teacher_lp = _forward(teacher, x, channels_first)
    return kd_loss(student_lp, teacher_lp, olen, tlen)


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

    from wispy.metrics import error_rate
    from wispy.training.ctc import save_checkpoint as _atomic_save, decode_batched as _decode_batched
    from wispy.data.loaders import length_batches as _batches, collate as _collate
    from wispy.models.registry import (
        is_channels_first as _channels_first,
        forward_frames as _forward,
        output_lengths,
    )

    data = data or prepare_data(qmodel, corpus_dir)
    train, valid = data["train"], data["valid"]
    if getattr(qmodel, "wispy_config", None) is None:
        from wispy.models.registry import model_config

        qmodel.wispy_config = model_config(qmodel)
    cf = _channels_first(qmodel.wispy_config)
    torch.manual_seed(seed)
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
    opt = torch.optim.Adam(groups)
    if teacher is not None:
        teacher = teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)

    lengths = [x.shape[0] for x, _ in train]
    n_batches = math.ceil(len(train) / batch_size)
    per_epoch = min(n_batches, max_batches) if max_batches else n_batches
    total_steps = max(1, epochs * per_epoch)

    def valid_per():
        hyps = _decode_batched(qmodel, valid, cf)
        return error_rate([ids for _, ids in valid], hyps)

    out = Path(out_dir) if out_dir else None
    start, history, best, best_epoch, best_state = 0, [], math.inf, 0, None
    per0 = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        last = out / "qat_last.pt"
        if resume and last.exists():
            ck = torch.load(last, map_location="cpu", weights_only=False)
            qmodel.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            start, history = ck["epoch"], ck["history"]
            best, best_epoch, per0 = ck["best_valid_per"], ck["best_epoch"], ck.get("valid_per_before")
            if (out / "best.pt").exists():
                best_state = torch.load(out / "best.pt", map_location="cpu", weights_only=False)["model"]
    if per0 is None or best_state is None:  # training must beat the calibrated model to replace it
        per0 = valid_per()
        if progress:
            tqdm.write(f"quantized, before training: valid PER {per0:.4f}")
        best, best_epoch = per0, 0
        best_state = {k: v.clone() for k, v in qmodel.state_dict().items()}
        if out is not None:
            _atomic_save({"model": best_state, "epoch": 0, "valid_per": per0}, out / "best.pt")
    for epoch in range(start + 1, epochs + 1):
        t0 = time.perf_counter()
        qmodel.train()
        rng = np.random.default_rng([seed, 7, epoch])
        batches = _batches(lengths, batch_size, rng)[:per_epoch]
        tot = {"loss": 0.0, "ctc": 0.0, "kd": 0.0}
        count = 0
        bar = tqdm(batches, desc=f"{'RSQ' if learn_range else 'QAT'} {epoch}/{epochs}", unit="batch", leave=False,
                   disable=not progress)
        for i, b in enumerate(bar):
            s = ((epoch - 1) * per_epoch + i) / total_steps
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * s)))
            x, xlen, targets, tlen = _collate([train[j] for j in b])
            lp = _forward(qmodel, x, cf)
            olen = output_lengths(qmodel, xlen)
            ctc = nn.functional.ctc_loss(lp.transpose(0, 1), targets, olen, tlen, blank=0, zero_infinity=True)
            loss = ctc
            kd = torch.zeros(())
            if teacher is not None and kd_weight > 0:
                kd = teacher_kd(lp, teacher, x, cf, olen, tlen)
                loss = ctc + kd_weight * kd
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(weights, clip)
            opt.step()
            n = len(b)
            tot["loss"] += loss.item() * n
            tot["ctc"] += ctc.item() * n
            tot["kd"] += kd.item() * n
            count += n
            if progress:
                bar.set_postfix(loss=f"{tot['loss'] / count:.3f}", kd=f"{tot['kd'] / count:.3f}")
        bar.close()
        per = valid_per()
        rec = {"epoch": epoch, "train_loss": tot["loss"] / max(count, 1), "ctc": tot["ctc"] / max(count, 1),
               "kd": tot["kd"] / max(count, 1), "valid_per": per, "batches": len(batches),
               "seconds": time.perf_counter() - t0}
        history.append(rec)
        if progress:
            tqdm.write(f"{'RSQ' if learn_range else 'QAT'} epoch {epoch}: loss {rec['train_loss']:.3f} "
                       f"(CTC {rec['ctc']:.3f}, KD {rec['kd']:.3f})  valid PER {per:.4f}  ({rec['seconds']:.0f} s)")
        if per < best:
            best, best_epoch = per, epoch
            best_state = {k: v.clone() for k, v in qmodel.state_dict().items()}
            if out is not None:
                _atomic_save({"model": best_state, "epoch": epoch, "valid_per": per}, out / "best.pt")
        if out is not None:
            _atomic_save({"model": qmodel.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                          "history": history, "best_valid_per": best, "best_epoch": best_epoch,
                          "valid_per_before": per0, "quant": qmodel.wispy_quant}, out / "qat_last.pt")
            (out / "history.json").write_text(json.dumps(history, indent=1) + "\n")
    qmodel.load_state_dict(best_state)
    qmodel.eval()
    v_scales = {n: [float(v) for v in m.current_v_scale().detach()] for n, m in quant_layers(qmodel).items()
                if isinstance(m, QuantConv1d) and m.m is not None}
    return {"history": history, "best_valid_per": best, "best_epoch": best_epoch, "valid_per_before": per0,
            "learn_range": learn_range, "kd_weight": kd_weight if teacher is not None else 0.0, "lr": lr,
            "range_lr": range_lr if learn_range else None, "epochs": epochs, "batches_per_epoch": per_epoch,
            "v_scale": v_scales}

"""ADMM training toward a block-sparse model, then hard pruning and masked fine-tuning
(RTMobile trains BSP this way, after Zhang et al.'s ADMM weight pruning, ECCV 2018).

    model = wispy.models.registry.load_checkpoint("wispy/models/data/gru_small.pt")
    info = admm_prune(model, "out/corpus", rate=10, block="cols:4", prune="rows", layers="rnn",
                      admm_epochs=4, finetune_epochs=4, out_dir="out/prune/10x")
    # model is now block-sparse (masks attached), fine-tuned; out/prune/10x/final.pt holds it

The problem: minimise loss(W) subject to W in S (the block-structured set of a rate). ADMM
splits it with a copy Z in S and a scaled dual U, and alternates:

    W  <- a few SGD/Adam steps on  loss(W) + rho/2 ||W - Z + U||^2
    Z  <- projection of (W + U) onto S          (every `update_every` batches)
    U  <- U + W - Z

The penalty pulls W toward a block-sparse Z gradually, so the weights that will be cut
shrink while the others adapt. rho grows geometrically from `rho[0]` to `rho[1]` over the
Z updates (the authors' code multiplies it by 10 per round of epochs; this is the same
schedule made smooth); U is rescaled by old/new rho when rho changes, as scaled ADMM
requires. After ADMM, W is projected onto S for good (`prune_block_sparse`: masks attached),
then fine-tuned with the masks held (gradients of pruned weights zeroed before each step,
the weights re-zeroed after it), with a cosine learning rate.

Measured on the shipped gru-small (GRU 2x128), 10x straight from dense, `cols:4` rows,
3 ADMM + 3 fine-tuning epochs (valid PER after each fine-tuning epoch; test PER at the end):

    ADMM rho 1e-3 -> 1e-1, Z every 50 batches        33.5 / 30.9 / 30.0%   test 27.3%
      the same, first-layer input matrix pruned 3x less hard (sweep default)
                                                      32.3 / 29.9 / 29.0%   test 25.8%
      rho 3e-4 -> 3e-2 (softer), same allocation      32.4 after the first epoch
    ADMM rho 1e-2 -> 1, Z every 125 (harder)          49.6 / 46.0 / 43.4%   test 40.0%
    one-shot magnitude, then 6 fine-tuning epochs     99.2 / 68.4 after two (the all-blank plateau)

ADMM earns its keep (one-shot pruning of a small GRU falls to CTC's all-blank plateau), but a
rho so strong that W reaches the set during ADMM (|W - proj(W)|/|W| 0.02 against 0.24 for the
default) costs the accuracy the network had; the softer defaults leave the hard prune to
remove the rest. (The dense model: test PER 15.6%.)

Data, CTC loss, batching, validation decoding and checkpoint writing are wispy.training's
(`_load`, `_collate`, `_batches`, `_decode_batched`, ...). Every epoch writes a checkpoint;
an interrupted run resumes from it at the next epoch with the same batch order.
Masks already attached to the model (an earlier, gentler pruning: the sweep prunes 4x, then
10x from the 4x model, ...) stay in force throughout.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
import torch
from torch import nn

from wispy.compress.block_sparse import (
    BlockSpec,
    rate_for,
    apply_masks,
    attach_masks,
    block_sparse_mask,
    mask_gradients,
    prunable_matrices,
    prune_block_sparse,
    save_pruned,
)

# ---------------------------------------------------------------------------------------------
# ADMM state


class ADMM:
    """Z (block-sparse copies), U (scaled duals) and rho for the selected matrices of a model."""

    def __init__(self, model: nn.Module, rate: Union[float, dict], block: Union[str, BlockSpec] = "cols:4",
                 prune: str = "rows", uniform: bool = True, layers: Union[str, list, None] = "all",
                 rho: float = 1e-3):
        self.model = model
        self.block = BlockSpec.parse(block)
        self.prune, self.uniform, self.rho = prune, bool(uniform), float(rho)
        self.rates = {n: rate_for(n, rate) for n in prunable_matrices(model, layers)}
        self.rates = {n: r for n, r in self.rates.items() if r > 1.0}
        if not self.rates:
            raise ValueError("ADMM: no matrix selected with a rate above 1")
        self.params = {n: p for n, p in model.named_parameters() if n in self.rates}
        self.Z, self.U = {}, {}
        with torch.no_grad():
            for n, p in self.params.items():
                self.U[n] = torch.zeros_like(p)
                self.Z[n] = self._project(n, p.detach().clone())

    def _project(self, name: str, w: torch.Tensor) -> torch.Tensor:
        old = (getattr(self.model, "wispy_masks", None) or {}).get(name)
        if old is not None:
            w = w * old.to(w.dtype)
        m = block_sparse_mask(w, self.rates[name], self.block, self.prune, self.uniform)
        if old is not None:
            m &= old
        return w * m.to(w.dtype)

    @torch.no_grad()
    def add_penalty_grad(self) -> None:
        """Adds d/dW of rho/2 ||W - Z + U||^2 = rho (W - Z + U) to the gradients."""
        for n, p in self.params.items():
            g = self.rho * (p.detach() - self.Z[n] + self.U[n])
            p.grad = g if p.grad is None else p.grad.add_(g)

    @torch.no_grad()
    def penalty(self) -> float:
        return float(sum(0.5 * self.rho * (p - self.Z[n] + self.U[n]).pow(2).sum() for n, p in self.params.items()))

    @torch.no_grad()
    def update(self) -> None:
        """Z <- projection(W + U); U <- U + W - Z."""
        for n, p in self.params.items():
            self.Z[n] = self._project(n, p.detach() + self.U[n])
            self.U[n].add_(p.detach() - self.Z[n])

    def set_rho(self, rho: float) -> None:
        """Changes rho, rescaling the scaled dual U = Y / rho so that Y is unchanged."""
        rho = float(rho)
        for u in self.U.values():
            u.mul_(self.rho / rho)
        self.rho = rho

    @torch.no_grad()
    def residual(self) -> float:
        """||W - Z|| / ||W|| over the selected matrices (0 when W is in the set)."""
        num = sum(float((p - self.Z[n]).pow(2).sum()) for n, p in self.params.items())
        den = sum(float(p.pow(2).sum()) for p in self.params.values())
        return math.sqrt(num / max(den, 1e-30))

    @torch.no_grad()
    def distance_to_set(self) -> float:
        """||W - proj(W)|| / ||W||: how much the hard prune would remove now."""
        num = den = 0.0
        for n, p in self.params.items():
            num += float((p - self._project(n, p.detach().clone())).pow(2).sum())
            den += float(p.pow(2).sum())
        return math.sqrt(num / max(den, 1e-30))

    def state_dict(self) -> dict:
        return {"Z": {n: z.clone() for n, z in self.Z.items()}, "U": {n: u.clone() for n, u in self.U.items()},
                "rho": self.rho, "rates": dict(self.rates), "block": str(self.block), "prune": self.prune,
                "uniform": self.uniform}

    def load_state_dict(self, sd: dict) -> None:
        if sd["rates"] != self.rates or sd["block"] != str(self.block) or sd["prune"] != self.prune:
            raise ValueError("ADMM checkpoint was made with other rates/block/prune settings")
        self.Z = {n: z.clone() for n, z in sd["Z"].items()}
        self.U = {n: u.clone() for n, u in sd["U"].items()}
        self.rho = sd["rho"]


# ---------------------------------------------------------------------------------------------
# Data and one epoch (wispy.training's helpers)


def prepare_data(model: nn.Module, corpus_dir, splits=("train", "valid")):
    from wispy.data.loaders import (
        apply_norm as _apply_norm,
        load_examples as _load,
        norm_stats as _norm_stats,
    )
    from wispy.models.registry import model_config

    cfg = getattr(model, "wispy_config", None)
    if cfg is None:
        cfg = {**model_config(model), "feature": "logmel", "n_mels": 40, "norm": None}
    feature, n_mels = cfg.get("feature", "logmel"), cfg.get("n_mels", 40)
    data = {s: _load(corpus_dir, s, feature, n_mels) for s in splits}
    if cfg.get("norm") is None and "train" in data:
        cfg = {**cfg, "norm": _norm_stats(data["train"])}
    model.wispy_config = cfg
    return {s: [(_apply_norm(x, cfg["norm"]), ids) for x, ids in d] for s, d in data.items()}


def _ensure_config(model: nn.Module) -> dict:
    """The model's wispy_config (set by wispy.training); a default one (log-mel 40, no
    normalisation) for a model built by hand and trained on data given directly."""
    from wispy.models.registry import model_config

    if getattr(model, "wispy_config", None) is None:
        model.wispy_config = {**model_config(model), "feature": "logmel", "n_mels": 40, "norm": None}
    return model.wispy_config


def valid_per(model, valid) -> float:
    from wispy.metrics import error_rate
    from wispy.models.registry import is_channels_first as _channels_first
    from wispy.training.ctc import decode_batched as _decode_batched

    hyps = _decode_batched(model, valid, _channels_first(model.wispy_config))
    model.train()
    return error_rate([ids for _, ids in valid], hyps)


def _run_epoch(model, train, opt, *, seed: int, epoch: int, salt: int, batch_size: int, clip: float,
               before_step: Optional[Callable] = None, after_step: Optional[Callable] = None,
               postfix: Optional[Callable] = None, desc: str = "", progress: bool = True,
               lr_at: Optional[Callable] = None, teacher: Optional[nn.Module] = None,
               kd_weight: float = 0.0) -> float:
    """One pass over `train` (batch order drawn from (seed, salt, epoch)); returns the mean
    loss (CTC, plus kd_weight times the per-frame KL to `teacher`'s outputs when a teacher is
    given). before_step(step) runs after backward and the loss gradient's clipping (ADMM adds
    its penalty gradient there, unclipped), after_step(step) after opt.step(); lr_at(step)
    sets the learning rate before each step."""
    from tqdm import tqdm

    from wispy.data.loaders import length_batches as _batches, collate as _collate
    from wispy.models.registry import (
        is_channels_first as _channels_first,
        forward_frames as _forward,
        output_lengths,
    )

    cf = _channels_first(model.wispy_config)
    model.train()
    batches = _batches([x.shape[0] for x, _ in train], batch_size, np.random.default_rng([seed, salt, epoch]))
    total = count = 0.0
    bar = tqdm(batches, desc=desc, unit="batch", leave=False, disable=not progress)
    for i, b in enumerate(bar):
        if lr_at is not None:
            for g in opt.param_groups:
                g["lr"] = lr_at(i)
        x, xlen, targets, tlen = _collate([train[j] for j in b])
        lp = _forward(model, x, cf)
        olen = output_lengths(model, xlen)
        loss = nn.functional.ctc_loss(lp.transpose(0, 1), targets, olen, tlen, blank=0, zero_infinity=True)
        if teacher is not None and kd_weight > 0:
            from wispy.compress.rsq import teacher_kd

            loss = loss + kd_weight * teacher_kd(lp, teacher, x, cf, olen, tlen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)  # the loss's gradient, as wispy.training clips it
        if before_step is not None:
            before_step(i)
        opt.step()
        if after_step is not None:
            after_step(i)
        total += loss.item() * len(b)
        count += len(b)
        if progress:
            bar.set_postfix(loss=f"{total / count:.3f}", **(postfix() if postfix else {}))
    bar.close()
    return total / max(count, 1)


def _nbatches(train, batch_size) -> int:
    return math.ceil(len(train) / batch_size)


def _check_seed(ck: dict, seed: int, path: Path):
    """A resumed run must draw the batches it drew before: another seed would mix two runs."""
    if ck.get("seed", 0) != seed:  # checkpoints from before the seed was saved were all seed 0
        raise ValueError(f"{path} was written by a run with seed {ck.get('seed', 0)}, not {seed}: give "
                         f"--seed {ck.get('seed', 0)} to resume it, or use another output directory")


def _save(obj, path: Path):
    from wispy.training.ctc import save_checkpoint as _atomic_save

    _atomic_save(obj, path)


# ---------------------------------------------------------------------------------------------
# ADMM phase


def admm_train(model: nn.Module, corpus_dir, *, rate: Union[float, dict], block: Union[str, BlockSpec] = "cols:4",
               prune: str = "rows", uniform: bool = True, layers: Union[str, list, None] = "rnn",
               epochs: int = 4, lr: float = 1e-3, rho: tuple = (1e-3, 1e-1), update_every: int = 50,
               batch_size: int = 16, clip: float = 5.0, seed: int = 0, out_dir=None, resume: bool = True,
               progress: bool = True, data: Optional[dict] = None) -> dict:
    """ADMM epochs on the corpus' train split (`model` is trained in place; nothing is pruned
    yet: call `prune_block_sparse` with the same settings, or use `admm_prune`).

    rho           (first, last): geometric schedule over the Z updates
    update_every  batches between Z/U updates (also at the end of every epoch)
    out_dir       admm_last.pt every epoch (model, optimizer, Z, U, rho, history); resumed
    Returns {"history": [{"epoch", "train_loss", "residual", "distance", "rho", "seconds"}],
    "admm": the ADMM object}."""
    from tqdm import tqdm

    data = data or prepare_data(model, corpus_dir, ("train",))
    _ensure_config(model)
    train = data["train"]
    nb = _nbatches(train, batch_size)
    n_updates = max(1, epochs * math.ceil(nb / update_every))

    def rho_at(k):  # k-th Z update, 0-based
        return rho[0] * (rho[1] / rho[0]) ** (min(k, n_updates - 1) / max(n_updates - 1, 1))

    admm = ADMM(model, rate, block, prune, uniform, layers, rho=rho[0])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    start, history, updates = 0, [], 0
    ck_path = Path(out_dir) / "admm_last.pt" if out_dir else None
    if ck_path is not None:
        ck_path.parent.mkdir(parents=True, exist_ok=True)
        if resume and ck_path.exists():
            ck = torch.load(ck_path, map_location="cpu", weights_only=False)
            _check_seed(ck, seed, ck_path)
            model.load_state_dict(ck["model"])
            if ck.get("masks"):
                attach_masks(model, ck["masks"], ck.get("prune"))
            opt.load_state_dict(ck["optimizer"])
            admm.load_state_dict(ck["admm"])
            start, history, updates = ck["epoch"], ck["history"], ck["updates"]
    for epoch in range(start + 1, epochs + 1):
        t0 = time.perf_counter()

        def after(i):
            nonlocal updates
            apply_masks(model)  # earlier prunings stay in force
            if (i + 1) % update_every == 0 or i + 1 == nb:
                admm.update()
                updates += 1
                admm.set_rho(rho_at(updates))

        def before(i):
            mask_gradients(model)
            admm.add_penalty_grad()

        loss = _run_epoch(model, train, opt, seed=seed, epoch=epoch, salt=1, batch_size=batch_size, clip=clip,
                          before_step=before, after_step=after, desc=f"ADMM {epoch}/{epochs}", progress=progress,
                          postfix=lambda: {"rho": f"{admm.rho:.1e}", "|W-Z|": f"{admm.residual():.3f}"})
        rec = {"epoch": epoch, "train_loss": loss, "residual": admm.residual(), "distance": admm.distance_to_set(),
               "rho": admm.rho, "seconds": time.perf_counter() - t0}
        history.append(rec)
        if progress:
            tqdm.write(f"ADMM epoch {epoch}: loss {loss:.3f}  |W-Z|/|W| {rec['residual']:.4f}  "
                       f"|W-proj(W)|/|W| {rec['distance']:.4f}  rho {admm.rho:.2e}  ({rec['seconds']:.1f} s)")
        if ck_path is not None:
            _save({"model": model.state_dict(), "config": model.wispy_config, "optimizer": opt.state_dict(),
                   "admm": admm.state_dict(), "epoch": epoch, "updates": updates, "history": history,
                   "seed": seed,
                   "masks": getattr(model, "wispy_masks", None) or {}, "prune": getattr(model, "wispy_prune", None)},
                  ck_path)
    model.eval()
    return {"history": history, "admm": admm}


# ---------------------------------------------------------------------------------------------
# Masked fine-tuning


def _check_teacher(model: nn.Module, teacher: nn.Module) -> None:
    """The teacher sees the student's (normalized) inputs and its outputs are compared frame by
    frame, so features, normalization and output classes must agree."""
    from wispy.errors import ModelLoadError

    s, t = getattr(model, "wispy_config", None) or {}, getattr(teacher, "wispy_config", None) or {}
    s = {**s, "n_classes": (s.get("kwargs") or {}).get("n_classes")}
    t = {**t, "n_classes": (t.get("kwargs") or {}).get("n_classes")}
    for key in ("feature", "n_mels", "units", "phones", "n_classes", "norm"):
        if key in s and key in t and _differs(s[key], t[key]):
            raise ModelLoadError(f"the distillation teacher's {key!r} differs from the student's "
                                 f"({t[key]!r} against {s[key]!r}): distil from the dense model the "
                                 "pruned one was made from")


def _differs(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() != b.keys() or any(_differs(a[k], b[k]) for k in a)
    try:
        return not np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
    except (TypeError, ValueError):
        return a != b


def finetune_masked(model: nn.Module, corpus_dir, *, epochs: int = 4, lr: float = 1e-3, lr_final: float = 5e-5,
                    batch_size: int = 16, clip: float = 5.0, seed: int = 0, out_dir=None, resume: bool = True,
                    progress: bool = True, data: Optional[dict] = None, keep_best: bool = True,
                    teacher: Optional[nn.Module] = None, kd_weight: float = 1.0) -> dict:
    """Trains with the attached masks held (pruned weights stay exactly zero; without masks it is
    plain fine-tuning, the dense control of a sweep), the learning rate
    following a cosine from `lr` to `lr_final` over all the batches; validates every epoch.
    out_dir: ft_last.pt (resumable) and best.pt (best valid PER, masks included).
    keep_best: leave the model with the best epoch's weights (else the last epoch's).
    teacher: distil from this model (usually the dense one the pruned model came from): the
    per-frame KL to its outputs, weighted by kd_weight, is added to the CTC loss. Its inputs
    are normalized as the student's, so it must share the student's feature config.
    Returns {"history": [{"epoch", "train_loss", "valid_per", "seconds"}], "best_valid_per",
    "best_epoch"}."""
    from tqdm import tqdm

    data = data or prepare_data(model, corpus_dir)
    _ensure_config(model)
    train, valid = data["train"], data["valid"]
    nb = _nbatches(train, batch_size)
    total_steps = max(1, epochs * nb)
    if teacher is not None:
        _check_teacher(model, teacher)
        teacher.eval()  # its outputs are computed without grad (teacher_kd)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    start, history, best, best_epoch, best_state = 0, [], math.inf, 0, None
    out = Path(out_dir) if out_dir else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        last = out / "ft_last.pt"
        if resume and last.exists():
            ck = torch.load(last, map_location="cpu", weights_only=False)
            _check_seed(ck, seed, last)
            model.load_state_dict(ck["model"])
            if ck["masks"]:
                attach_masks(model, ck["masks"], ck["prune"])
            opt.load_state_dict(ck["optimizer"])
            start, history, best, best_epoch = ck["epoch"], ck["history"], ck["best_valid_per"], ck["best_epoch"]
            if (out / "best.pt").exists():
                best_state = torch.load(out / "best.pt", map_location="cpu", weights_only=False)["model"]
    apply_masks(model)
    if start == 0:
        per0 = valid_per(model, valid)  # the hard-pruned model before fine-tuning
        history.append({"epoch": 0, "train_loss": None, "valid_per": per0, "seconds": 0.0})
        if progress:
            tqdm.write(f"pruned, before fine-tuning: valid PER {per0:.4f}")
    for epoch in range(start + 1, epochs + 1):
        t0 = time.perf_counter()
        base = (epoch - 1) * nb

        def lr_at(i, base=base):
            s = (base + i) / total_steps
            return lr_final + 0.5 * (lr - lr_final) * (1 + math.cos(math.pi * s))

        loss = _run_epoch(model, train, opt, seed=seed, epoch=epoch, salt=2, batch_size=batch_size, clip=clip,
                          before_step=lambda i: mask_gradients(model), after_step=lambda i: apply_masks(model),
                          lr_at=lr_at, desc=f"fine-tune {epoch}/{epochs}", progress=progress,
                          teacher=teacher, kd_weight=kd_weight)
        per = valid_per(model, valid)
        rec = {"epoch": epoch, "train_loss": loss, "valid_per": per, "seconds": time.perf_counter() - t0}
        history.append(rec)
        if progress:
            tqdm.write(f"fine-tune epoch {epoch}: loss {loss:.3f}  valid PER {per:.4f}  ({rec['seconds']:.1f} s)")
        if per < best:
            best, best_epoch = per, epoch
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
            if out is not None:
                save_pruned(model, out / "best.pt", epoch=epoch, valid_per=per)
        if out is not None:
            _save({"model": model.state_dict(), "config": model.wispy_config, "optimizer": opt.state_dict(),
                   "masks": getattr(model, "wispy_masks", None) or {},
                   "prune": getattr(model, "wispy_prune", None) or {}, "epoch": epoch, "history": history,
                   "best_valid_per": best, "best_epoch": best_epoch, "seed": seed}, out / "ft_last.pt")
            (out / "history.json").write_text(json.dumps(history, indent=1) + "\n")
    if keep_best and best_state is not None:
        model.load_state_dict(best_state)
        apply_masks(model)
    model.eval()
    return {"history": history, "best_valid_per": best, "best_epoch": best_epoch}


# ---------------------------------------------------------------------------------------------
# The whole recipe


def admm_prune(model: nn.Module, corpus_dir, *, rate: Union[float, dict], block: Union[str, BlockSpec] = "cols:4",
               prune: str = "rows", uniform: bool = True, layers: Union[str, list, None] = "rnn",
               admm_epochs: int = 4, finetune_epochs: int = 4, lr: float = 1e-3, finetune_lr: float = 1e-3,
               lr_final: float = 5e-5, rho: tuple = (1e-3, 1e-1), update_every: int = 50,
               batch_size: int = 16, seed: int = 0, out_dir=None, resume: bool = True,
               progress: bool = True, data: Optional[dict] = None) -> dict:
    """ADMM (`admm_epochs`), hard prune onto the block-structured set, masked fine-tuning
    (`finetune_epochs`). `model` ends pruned (masks attached) with the best fine-tuning epoch's
    weights. out_dir: admm_last.pt, pruned.pt (right after the hard prune), ft_last.pt,
    best.pt, final.pt (the result: a pruned checkpoint for `load_pruned`) and info.json; a
    finished out_dir is loaded instead of re-run. admm_epochs=0 is one-shot magnitude pruning
    followed by fine-tuning (`magnitude_prune`)."""
    from wispy.compress.block_sparse import compression_report, load_pruned

    out = Path(out_dir) if out_dir else None
    if out is not None and resume and (out / "final.pt").exists() and (out / "info.json").exists():
        done = load_pruned(out / "final.pt")
        model.load_state_dict(done.state_dict())
        attach_masks(model, done.wispy_masks, done.wispy_prune)
        model.wispy_config = done.wispy_config
        model.eval()
        return json.loads((out / "info.json").read_text())
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    data = data or prepare_data(model, corpus_dir)
    t0 = time.perf_counter()
    admm_hist = []
    if admm_epochs > 0:
        r = admm_train(model, corpus_dir, rate=rate, block=block, prune=prune, uniform=uniform, layers=layers,
                       epochs=admm_epochs, lr=lr, rho=rho, update_every=update_every, batch_size=batch_size,
                       seed=seed, out_dir=out, resume=resume, progress=progress, data=data)
        admm_hist = r["history"]
    pruned_path = out / "pruned.pt" if out is not None else None
    if pruned_path is not None and resume and pruned_path.exists():
        ck = torch.load(pruned_path, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["model"])
        attach_masks(model, ck["masks"], ck["prune"])
    else:
        prune_block_sparse(model, rate=rate, block=block, prune=prune, layers=layers, uniform=uniform)
        if pruned_path is not None:
            save_pruned(model, pruned_path)
    ft = finetune_masked(model, corpus_dir, epochs=finetune_epochs, lr=finetune_lr, lr_final=lr_final,
                         batch_size=batch_size, seed=seed, out_dir=out, resume=resume, progress=progress, data=data)
    rep = compression_report(model)
    info = {"rate": rate if not isinstance(rate, dict) else dict(rate), "block": str(BlockSpec.parse(block)),
            "prune": prune, "uniform": uniform, "admm_epochs": admm_epochs, "finetune_epochs": finetune_epochs,
            "rho": list(rho), "update_every": update_every, "admm_history": admm_hist, "finetune": ft,
            "compression": {k: rep[k] for k in ("pruned", "overall")},
            "matrices": [{k: m[k] for k in ("name", "shape", "total", "kept", "rate")} for m in rep["matrices"]],
            "seconds": time.perf_counter() - t0}
    if out is not None:
        save_pruned(model, out / "final.pt", valid_per=ft["best_valid_per"])
        (out / "info.json").write_text(json.dumps(info, indent=1, default=float) + "\n")
    return info


def magnitude_prune(model: nn.Module, corpus_dir, *, rate, block="cols:4", prune="rows", uniform=True,
                    layers="rnn", finetune_epochs: int = 4, **kw) -> dict:
    """The quick start: one-shot block-sparse pruning by L2 norm, then masked fine-tuning."""
    return admm_prune(model, corpus_dir, rate=rate, block=block, prune=prune, uniform=uniform, layers=layers,
                      admm_epochs=0, finetune_epochs=finetune_epochs, **kw)

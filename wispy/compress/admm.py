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

ADMM earns its keep (one-shot pruning of a small GRU falls to CTC's all-blank plateau), but a
rho so strong that W reaches the set during ADMM costs the accuracy the network had; the
softer defaults leave the hard prune to remove the rest
(docs/design/block-sparse.md#admms-defaults).

The epochs are wispy.training's `run_epoch` (data, batch order, CTC loss, clipping), with
ADMM's penalty gradient and the masks as its hooks. Every epoch writes a checkpoint;
an interrupted run resumes from it at the next epoch with the same batch order.
Masks already attached to the model (an earlier, gentler pruning: the sweep prunes 4x, then
10x from the 4x model, ...) stay in force throughout.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

from wispy.compress.block_sparse import (
    BlockSpec,
    apply_masks,
    attach_masks,
    block_sparse_mask,
    mask_gradients,
    prunable_matrices,
    prune_block_sparse,
    rate_for,
    save_pruned,
)
from wispy.training.checkpoints import load_file, resume_from, save_checkpoint, write_history
from wispy.training.data import ensure_config, prepare_data  # noqa: F401  (prepare_data: also from here)
from wispy.training.distill import check_teacher, kd_term
from wispy.training.loop import EpochHooks, n_batches, run_epoch
from wispy.training.validate import valid_per  # noqa: F401  (also importable from here)

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
    ensure_config(model)
    train = data["train"]
    n_updates = max(1, epochs * math.ceil(n_batches(train, batch_size) / update_every))

    def rho_at(k):  # k-th Z update, 0-based
        return rho[0] * (rho[1] / rho[0]) ** (min(k, n_updates - 1) / max(n_updates - 1, 1))

    admm = ADMM(model, rate, block, prune, uniform, layers, rho=rho[0])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    start, history, updates = 0, [], 0
    ck_path = Path(out_dir) / "admm_last.pt" if out_dir else None
    if ck_path is not None:
        ck_path.parent.mkdir(parents=True, exist_ok=True)
    ck = resume_from(ck_path, resume, seed)
    if ck is not None:
        model.load_state_dict(ck["model"])
        if ck.get("masks"):
            attach_masks(model, ck["masks"], ck.get("prune"))
        opt.load_state_dict(ck["optimizer"])
        admm.load_state_dict(ck["admm"])
        start, history, updates = ck["epoch"], ck["history"], ck["updates"]

    def z_update():  # Z <- proj(W + U), U <- U + W - Z, and the next rho
        nonlocal updates
        admm.update()
        updates += 1
        admm.set_rho(rho_at(updates))

    def after_step(i):
        apply_masks(model)  # earlier prunings stay in force
        if (i + 1) % update_every == 0:
            z_update()

    def before_step(i):
        mask_gradients(model)
        admm.add_penalty_grad()  # after the loss gradient's clipping: the penalty's is not clipped

    def after_epoch(epoch, stats):  # an epoch ends with a Z update
        if stats["batches"] % update_every:
            z_update()

    hooks = EpochHooks(before_step=before_step, after_step=after_step, after_epoch=after_epoch,
                       postfix=lambda: {"rho": f"{admm.rho:.1e}", "|W-Z|": f"{admm.residual():.3f}"})
    for epoch in range(start + 1, epochs + 1):
        t0 = time.perf_counter()
        loss = run_epoch(model, train, opt, seed=seed, epoch=epoch, salt=1, batch_size=batch_size, clip=clip,
                         hooks=hooks, desc=f"ADMM {epoch}/{epochs}", progress=progress)["loss"]
        rec = {"epoch": epoch, "train_loss": loss, "residual": admm.residual(), "distance": admm.distance_to_set(),
               "rho": admm.rho, "seconds": time.perf_counter() - t0}
        history.append(rec)
        if progress:
            tqdm.write(f"ADMM epoch {epoch}: loss {loss:.3f}  |W-Z|/|W| {rec['residual']:.4f}  "
                       f"|W-proj(W)|/|W| {rec['distance']:.4f}  rho {admm.rho:.2e}  ({rec['seconds']:.1f} s)")
        if ck_path is not None:
            save_checkpoint({"model": model.state_dict(), "config": model.wispy_config, "optimizer": opt.state_dict(),
                             "admm": admm.state_dict(), "epoch": epoch, "updates": updates, "history": history,
                             "seed": seed, "masks": getattr(model, "wispy_masks", None) or {},
                             "prune": getattr(model, "wispy_prune", None)}, ck_path)
    model.eval()
    return {"history": history, "admm": admm}


# ---------------------------------------------------------------------------------------------
# Masked fine-tuning


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
    ensure_config(model)
    train, valid = data["train"], data["valid"]
    nb = n_batches(train, batch_size)
    total_steps = max(1, epochs * nb)
    terms = {}
    if teacher is not None:
        check_teacher(model, teacher)
        teacher.eval()  # its outputs are computed without grad (teacher_kd)
        if kd_weight > 0:
            terms["kd"] = (kd_weight, kd_term(teacher))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    out = Path(out_dir) if out_dir else None
    start, history, best, best_epoch, best_state = _resume_finetune(out, resume, seed, model, opt)
    apply_masks(model)
    if start == 0:
        per0 = valid_per(model, valid)  # the hard-pruned model before fine-tuning
        history.append({"epoch": 0, "train_loss": None, "valid_per": per0, "seconds": 0.0})
        if progress:
            tqdm.write(f"pruned, before fine-tuning: valid PER {per0:.4f}")
    for epoch in range(start + 1, epochs + 1):
        t0 = time.perf_counter()
        base = (epoch - 1) * nb

        def set_lr(i, base=base):  # cosine from lr to lr_final over all the steps
            s = (base + i) / total_steps
            for g in opt.param_groups:
                g["lr"] = lr_final + 0.5 * (lr - lr_final) * (1 + math.cos(math.pi * s))

        hooks = EpochHooks(before_batch=set_lr, loss_terms=terms, before_step=lambda i: mask_gradients(model),
                           after_step=lambda i: apply_masks(model))
        loss = run_epoch(model, train, opt, seed=seed, epoch=epoch, salt=2, batch_size=batch_size, clip=clip,
                         hooks=hooks, desc=f"fine-tune {epoch}/{epochs}", progress=progress)["loss"]
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
            save_checkpoint({"model": model.state_dict(), "config": model.wispy_config, "optimizer": opt.state_dict(),
                             "masks": getattr(model, "wispy_masks", None) or {},
                             "prune": getattr(model, "wispy_prune", None) or {}, "epoch": epoch, "history": history,
                             "best_valid_per": best, "best_epoch": best_epoch, "seed": seed}, out / "ft_last.pt")
            write_history(out, history)
    if keep_best and best_state is not None:
        model.load_state_dict(best_state)
        apply_masks(model)
    model.eval()
    return {"history": history, "best_valid_per": best, "best_epoch": best_epoch}


def _resume_finetune(out: Optional[Path], resume: bool, seed: int, model: nn.Module, opt):
    """(start epoch, history, best valid PER, best epoch, best weights): from out/ft_last.pt
    (model, masks and optimizer loaded) and out/best.pt, or a fresh start."""
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    ck = resume_from(out / "ft_last.pt" if out is not None else None, resume, seed)
    if ck is None:
        return 0, [], math.inf, 0, None
    model.load_state_dict(ck["model"])
    if ck["masks"]:
        attach_masks(model, ck["masks"], ck["prune"])
    opt.load_state_dict(ck["optimizer"])
    best_state = load_file(out / "best.pt")["model"] if (out / "best.pt").exists() else None
    return ck["epoch"], ck["history"], ck["best_valid_per"], ck["best_epoch"], best_state


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
        ck = load_file(pruned_path)
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

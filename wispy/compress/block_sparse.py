"""Block-based structured pruning (BSP, RTMobile: Dong et al., DAC 2020) of weight matrices.

A weight matrix is cut into blocks (`BlockSpec`: column strips, row strips or r x c tiles).
Inside each block whole rows and/or whole columns are removed, so what survives in every block
is a smaller dense sub-matrix: the rows (and columns) it keeps, crossed. RTMobile's own pattern
is `BlockSpec.parse("cols:4")` with `prune="rows"`: four column strips, whole rows of each strip
removed, each strip keeping its own set of rows.

    model = wispy.models.registry.load_checkpoint("wispy/models/data/gru_small.pt")
    prune_block_sparse(model, rate=10, block="cols:4", prune="rows", layers="rnn")
    print(compression_report(model)["pruned"])        # {"total": 162816, "kept": 16256, "rate": 10.02}
    ...                                               # train; after every optimizer step:
    apply_masks(model)
    save_pruned(model, "pruned.pt"); model = load_pruned("pruned.pt")

Which matrices. `layers` picks them by parameter name: "rnn" (every nn.GRU/nn.LSTM/nn.RNN
`weight_ih_l{k}` [G*H, in] and `weight_hh_l{k}` [G*H, H], the gates stacked in rows, pruned
as the matrices they are), "linear", "conv" (an nn.Conv1d weight [out, in, k] as its
[out, in*k] matrix: column index i*k + tap), "all", or a list of parameter names or fnmatch
patterns ("rnn.weight_hh_*").

Masks. `prune_block_sparse` zeroes the pruned weights in the parameters themselves (what the
compiler reads) and attaches the masks as a dict attribute, `model.wispy_masks`
{parameter name: bool tensor of the parameter's shape}, with `model.wispy_prune` describing
how they were made. They are deliberately not registered buffers: the model's `state_dict()`
stays the unpruned architecture's, so `wispy.models.registry.load_checkpoint`, a strict
`load_state_dict` into a fresh model and `torch.export` (no extra constants in the compiled
program) all work on pruned models unchanged. The masks are saved with the checkpoint beside
the state dict (`save_pruned` writes {"model", "config", "masks", "prune", ...}; the ADMM and
fine-tuning loops write the same) and `load_pruned` attaches them again. A checkpoint that lost
them (a bare state dict) gets them back from its zeros with `masks_from_weights`.

Rates. `rate` is total weights / surviving weights of a matrix (10 keeps a tenth), one number
for every selected matrix or a dict {name or pattern: rate} (per-layer rates). Structure makes
the kept count move in steps (a whole row of a block at a time); the projection keeps the count
closest to total/rate on a log scale (so the achieved rate is the one closest to the request),
and `compression_report` gives the exact achieved rates. `uniform=True` keeps the same number
of rows (columns) in every block: regular work for the hardware; it keeps at least one row
(column) per block, which caps the rate (RTMobile's 4 column strips of a 384-row matrix,
pruning rows: 384x at most). `uniform=False` chooses the units of highest energy per weight
over the whole matrix, so blocks keep different counts and may be emptied altogether.

Layout: the blocks and one matrix's mask (`BlockSpec`, `block_sparse_mask`, `project_block_sparse`,
`block_structure`) are `wispy.compress.block_masks`'s, re-exported here; this module selects a
model's matrices, attaches, applies and reports the masks, and saves and loads pruned models.
"""
from __future__ import annotations

import copy
import fnmatch
import math
import re
from typing import Optional, Union

import numpy as np
import torch
from torch import nn

from wispy.compress.block_masks import (  # noqa: F401  (re-exported: the public names of block-sparse pruning)
    PRUNE_MODES,
    BlockSpec,
    block_sparse_mask,
    block_structure,
    project_block_sparse,
)
from wispy.models.loading import load_torch_file


# ---------------------------------------------------------------------------------------------
# Selecting the matrices of a model


def _rnn_matrix(name: str, module: nn.Module) -> bool:
    return isinstance(module, nn.RNNBase) and re.fullmatch(r"weight_(ih|hh)_l\d+(_reverse)?", name) is not None


def prunable_matrices(model: nn.Module, layers: Union[str, list, tuple, None] = "all") -> list[str]:
    """Names of the parameters `layers` selects (see the module docstring), in model order."""
    found = []  # (name, kind)
    for mname, mod in model.named_modules():
        for pname, _ in mod.named_parameters(recurse=False):
            full = f"{mname}.{pname}" if mname else pname
            if _rnn_matrix(pname, mod):
                found.append((full, "rnn"))
            elif isinstance(mod, nn.Linear) and pname == "weight":
                found.append((full, "linear"))
            elif isinstance(mod, nn.Conv1d) and pname == "weight":
                found.append((full, "conv"))
    if layers is None:
        layers = "all"
    if isinstance(layers, str) and layers in ("all", "rnn", "linear", "conv"):
        return [n for n, k in found if layers == "all" or k == layers]
    pats = [layers] if isinstance(layers, str) else list(layers)
    names = dict(model.named_parameters())
    out = []
    for pat in pats:
        if pat in ("rnn", "linear", "conv"):
            hits = [n for n, k in found if k == pat]
        else:
            hits = [n for n in names if fnmatch.fnmatchcase(n, pat)]
        if not hits:
            raise ValueError(f"layers: {pat!r} matches no parameter (matrices: {', '.join(n for n, _ in found)})")
        for n in hits:
            if names[n].dim() < 2:
                raise ValueError(f"layers: {n} is not a matrix ({tuple(names[n].shape)})")
            if n not in out:
                out.append(n)
    return out


def rate_for(name: str, rate) -> float:
    if isinstance(rate, dict):
        if name in rate:
            return float(rate[name])
        for pat, r in rate.items():
            if fnmatch.fnmatchcase(name, pat):
                return float(r)
        return 1.0
    return float(rate)


# ---------------------------------------------------------------------------------------------
# Pruning a model, masks


def prune_block_sparse(model: nn.Module, rate: Union[float, dict] = 10.0, block: Union[str, BlockSpec] = "cols:4",
                       prune: str = "rows", layers: Union[str, list, None] = "all", uniform: bool = True,
                       inplace: bool = True) -> nn.Module:
    """One-shot block-based structured pruning by magnitude (or ADMM's final hard prune).

    rate     total / kept weights of each selected matrix: one number, or {name or fnmatch
             pattern: rate} (names it does not match stay dense)
    block    a BlockSpec or its text: "cols:4" (RTMobile's), "rows:3", "tiles:64x32", "grid:2x4"
    prune    "rows", "cols" or "both": what is removed inside each block
    layers   "all", "rnn", "linear", "conv", or parameter names / fnmatch patterns
    uniform  the same number of surviving rows (columns) in every block
    inplace  prune `model` itself (default) or a deep copy

    Zeroes the pruned weights and sets `model.wispy_masks` {name: bool mask} and
    `model.wispy_prune` {"block", "prune", "uniform", "rates"}. Masks already attached (a
    previous, gentler pruning) are respected: the new mask is chosen among the survivors' weights
    and intersected with the old one. Returns the pruned model."""
    if prune not in PRUNE_MODES:
        raise ValueError(f"prune must be one of {PRUNE_MODES}, not {prune!r}")
    spec = BlockSpec.parse(block)
    if not inplace:
        model = copy.deepcopy(model)
    names = prunable_matrices(model, layers)
    params = dict(model.named_parameters())
    old = getattr(model, "wispy_masks", None) or {}
    masks, rates = dict(old), {}
    with torch.no_grad():
        for n in names:
            r = rate_for(n, rate)
            if r <= 1.0:
                continue
            p = params[n]
            w = p * old[n].to(p.dtype) if n in old else p
            m = block_sparse_mask(w, r, spec, prune, uniform)
            if n in old:
                m &= old[n].to(m.device)
            masks[n] = m
            rates[n] = r
            p.mul_(m.to(p.dtype))
    prev = getattr(model, "wispy_prune", None) or {}
    model.wispy_masks = masks
    model.wispy_prune = {"block": str(spec), "prune": prune, "uniform": bool(uniform),
                         "rates": {**prev.get("rates", {}), **rates}}
    return model


def attach_masks(model: nn.Module, masks: dict, info: Optional[dict] = None, apply: bool = True) -> nn.Module:
    """Attaches `masks` {name: bool tensor} (e.g. from a checkpoint) and zeroes what they prune."""
    params = dict(model.named_parameters())
    out = {}
    for n, m in masks.items():
        if n not in params:
            raise KeyError(f"mask for {n!r}, which the model does not have")
        if tuple(m.shape) != tuple(params[n].shape):
            raise ValueError(f"mask for {n} is {tuple(m.shape)}, the weight {tuple(params[n].shape)}")
        out[n] = m.to(torch.bool).to(params[n].device)
    model.wispy_masks = out
    model.wispy_prune = dict(info or getattr(model, "wispy_prune", None) or {})
    if apply:
        apply_masks(model)
    return model


def masks_from_weights(model: nn.Module, layers: Union[str, list, None] = "all", attach: bool = True) -> dict:
    """Masks read back from the zeros of the selected matrices (for a pruned state dict saved
    without its masks). Matrices without zeros get no mask."""
    params = dict(model.named_parameters())
    masks = {n: params[n].detach() != 0 for n in prunable_matrices(model, layers)
             if bool((params[n].detach() == 0).any())}
    if attach:
        model.wispy_masks = masks
        model.wispy_prune = getattr(model, "wispy_prune", None) or {"rates": {}}
    return masks


@torch.no_grad()
def apply_masks(model: nn.Module) -> None:
    """Zeroes the pruned weights again (call after every optimizer step when fine-tuning)."""
    params = dict(model.named_parameters())
    for n, m in (getattr(model, "wispy_masks", None) or {}).items():
        params[n].mul_(m.to(params[n].dtype))


@torch.no_grad()
def mask_gradients(model: nn.Module) -> None:
    """Zeroes the gradients of the pruned weights (call between backward and the step, so that
    the optimizer's moments stay zero there too)."""
    params = dict(model.named_parameters())
    for n, m in (getattr(model, "wispy_masks", None) or {}).items():
        g = params[n].grad
        if g is not None:
            g.mul_(m.to(g.dtype))


# ---------------------------------------------------------------------------------------------
# Accounting


def compression_report(model: nn.Module, with_blocks: bool = False) -> dict:
    """Compression-rate accounting from the attached masks (or, without masks, nothing pruned).

    {"matrices": [{"name", "shape", "total", "kept", "rate", "target_rate"[, "blocks"]}],
     "pruned":  {"total", "kept", "rate"}   over the pruned matrices,
     "overall": {"total", "kept", "rate"}   over every parameter (biases, unpruned layers too)}
    A rate is total / kept weights."""
    masks = getattr(model, "wispy_masks", None) or {}
    info = getattr(model, "wispy_prune", None) or {}
    params = dict(model.named_parameters())
    mats, tot, kept = [], 0, 0
    for n, m in masks.items():
        t, k = int(m.numel()), int(m.sum())
        row = {"name": n, "shape": list(params[n].shape), "total": t, "kept": k,
               "rate": t / k if k else math.inf, "target_rate": info.get("rates", {}).get(n)}
        if with_blocks and info.get("block"):
            row["blocks"] = block_structure(params[n], info["block"], m)
        mats.append(row)
        tot, kept = tot + t, kept + k
    all_total = sum(p.numel() for p in params.values())
    all_kept = all_total - (tot - kept)

    def _r(t, k):
        return t / k if k else math.inf

    return {"matrices": mats, "pruned": {"total": tot, "kept": kept, "rate": _r(tot, kept) if tot else 1.0},
            "overall": {"total": all_total, "kept": all_kept, "rate": _r(all_total, all_kept)}}


def rates_for_target(model: nn.Module, target: float, layers: Union[str, list, None] = "all",
                     sensitivity: Optional[dict] = None, block: Union[str, BlockSpec, None] = None,
                     prune: str = "rows", uniform: bool = True, tol: float = 0.02) -> dict:
    """Per-layer rates whose kept weights add up to total/target over the selected matrices.

    `sensitivity` {name or pattern: s} makes a matrix keep s times the fraction of the others
    (s=2: pruned half as hard), capped at keeping everything; default: the same rate everywhere.
    With `block` (and `prune`, `uniform` as `prune_block_sparse` will get them) the rates are
    chosen so that the counts the block structure can actually keep (whole rows of a block at a
    time, at least one per block when uniform) come close to the target: when the common scale
    misses it by more than `tol` (log ratio; e.g. every 384-row matrix at its floor of one row
    per strip), single matrices, the most sensitive first, keep more until the total is as close
    as the structure allows. Masks already attached stay in force, as in `prune_block_sparse`."""
    names = prunable_matrices(model, layers)
    params = dict(model.named_parameters())
    sizes = np.array([params[n].numel() for n in names], dtype=np.float64)
    s = np.array([rate_for(n, sensitivity) if sensitivity else 1.0 for n in names], dtype=np.float64)
    goal = sizes.sum() / float(target)

    def rates_at(a):
        return {n: float(1.0 / k) for n, k in zip(names, np.minimum(1.0, a * s), strict=True)}

    def solve(kept_at):  # the scale a whose kept total is closest to goal (kept_at non-decreasing in a)
        lo, hi = 1e-12, 1.0 / max(s.min(), 1e-9)
        if kept_at(hi) <= goal:
            return hi
        for _ in range(60):
            mid = math.sqrt(lo * hi)
            if kept_at(mid) <= goal:
                lo = mid
            else:
                hi = mid
        klo, khi = kept_at(lo), kept_at(hi)
        if klo <= 0:
            return hi
        return lo if abs(math.log(klo / goal)) <= abs(math.log(khi / goal)) else hi

    a = solve(lambda a: float((np.minimum(1.0, a * s) * sizes).sum()))
    if block is None:
        return rates_at(a)
    spec = BlockSpec.parse(block)
    old = getattr(model, "wispy_masks", None) or {}
    cache: dict = {}

    def kept_of(n, r):
        if r <= 1.0:
            return float(old[n].sum()) if n in old else float(params[n].numel())
        key = (n, float(r))  # exact: a rate on a step's edge must count as prune_block_sparse will
        if key not in cache:
            w = params[n].detach()
            if n in old:
                w = w * old[n].to(w.dtype)
            m = block_sparse_mask(w, r, spec, prune, uniform)
            if n in old:
                m &= old[n]
            cache[key] = float(m.sum())
        return cache[key]

    def total(rates):
        return sum(kept_of(n, r) for n, r in rates.items())

    def err(k):
        return abs(math.log(max(k, 1e-9) / goal))

    rates = rates_at(a)  # the proportional rates usually land within tol already
    if err(total(rates)) <= tol:
        return rates
    rates = rates_at(solve(lambda a: total(rates_at(a))))
    if err(total(rates)) <= tol:
        return rates
    # the common scale moves every matrix a whole step at once (e.g. three 384-row matrices
    # from one row per strip to two); top up one matrix at a time, the most sensitive first,
    # from the largest scale that stays under the goal
    lo, hi = 1e-12, 1.0 / max(s.min(), 1e-9)
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if total(rates_at(mid)) <= goal else (lo, mid)
    rates = rates_at(lo)
    for i in np.argsort(-s, kind="stable"):
        n = names[i]
        rest = total(rates) - kept_of(n, rates[n])
        if rest + kept_of(n, rates[n]) >= goal:
            break
        r_lo, r_hi = 1.0, rates[n]  # kept_of(n, r) falls as r grows
        for _ in range(60):
            mid = math.sqrt(r_lo * r_hi)
            r_lo, r_hi = (mid, r_hi) if rest + kept_of(n, mid) > goal else (r_lo, mid)
        best = min((r_hi, r_lo), key=lambda r: err(rest + kept_of(n, r)))
        if err(rest + kept_of(n, best)) < err(total(rates)):
            rates[n] = float(best)
    return rates


# ---------------------------------------------------------------------------------------------
# Saving


def save_pruned(model: nn.Module, path, **extra) -> None:
    """Writes {"model": state_dict, "config": model.wispy_config, "masks", "prune", **extra}:
    loadable by `load_pruned` (masks attached) and by `wispy.models.registry.load_checkpoint` (weights
    with their zeros, no masks)."""
    from pathlib import Path

    from wispy.training.checkpoints import save_checkpoint

    path = Path(path)
    obj = {"model": model.state_dict(), "config": getattr(model, "wispy_config", None),
           "masks": {n: m.cpu() for n, m in (getattr(model, "wispy_masks", None) or {}).items()},
           "prune": getattr(model, "wispy_prune", None) or {}, **extra}
    save_checkpoint(obj, path)


def load_pruned(path) -> nn.Module:
    """Rebuilds a pruned checkpoint's model (wispy.models.registry.load_checkpoint) with its masks
    attached; a checkpoint without masks gets them from its zeros."""
    from wispy.models.registry import load_checkpoint

    model = load_checkpoint(path)
    ck = load_torch_file(path)
    if ck.get("masks"):
        attach_masks(model, ck["masks"], ck.get("prune"))
    else:
        masks_from_weights(model)
    return model

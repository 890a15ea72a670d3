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
"""
from __future__ import annotations

import copy
import fnmatch
import math
import re
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import torch
from torch import nn

PRUNE_MODES = ("rows", "cols", "both")


# ---------------------------------------------------------------------------------------------
# Blocks


@dataclass(frozen=True)
class _Cut:
    """How one axis is cut: into `n` near-equal parts ("count"), into parts of `n` (the last
    one shorter: "size"), or not at all ("full")."""

    how: str = "full"
    n: int = 1

    def edges(self, length: int) -> np.ndarray:
        if self.how == "full" or length == 0:
            return np.array([0, length])
        if self.how == "count":
            parts = min(self.n, length)
            return np.round(np.linspace(0, length, parts + 1)).astype(np.int64)
        return np.unique(np.r_[np.arange(0, length, self.n), length]).astype(np.int64)

    def text(self) -> str:
        return "*" if self.how == "full" else str(self.n)


@dataclass(frozen=True)
class BlockSpec:
    """How a weight matrix [rows, cols] is divided into blocks.

    BlockSpec.column_strips(4)   4 column strips (each spans every row)  "cols:4"
    BlockSpec.row_strips(3)      3 row strips (e.g. one per GRU gate)    "rows:3"
    BlockSpec.tiles(64, 32)      64-row by 32-column tiles               "tiles:64x32"
    BlockSpec.grid(4, 2)         4 x 2 near-equal blocks                 "grid:4x2"
    BlockSpec.whole()            the matrix is one block                 "whole"

    Strip counts split an axis into near-equal parts (sizes differ by at most one), so one spec
    fits matrices of any size; tile sizes are fixed (the last tile of an axis may be shorter).
    In "tiles:RxC" a `*` means the whole axis: "tiles:*x32" is column strips 32 wide."""

    row_cut: _Cut = _Cut()
    col_cut: _Cut = _Cut()

    @staticmethod
    def column_strips(n: int) -> "BlockSpec":
        return BlockSpec(_Cut(), _Cut("count", int(n)))

    @staticmethod
    def row_strips(n: int) -> "BlockSpec":
        return BlockSpec(_Cut("count", int(n)), _Cut())

    @staticmethod
    def tiles(rows: Optional[int], cols: Optional[int]) -> "BlockSpec":
        return BlockSpec(_Cut("size", int(rows)) if rows else _Cut(), _Cut("size", int(cols)) if cols else _Cut())

    @staticmethod
    def grid(row_blocks: int, col_blocks: int) -> "BlockSpec":
        return BlockSpec(_Cut("count", int(row_blocks)), _Cut("count", int(col_blocks)))

    @staticmethod
    def whole() -> "BlockSpec":
        return BlockSpec()

    @staticmethod
    def parse(spec: Union[str, "BlockSpec"]) -> "BlockSpec":
        if isinstance(spec, BlockSpec):
            return spec
        s = str(spec).strip().lower().replace(" ", "")
        if s in ("whole", "none", "matrix"):
            return BlockSpec.whole()
        m = re.fullmatch(r"(cols|rows):(\d+)", s)
        if m:
            n = int(m.group(2))
            if n < 1:
                raise ValueError(f"block spec {spec!r}: at least one strip")
            return BlockSpec.column_strips(n) if m.group(1) == "cols" else BlockSpec.row_strips(n)
        m = re.fullmatch(r"(tiles|grid):(\d+|\*)x(\d+|\*)", s)
        if m:
            a, b = (None if g == "*" else int(g) for g in m.group(2, 3))
            if a == 0 or b == 0:
                raise ValueError(f"block spec {spec!r}: sizes and counts must be >= 1")
            if m.group(1) == "tiles":
                return BlockSpec.tiles(a, b)
            return BlockSpec(_Cut("count", a) if a else _Cut(), _Cut("count", b) if b else _Cut())
        raise ValueError(f"bad block spec {spec!r}: use cols:N, rows:N, tiles:RxC (sizes, * = whole "
                         f"axis), grid:NxM (counts) or whole")

    def __str__(self) -> str:
        r, c = self.row_cut, self.col_cut
        if r.how == "full" and c.how == "full":
            return "whole"
        if r.how == "full" and c.how == "count":
            return f"cols:{c.n}"
        if c.how == "full" and r.how == "count":
            return f"rows:{r.n}"
        if "size" in (r.how, c.how) and "count" not in (r.how, c.how):
            return f"tiles:{r.text()}x{c.text()}"
        if "count" in (r.how, c.how) and "size" not in (r.how, c.how):
            return f"grid:{r.text()}x{c.text()}"
        return f"BlockSpec(rows={r}, cols={c})"

    def transposed(self) -> "BlockSpec":
        return BlockSpec(self.col_cut, self.row_cut)

    def edges(self, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
        """Block boundaries of a [rows, cols] matrix: (row edges, column edges), each starting at
        0 and ending at the axis length; block (i, j) is [re[i]:re[i+1], ce[j]:ce[j+1]]."""
        return self.row_cut.edges(rows), self.col_cut.edges(cols)


# ---------------------------------------------------------------------------------------------
# The projection onto the block-structured set


def _closest(kept: np.ndarray, target: float) -> int:
    """Index of the kept count closest to target on a log scale (ties: the larger count)."""
    kept = np.asarray(kept, dtype=np.float64)
    err = np.abs(np.log(np.maximum(kept, 1e-9)) - math.log(max(target, 1e-9)))
    best = err.min()
    return int(np.flatnonzero(err <= best + 1e-12)[-1])


def _row_units(E: np.ndarray, re: np.ndarray, ce: np.ndarray, target: float, uniform: bool,
               row_weight: Optional[np.ndarray] = None) -> np.ndarray:
    """Chooses whole rows inside blocks. E[r, j] is the energy (sum of squares) of row r inside
    column block j; a unit (r, j) weighs `row_weight[i, j]` weights (default: the block's width).
    Returns keep[r, j] (bool) with the kept weight count closest to `target`: the same number of
    rows in every block when `uniform`, else the units of highest energy per weight over the
    whole matrix."""
    R, nC = E.shape
    rsz, csz = np.diff(re), np.diff(ce)
    if row_weight is None:
        row_weight = np.broadcast_to(csz[None, :], (len(rsz), nC)).astype(np.float64)
    block_of_row = np.repeat(np.arange(len(rsz)), rsz)
    unit_w = row_weight[block_of_row]  # [R, nC]
    keep = np.zeros((R, nC), dtype=bool)
    live = unit_w > 0
    if not live.any():
        return keep
    if uniform:
        ks = np.arange(1, int(rsz.max()) + 1)
        kept = np.minimum(ks[:, None], rsz[None, :]) @ row_weight.sum(1)  # kept weights for k rows/block
        k = int(ks[_closest(kept, target)])
        for i in range(len(rsz)):
            Ei = E[re[i]:re[i + 1]]  # [rows of block-row i, nC]
            order = np.argsort(-Ei, axis=0, kind="stable")[:k]  # top-k rows of each block
            np.put_along_axis(keep[re[i]:re[i + 1]], order, True, axis=0)
        keep &= live
        return keep
    score = np.where(live, E / np.maximum(unit_w, 1e-30), -np.inf).ravel()
    order = np.argsort(-score, kind="stable")
    order = order[np.isfinite(score[order])]
    cum = np.cumsum(unit_w.ravel()[order])
    n = _closest(cum, target) + 1
    keep.ravel()[order[:n]] = True
    return keep


def _energy_by_col_block(W2: np.ndarray, ce: np.ndarray) -> np.ndarray:
    """[R, nC]: sum of squares of each row inside each column block."""
    return np.add.reduceat(W2, ce[:-1], axis=1) if W2.shape[1] else np.zeros((W2.shape[0], 0))


def _mask_rows(W: np.ndarray, spec: BlockSpec, target: float, uniform: bool) -> np.ndarray:
    re, ce = spec.edges(*W.shape)
    keep = _row_units(_energy_by_col_block(W * W, ce), re, ce, target, uniform)
    return np.repeat(keep, np.diff(ce), axis=1)


def _mask_both(W: np.ndarray, spec: BlockSpec, target: float, uniform: bool) -> np.ndarray:
    """Rows then columns inside each block. The budget is shared so that both keep about the
    square root of the kept fraction; columns are then chosen among the kept rows to hit the
    target count. With `uniform` every block keeps the same kr x kc (the pair whose count is
    closest to the target, the most balanced one on ties), refined by two rounds of choosing
    rows given the columns and columns given the rows (the exact projection is combinatorial;
    this alternation is the usual heuristic)."""
    R, C = W.shape
    re, ce = spec.edges(R, C)
    rsz, csz = np.diff(re), np.diff(ce)
    W2 = W * W
    frac = target / max(W.size, 1)
    if uniform:
        # kept(kr, kc) = sum_i min(kr, rows_i) * sum_j min(kc, cols_j): separable
        krs, kcs = np.arange(1, int(rsz.max()) + 1), np.arange(1, int(csz.max()) + 1)
        A = np.minimum(krs[:, None], rsz[None, :]).sum(1).astype(np.float64)
        B = np.minimum(kcs[:, None], csz[None, :]).sum(1).astype(np.float64)
        err = np.abs(np.log(A[:, None] * B[None, :]) - math.log(max(target, 1e-9)))
        balance = np.abs(np.log((krs[:, None] / rsz.max()) / (kcs[None, :] / csz.max())))
        cand = np.argwhere(err <= err.min() + 1e-9)
        a, b = cand[np.argmin(balance[cand[:, 0], cand[:, 1]])]
        kr, kc = int(krs[a]), int(kcs[b])
        mask = np.zeros(W.shape, dtype=bool)
        for i in range(len(rsz)):
            for j in range(len(csz)):
                B = W2[re[i]:re[i + 1], ce[j]:ce[j + 1]]
                rows = np.argsort(-B.sum(1), kind="stable")[:kr]
                for _ in range(3):
                    cols = np.argsort(-B[rows].sum(0), kind="stable")[:kc]
                    rows = np.argsort(-B[:, cols].sum(1), kind="stable")[:kr]
                cols = np.argsort(-B[rows].sum(0), kind="stable")[:kc]
                mask[re[i] + np.sort(rows)[:, None], ce[j] + np.sort(cols)[None, :]] = True
        return mask
    # non-uniform: rows over the whole matrix with about sqrt(frac) of the weights ...
    row_keep = _row_units(_energy_by_col_block(W2, ce), re, ce, math.sqrt(frac) * W.size, False)  # [R, nC]
    rmask = np.repeat(row_keep, csz, axis=1)
    # ... then columns among the kept rows: unit (block-row i, column c) weighs the kept rows
    # of block (i, j(c)); energy over those rows only
    kept_rows = np.add.reduceat(row_keep.astype(np.float64), re[:-1], axis=0)  # [nR, nC]
    Ecol = np.add.reduceat(W2 * rmask, re[:-1], axis=0).T  # [C, nR]: column c inside block-row i
    col_keep = _row_units(Ecol, ce, re, target, False, row_weight=kept_rows.T)  # [C, nR]
    return rmask & np.repeat(col_keep, rsz, axis=1).T


def block_sparse_mask(weight: torch.Tensor, rate: float, block: Union[str, BlockSpec] = "cols:4",
                      prune: str = "rows", uniform: bool = True) -> torch.Tensor:
    """The mask (bool, the weight's shape) of the block-structured matrix closest to `weight`
    that keeps about 1/rate of its entries: inside each block, the rows (prune="rows"), columns
    ("cols") or rows and columns ("both") of largest L2 norm. A >2-D weight (Conv1d [out, in, k])
    is treated as its [out, in*k] matrix. rate <= 1 keeps everything."""
    if prune not in PRUNE_MODES:
        raise ValueError(f"prune must be one of {PRUNE_MODES}, not {prune!r}")
    spec = BlockSpec.parse(block)
    shape = weight.shape
    W = weight.detach().reshape(shape[0], -1).to(torch.float64).cpu().numpy()
    if rate <= 1.0:
        return torch.ones(shape, dtype=torch.bool, device=weight.device)
    target = W.size / float(rate)
    if prune == "rows":
        m = _mask_rows(W, spec, target, uniform)
    elif prune == "cols":
        m = _mask_rows(W.T, spec.transposed(), target, uniform).T
    else:
        m = _mask_both(W, spec, target, uniform)
    return torch.from_numpy(np.ascontiguousarray(m)).reshape(shape).to(weight.device)


def project_block_sparse(weight: torch.Tensor, rate: float, block: Union[str, BlockSpec] = "cols:4",
                         prune: str = "rows", uniform: bool = True) -> torch.Tensor:
    """Euclidean projection of `weight` onto the block-structured set (ADMM's Z update): the
    weight with everything outside `block_sparse_mask` zeroed. Exact for prune="rows"/"cols"
    (keeping the largest-norm units is the projection for a given count per block); "both" uses
    the alternating heuristic of `block_sparse_mask`."""
    return weight * block_sparse_mask(weight, rate, block, prune, uniform).to(weight.dtype)


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


def block_structure(weight: torch.Tensor, block: Union[str, BlockSpec], mask: Optional[torch.Tensor] = None) -> dict:
    """Per-block survivors of a (2-D view of a) matrix: {"row_edges", "col_edges", "kept_rows"
    [nR][nC], "kept_cols" [nR][nC], "kept" [nR][nC], "dense_blocks" (True when every block's
    nonzeros are exactly its kept rows x kept columns, i.e. a dense sub-matrix)}."""
    spec = BlockSpec.parse(block)
    m = (weight.detach() != 0) if mask is None else mask
    m = m.reshape(m.shape[0], -1).cpu().numpy().astype(bool)
    re, ce = spec.edges(*m.shape)
    nR, nC = len(re) - 1, len(ce) - 1
    kr = np.zeros((nR, nC), dtype=np.int64)
    kc = np.zeros((nR, nC), dtype=np.int64)
    kept = np.zeros((nR, nC), dtype=np.int64)
    dense = True
    for i in range(nR):
        for j in range(nC):
            B = m[re[i]:re[i + 1], ce[j]:ce[j + 1]]
            rows, cols = B.any(1), B.any(0)
            kr[i, j], kc[i, j], kept[i, j] = rows.sum(), cols.sum(), B.sum()
            if kept[i, j] != kr[i, j] * kc[i, j]:
                dense = False
    return {"row_edges": re.tolist(), "col_edges": ce.tolist(), "kept_rows": kr.tolist(),
            "kept_cols": kc.tolist(), "kept": kept.tolist(), "dense_blocks": dense}


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

    from wispy.training.ctc import save_checkpoint as _atomic_save

    path = Path(path)
    obj = {"model": model.state_dict(), "config": getattr(model, "wispy_config", None),
           "masks": {n: m.cpu() for n, m in (getattr(model, "wispy_masks", None) or {}).items()},
           "prune": getattr(model, "wispy_prune", None) or {}, **extra}
    _atomic_save(obj, path)


def load_pruned(path) -> nn.Module:
    """Rebuilds a pruned checkpoint's model (wispy.models.registry.load_checkpoint) with its masks
    attached; a checkpoint without masks gets them from its zeros."""
    from wispy.models.registry import load_checkpoint

    model = load_checkpoint(path)
    ck = torch.load(path, map_location="cpu", weights_only=False)
    if ck.get("masks"):
        attach_masks(model, ck["masks"], ck.get("prune"))
    else:
        masks_from_weights(model)
    return model

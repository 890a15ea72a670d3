"""Blocks and block-sparse masks of one weight matrix (BSP, RTMobile: Dong et al., DAC 2020).

A weight matrix is cut into blocks (`BlockSpec`: column strips, row strips or r x c tiles).
Inside each block whole rows and/or whole columns are removed, so what survives in every block
is a smaller dense sub-matrix: the rows (and columns) it keeps, crossed. RTMobile's own pattern
is `BlockSpec.parse("cols:4")` with `prune="rows"`: four column strips, whole rows of each strip
removed, each strip keeping its own set of rows.

`block_sparse_mask` / `project_block_sparse` choose the survivors of one matrix at a rate;
`block_structure` reads the per-block survivors back. Selecting a model's matrices, attaching
the masks and saving pruned models is `wispy.compress.block_sparse`'s (its docstring describes
rates and `uniform`).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import torch

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

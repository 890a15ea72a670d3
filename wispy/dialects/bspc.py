"""BSPC: the compact storage of a block-structured sparse matrix (RTMobile's format).

A weight W[M, N] whose zeros are block-structured (the matrix cut into a grid of
bm x bn blocks, and inside each block whole rows and/or whole columns zero) keeps, per
block b, a dense sub-matrix W[R_b, C_b]. `detect` finds the block grid from the zeros
themselves (no mask needed): it tries grids of near-equal strips and of fixed-size tiles
on each axis (column strips, row strips, tiles) and keeps the one with the least work. `pack` stores the
survivors as a few *buckets*; a bucket holds blocks of equal padded size, so one
regular kernel serves each bucket (blocks with equal work sit together):

    values[nb, r, c]  the dense sub-blocks (padding is zero; the last row of every
                      block is padding, so a bucket always holds a zero product)
    rows[nb, r]       each sub-block row's row of W (-1: padding)
    cols[nb, c]       each sub-block column's column of W (padding points at column 0,
                      whose value there is zero)

    combine[k, M]     for output row m, where its (up to k) partial sums sit in the
                      bucket's flattened [nb*r] products; a row with fewer points at
                      r - 1, block 0's zero row (no compare or select when combining)
So

    y[p, m] = sum_buckets sum_s prod[p, combine[s, m]],
    prod[p, (b, i)] = sum_j values[b, i, j] * x[p, cols[b, j]]

which is W @ x reading each gathered slice of x once per block.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

# Cost model (in multiply-adds): each block costs a little beyond its dense work (its
# index loads and loop set-up), each gathered input element and each combined partial
# sum about one multiply-add.
BLOCK_OVERHEAD = 32


@dataclass
class Bucket:
    values: np.ndarray  # [nb, r, c]
    rows: np.ndarray    # [nb, r] int32, -1 = padding
    cols: np.ndarray    # [nb, c] int32
    combine: Optional[np.ndarray] = None  # [k, M] int32, -1 = no partial sum

    @property
    def blocks(self) -> int:
        return self.values.shape[0]


@dataclass
class BlockSparse:
    shape: tuple            # (M, N)
    grid: tuple             # (row edges, column edges) of the block grid
    buckets: list = field(default_factory=list)

    @property
    def work(self) -> int:
        """Multiply-adds per input vector, padding included."""
        return int(sum(bk.values.size for bk in self.buckets))

    @property
    def nonzeros(self) -> int:
        return int(sum(np.count_nonzero(bk.values) for bk in self.buckets))

    def describe(self) -> str:
        m, n = self.shape
        sizes = ", ".join(f"{bk.blocks}x[{bk.values.shape[1]}x{bk.values.shape[2]}]" for bk in self.buckets)
        gm, gn = len(self.grid[0]) - 1, len(self.grid[1]) - 1
        return (f"{m}x{n} as {gm}x{gn} blocks of ~{m // gm}x{n // gn}: {sizes}; "
                f"work {m * n / max(self.work, 1):.1f}x less than dense")

    def to_dense(self) -> np.ndarray:
        """W rebuilt from the packed form (tests and round trips)."""
        m, n = self.shape
        dtype = self.buckets[0].values.dtype if self.buckets else np.float32
        w = np.zeros((m, n), dtype)
        for bk in self.buckets:
            for b in range(bk.blocks):
                keep = bk.rows[b] >= 0  # padded columns repeat column 0: accumulate
                np.add.at(w, np.ix_(bk.rows[b][keep], bk.cols[b]), bk.values[b][keep])
        return w

    def matmul(self, x: np.ndarray) -> np.ndarray:
        """x[P, N] @ W.T computed from the packed form, exactly as the lowering does."""
        y = np.zeros((x.shape[0], self.shape[0]), x.dtype)
        for bk in self.buckets:
            prod = np.einsum("bij,pbj->pbi", bk.values, x[:, bk.cols]).reshape(x.shape[0], -1)
            for row in bk.combine:
                y += prod[:, row]
        return y


def _axis_cuts(length: int, smallest: int = 8) -> list[np.ndarray]:
    """Ways to cut an axis into blocks, as edge arrays: into 2^i near-equal parts (sizes
    differ by one at most, as wispy.compress cuts strips), and into parts of 2^i (the
    last one shorter, as it cuts tiles)."""
    cuts, seen = [], set()

    def add(edges):
        key = tuple(int(e) for e in edges)
        if key not in seen:
            seen.add(key)
            cuts.append(np.asarray(key, np.int64))

    parts = 1
    while length // parts >= smallest:
        add(np.round(np.linspace(0, length, parts + 1)))
        parts *= 2
    size = smallest
    while size < length:
        add(np.r_[np.arange(0, length, size), length])
        size *= 2
    return cuts or [np.array([0, length], np.int64)]


def block_structure(w: np.ndarray, row_edges: np.ndarray, col_edges: np.ndarray):
    """Per block of the grid: which of its rows hold a nonzero ([gm][gn] list of bool
    arrays over the block's rows) and which of its columns."""
    nz = w != 0
    in_col_block = np.logical_or.reduceat(nz, col_edges[:-1], axis=1)  # [M, gn]
    in_row_block = np.logical_or.reduceat(nz, row_edges[:-1], axis=0)  # [gm, N]
    gm, gn = len(row_edges) - 1, len(col_edges) - 1
    rows = [[in_col_block[row_edges[i]:row_edges[i + 1], j] for j in range(gn)] for i in range(gm)]
    cols = [[in_row_block[i, col_edges[j]:col_edges[j + 1]] for j in range(gn)] for i in range(gm)]
    return rows, cols


def grid_cost(w: np.ndarray, row_edges: np.ndarray, col_edges: np.ndarray, _cache=None) -> int:
    """Multiply-adds to skip w's zeros on this grid (an upper bound: a block's kept rows
    times its kept columns, where only the sub-matrix's own zeros would be finer)."""
    nz = w != 0 if _cache is None else _cache["nz"]

    def reduced(axis, edges):  # nonzero per (row, column block) or (row block, column)
        key = (axis, edges.tobytes())
        if _cache is None or key not in _cache:
            value = np.logical_or.reduceat(nz, edges[:-1], axis=axis).astype(np.int64)
            if _cache is None:
                return value
            _cache[key] = value
        return _cache[key]

    r = np.add.reduceat(reduced(1, col_edges), row_edges[:-1], axis=0)  # [gm, gn]
    c = np.add.reduceat(reduced(0, row_edges), col_edges[:-1], axis=1)  # [gm, gn]
    live = (r > 0) & (c > 0)
    return int((r * c).sum() + (live * (BLOCK_OVERHEAD + c + r)).sum())


def detect(w: np.ndarray, block: Optional[tuple] = None) -> tuple[tuple, int]:
    """The block grid (row edges, column edges) that makes `w`'s zeros cheapest to skip,
    and its cost in multiply-adds; `block` = (bm, bn) forces bm x bn tiles."""
    if w.ndim != 2:
        raise ValueError(f"a weight matrix must be 2-D, got shape {w.shape}")
    m, n = w.shape
    if block is not None:
        bm, bn = block
        if bm <= 0 or bn <= 0:
            raise ValueError(f"block {bm}x{bn}: sizes must be positive")
        grid = (np.r_[np.arange(0, m, bm), m], np.r_[np.arange(0, n, bn), n])
        return grid, grid_cost(w, *grid)
    cache = {"nz": w != 0}  # per-axis reductions, shared by the grids that cut an axis alike
    best = None
    for re in _axis_cuts(m):
        for ce in _axis_cuts(n):
            cost = grid_cost(w, re, ce, cache)
            if best is None or cost < best[1]:
                best = ((re, ce), cost)
    return best


def pack(w: np.ndarray, grid: tuple, max_buckets: int = 4, pad_waste: float = 0.1,
         keep_all: bool = False) -> BlockSparse:
    """Packs `w` in BSPC for `grid` (row edges, column edges), as `detect` returns it;
    `keep_all` keeps every row and column, zeros included (a dense matrix in the format).

    Blocks are sorted by their survivors (rows, then columns) and cut into at most
    `max_buckets` runs, a new run starting when padding a block to the run's size would
    waste more than `pad_waste` of the run's work."""
    m, n = w.shape
    row_edges, col_edges = grid
    rows_nz, cols_nz = block_structure(np.ones(w.shape, bool) if keep_all else w, row_edges, col_edges)
    blocks = []  # (r, c, rows, cols)
    for gi in range(len(row_edges) - 1):
        for gj in range(len(col_edges) - 1):
            r = np.flatnonzero(rows_nz[gi][gj]) + row_edges[gi]
            c = np.flatnonzero(cols_nz[gi][gj]) + col_edges[gj]
            if len(r) and len(c):
                blocks.append((len(r), len(c), r, c))
    blocks.sort(key=lambda t: (-t[0], -t[1]))
    runs: list[list] = []
    for blk in blocks:
        if runs:
            run = runs[-1]
            r0, c0 = run[0][0], max(b[1] for b in run)
            c_new = max(c0, blk[1])
            padded = r0 * c_new * (len(run) + 1)
            real = sum(b[0] * b[1] for b in run) + blk[0] * blk[1]
            if len(runs) == max_buckets or padded - real <= pad_waste * padded:
                run.append(blk)
                continue
        runs.append([blk])
    out = BlockSparse((m, n), (tuple(int(e) for e in row_edges), tuple(int(e) for e in col_edges)))
    for run in runs:
        r, c = max(b[0] for b in run) + 1, max(b[1] for b in run)  # + the zero row
        values = np.zeros((len(run), r, c), w.dtype)
        rows = np.full((len(run), r), -1, np.int32)
        cols = np.zeros((len(run), c), np.int32)
        for i, (nr, nc, rr, cc) in enumerate(run):
            values[i, :nr, :nc] = w[np.ix_(rr, cc)]
            rows[i, :nr] = rr
            cols[i, :nc] = cc
        out.buckets.append(Bucket(values, rows, cols, _combine_table(rows, m)))
    return out


def _combine_table(rows: np.ndarray, m: int) -> np.ndarray:
    """[k, M]: where each output row's partial sums sit in the flattened [nb*r] rows;
    missing ones point at r - 1, block 0's last row, which is always zero padding."""
    flat = rows.reshape(-1)
    live = np.flatnonzero(flat >= 0)
    counts = np.bincount(flat[live], minlength=m)
    table = np.full((max(1, int(counts.max(initial=0))), m), rows.shape[1] - 1, np.int32)
    seen = np.zeros(m, np.int64)
    for pos in live:
        row = flat[pos]
        table[seen[row], row] = pos
        seen[row] += 1
    return table

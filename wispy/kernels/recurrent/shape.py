"""The recurrent kernel's shape for a target (KernelShape), the scratch S's layout and
W_hh's packing into row tiles (see the package docstring)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

CELLS = ("gru", "lstm")


def gates(cell: str) -> int:
    """Rows of W_hh per hidden unit: 3 for a GRU (r, z, n), 4 for an LSTM (i, f, g, o)."""
    return {"gru": 3, "lstm": 4}[cell]


# Stack the kernel may use for S[4H + TL] and h[H] (IREE's CPU limit is 32 KiB).
STACK_LIMIT_BYTES = 24 * 1024


@dataclass(frozen=True)
class KernelShape:
    """How the kernel is cut for a target: TL rows per tile (a vector), G tiles in flight,
    UJ columns per loop iteration, GW units per gate vector, workgroups (cores) per
    sequence."""

    tl: int = 16
    g: int = 4
    uj: int = 4
    gw: int = 8
    # Workers > 1: the hidden units are cut into that many parts, each part's rows of W_hh
    # (about 1/workers of it, which then fits a core's L2) a task per step that any
    # worker may claim; see "several workers" below. 1 here; on a host with two cores or
    # more the pass takes two, or more when W_hh outgrows a core's L2
    # (recurrent_kernel.auto_workers).
    workers: int = 1
    # Polls on a claimed, unfinished part before running it too. Longer than a part's
    # task (a few to ~20 us): a worker that steals a part that is merely late pulls the
    # other's weights through its own cache every step. One poll is two atomics on a line
    # both cores write (tens of ns); a preempted worker costs the others this wait once
    # (docs/design/recurrent-kernel.md#several-workers-per-sequence).
    steal_spins: int = 1024
    snake: bool = True  # every other step walks the blocks backwards
    # AArch64: each 16-row tile of W_hh read with one `ld1 {4 x q}` (four q registers in
    # one instruction) instead of two `ldp`; the products are then 4 fmla + 1 load per
    # column and tile, not 4 + 2 (see _group). Only with tl == 16.
    ld1x4: bool = False
    # Independent chains of fmas a group keeps in flight: a group of G tiles has G (with
    # ld1x4, 4G) accumulators, each fma waiting on the last one's result (4 cycles); with
    # fewer chains than (fma pipes x latency) the products wait on latency, not on memory.
    # A part's rows rarely fill whole groups: GRU 2x1024 pruned 20x keeps ~78 rows per
    # strip and part, a group of 4 tiles and one of 1. Columns then add into
    # accumulator_sets() sets of accumulators, summed after the loop; it pays at high
    # pruning rates (docs/design/recurrent-kernel.md#layout-of-the-kernel).
    chains: int = 8


def accumulator_sets(accumulators: int, uj: int, chains: int) -> int:
    """Sets of accumulators for a group's loop over columns (uj a loop iteration): enough
    for `chains` chains of fmas, a divisor of uj (column u adds into set u % sets)."""
    want = -(-chains // max(accumulators, 1))
    return max(k for k in (1, 2, 4, 8, 16) if k <= max(1, min(want, uj)) and uj % k == 0)


def shape_for(target) -> KernelShape:
    """Tiles that suit the target's vector registers (16 NEON q registers on armv7). The
    host's gates take 16 units a vector (one AVX-512 register); Arm keeps 8 (two q
    registers): the gates' polynomials need registers. arm64 loads each 16-row tile with
    one `ld1` and takes 16 columns of h a loop iteration, fewer instructions than `ldp`
    (docs/design/recurrent-kernel.md#layout-of-the-kernel)."""
    name = getattr(target, "name", "host")
    if name == "armv7":  # 16 q registers: no more accumulators than the tiles'
        return KernelShape(tl=8, g=2, uj=4, gw=4, chains=4)
    if name == "host":
        return KernelShape(gw=16)
    if name == "arm64":
        return KernelShape(uj=16, ld1x4=True)
    return KernelShape()


def supports(hidden: int, shape: KernelShape) -> bool:
    """True when the kernel takes this hidden size: whole vectors of units, and acc and h
    within the stack budget."""
    return hidden % shape.tl == 0 and hidden % shape.gw == 0 and \
        4 * (5 * hidden + shape.tl) <= STACK_LIMIT_BYTES


def scratch_size(hidden: int, shape: KernelShape) -> int:
    """S: acc[3H], acc_in[H], and a whole vector holding the padding rows' slot (4H)."""
    return 4 * hidden + shape.tl


def scratch_rows(rows: np.ndarray, hidden: int, cell: str = "gru") -> np.ndarray:
    """Rows of W_ih (-1: padding) as positions in S: a GRU's r and z rows in acc as they
    are, its n rows in acc_in; an LSTM's rows all in acc as they are; padding in the slot
    at 4H."""
    out = np.where(rows < 0, 4 * hidden, rows)
    if cell == "lstm":
        return out.astype(np.int32)
    return np.where(rows >= 2 * hidden, rows + hidden, out).astype(np.int32)


def initial_scratch(b_ih, b_hh, hidden: int, with_projection: bool, shape: KernelShape,
                    cell: str = "gru") -> np.ndarray:
    """S at the start of every step (see the module docstring)."""
    s = np.zeros(scratch_size(hidden, shape), np.float32)
    m = gates(cell) * hidden
    s[:m] = b_hh
    if cell == "lstm":
        if with_projection:
            s[:m] += b_ih
        return s
    if with_projection:
        s[:2 * hidden] += b_ih[:2 * hidden]
        s[3 * hidden:4 * hidden] = b_ih[2 * hidden:]
    return s


@dataclass
class PackedBucket:
    values: np.ndarray   # [nb, nt / G, c, G, TL] float32, padding zero
    rows: np.ndarray     # [nb, nt * TL] int32: each packed row's row of W (4H: padding)
    cols: np.ndarray     # [nb, c] int32
    # Columns of h per loop iteration: with column strips (every block keeps contiguous
    # columns) shape.uj, or 8 or 4 when c is not its multiple; 1 (one gathered column) else.
    uj: int = 1

    @property
    def strips(self) -> bool:
        """Every block keeps contiguous columns, read uj at a time from h."""
        return self.uj > 1


def pack_bucket(values: np.ndarray, rows: np.ndarray, cols: np.ndarray, pad: int,
                shape: KernelShape) -> PackedBucket:
    """A BSPC bucket of W_hh (values [nb, r, c], rows [nb, r] with -1 padding, cols [nb, c])
    in the kernel's tiled layout; padding rows point at S[pad] (4H), which nobody reads."""
    nb, r, c = values.shape
    tl, g = shape.tl, shape.g
    nt = -(-(-(-r // tl)) // g) * g
    v = np.zeros((nb, nt * tl, c), np.float32)
    v[:, :r] = values
    rr = np.full((nb, nt * tl), pad, np.int32)
    rr[:, :r] = np.where(rows < 0, pad, rows)
    v = np.ascontiguousarray(v.reshape(nb, nt // g, g, tl, c).transpose(0, 1, 4, 2, 3))
    cols = np.ascontiguousarray(cols, dtype=np.int32)
    contiguous = bool(np.all(cols - cols[:, :1] == np.arange(c, dtype=np.int32)))
    uj = next((u for u in (shape.uj, 8, 4) if u <= shape.uj and c % u == 0), 1) if contiguous else 1
    return PackedBucket(v, rr, cols, uj)


def pack_rows(values: np.ndarray, rows: np.ndarray, cols: np.ndarray, pad: int,
              shape: KernelShape) -> list[PackedBucket]:
    """pack_bucket without padding to whole groups: the rows that fill whole groups of G
    tiles, then (if any) the rest as a bucket of one shorter group."""
    r = values.shape[1]
    tiles = -(-r // shape.tl)
    split = min(r, tiles // shape.g * shape.g * shape.tl)
    out = []
    if split:
        out.append(pack_bucket(values[:, :split], rows[:, :split], cols, pad, shape))
    if split < r:
        g = -(-(r - split) // shape.tl)
        out.append(pack_bucket(values[:, split:], rows[:, split:], cols, pad, dataclasses.replace(shape, g=g)))
    return out


def results_of(cell: str) -> int:
    """The dispatch's results, as many as the state's parts: hs (h0), and an LSTM's cs (c0)."""
    return 2 if cell == "lstm" else 1

"""wispy::gru_sequence and wispy::lstm_sequence: a whole GRU or LSTM layer over all frames as
one op, and the rule (`select`) for when the export emits them.

The export (wispy.compiler.recurrent, LoopedRNN) writes every nn.GRU/nn.LSTM layer as a loop
over time; a layer whose recurrent matrix `select` accepts becomes one of these ops instead,
which the pass wispy-recurrent-kernel replaces by the input projection and one hand-written
dispatch running every step (wispy.kernels.recurrent). The cells' arithmetic (`gru_step`,
`lstm_step`) is shared by the loops and the ops' references.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from wispy import targets
from wispy.dialects import bspc
from wispy.dialects.base import LoweredByPass, define

# How the recurrent matrix-vector product is written. "linear" lets IREE data-tile it like
# a matmul, which re-encodes h in a dispatch of its own every step; "mulsum" writes it as a
# multiply and a row sum, which IREE compiles as a plain matvec reduction streaming the
# row-major weight: a quarter faster on a GRU 2x1024, as fast as the unrolled cell.
RECURRENT_PRODUCT = "mulsum"


def recurrent_product(h, w, b=None):
    """h @ w.T (+ b) for the recurrent matrix, in the form RECURRENT_PRODUCT selects."""
    if RECURRENT_PRODUCT == "mulsum":
        p = (w * h.unsqueeze(-2)).sum(-1)
        return p if b is None else p + b
    return F.linear(h, w, b)


def gru_step(h, gi_t, w_hh, b_hh):
    """One GRU step (PyTorch's gate order r, z, n); gi_t already holds W_ih x_t + b_ih."""
    hidden = h.shape[-1]
    # One product for the three gates (three separate ones made more dispatches).
    gh = recurrent_product(h, w_hh, b_hh)
    gr, gz, gn = gh[..., :hidden], gh[..., hidden:2 * hidden], gh[..., 2 * hidden:]
    r = torch.sigmoid(gi_t[..., :hidden] + gr)
    z = torch.sigmoid(gi_t[..., hidden:2 * hidden] + gz)
    n = torch.tanh(gi_t[..., 2 * hidden:] + r * gn)
    return (1 - z) * n + z * h


def lstm_step(h, c, gi_t, w_hh, b_hh, w_hr=None):
    """One LSTM step (gate order i, f, g, o); optional projection of h (proj_size).
    LoopedRNN passes b_hh=None with b_hh already in gi_t, so the step's only add is
    gi_t + W_hh h, which wispy-recurrent-matvec folds into the product's sums."""
    hidden = c.shape[-1]
    g = gi_t + recurrent_product(h, w_hh, b_hh)
    i = torch.sigmoid(g[..., :hidden])
    f = torch.sigmoid(g[..., hidden:2 * hidden])
    cell = torch.tanh(g[..., 2 * hidden:3 * hidden])
    o = torch.sigmoid(g[..., 3 * hidden:])
    c = f * c + i * cell
    h = o * torch.tanh(c)
    if w_hr is not None:
        h = F.linear(h, w_hr)
    return h, c


# ---------------------------------------------------------------------------------------------
# The ops


def gru_sequence_reference(x: Tensor, h0: Tensor, w_ih: Tensor, b_ih: Optional[Tensor], w_hh: Tensor,
                           b_hh: Optional[Tensor]) -> Tensor:
    """A GRU layer over all frames: x [T, B, F], h0 [B, H] -> hs [T, B, H] (h after each frame)."""
    gi = F.linear(x, w_ih, b_ih)
    h, hs = h0, []
    for t in range(x.shape[0]):
        h = gru_step(h, gi[t], w_hh, b_hh)
        hs.append(h)
    return torch.stack(hs)


def _gru_sequence_fake(x, h0, w_ih, b_ih, w_hh, b_hh):
    return x.new_empty((x.shape[0],) + tuple(h0.shape))


def lstm_sequence_reference(x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, b_ih: Optional[Tensor],
                            w_hh: Tensor, b_hh: Optional[Tensor]) -> tuple[Tensor, Tensor]:
    """An LSTM layer (no proj_size) over all frames: x [T, B, F], h0 and c0 [B, H] -> hs and
    cs [T, B, H] (h and c after each frame)."""
    gi = F.linear(x, w_ih, b_ih)
    h, c, hs, cs = h0, c0, [], []
    for t in range(x.shape[0]):
        h, c = lstm_step(h, c, gi[t], w_hh, b_hh)
        hs.append(h)
        cs.append(c)
    return torch.stack(hs), torch.stack(cs)


def _lstm_sequence_fake(x, h0, c0, w_ih, b_ih, w_hh, b_hh):
    shape = (x.shape[0],) + tuple(h0.shape)
    return x.new_empty(shape), x.new_empty(shape)


# ---------------------------------------------------------------------------------------------
# When a layer becomes the op

MODES = ("auto", "on", "off")

# A dense recurrent matrix up to this size takes the kernel under "auto": it stays in a
# core's L2 from step to step, and a small GRU's steps are shorter than IREE's dispatches
# around them; from L3, IREE's matvec streams faster
# (docs/design/recurrent-kernel.md#dense-matrices-on-one-worker).
DENSE_KERNEL_MAX_BYTES = 1 << 20
# Where the kernel runs on two workers or more (the host's "auto"), up to this size: each
# worker's part then stays in its own core's L2
# (docs/design/recurrent-kernel.md#dense-matrices-on-two-workers).
DENSE_KERNEL_MAX_BYTES_WORKERS = 16 << 20


def dense_kernel_max_bytes(target, workers="auto") -> int:
    """The largest dense W_hh that takes the kernel under "auto": DENSE_KERNEL_MAX_BYTES,
    or DENSE_KERNEL_MAX_BYTES_WORKERS where the kernel runs on two workers or more (asked
    for, or the host's choice with two cores or more)."""
    if workers == "auto":
        several = getattr(target, "name", None) == "host" and targets.host_cores() >= 2
    else:
        several = workers >= 2
    return DENSE_KERNEL_MAX_BYTES_WORKERS if several else DENSE_KERNEL_MAX_BYTES


def select(target, mode: str = "auto", min_gain: float = 2.0, workers="auto", sparse: bool = True, *,
           takes: Callable[[int], bool]) -> Optional[Callable]:
    """For the export (wispy.compiler.recurrent): a function w_hh -> True for the GRU and
    LSTM layers to export as one wispy::gru_sequence or wispy::lstm_sequence op, or None
    for none. `takes(hidden)`: whether the lowering's kernel takes that hidden size on
    `target` (wispy.passes.recurrent_kernel.kernel_takes). "auto": on CPU targets,
    recurrent matrices whose block-structured zeros save at least `min_gain` times the
    work (as wispy-block-sparse decides; not with `sparse=False`, compile_model's
    block_sparse=False, where every matrix counts as dense), and dense ones of at most
    dense_kernel_max_bytes(target, workers) (`workers`: compile_model's
    recurrent_workers); "on": every such layer on CPU targets (dense ones too); "off": none."""
    if mode not in MODES:
        raise ValueError(f"recurrent_kernel must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "off" or (target is not None and not getattr(target, "is_cpu", True)):
        return None
    dense_max = dense_kernel_max_bytes(target, workers)

    def use(w_hh) -> bool:
        # Only a parameter reaches the compiler as a constant (a weight computed from
        # others, as by torch.nn.utils.parametrize, stays with the loop).
        if not isinstance(w_hh, torch.nn.Parameter) or w_hh.dim() != 2:
            return False
        m, n = w_hh.shape
        if m not in (3 * n, 4 * n) or not takes(n):
            return False
        if mode == "on" or 4 * m * n <= dense_max:
            return True
        if not sparse:
            return False
        w = w_hh.detach().float().cpu().numpy()
        try:
            _grid, cost = bspc.detect(w)
        except ValueError:
            return False
        return w.size / max(cost, 1) >= min_gain

    return use


_BY_KERNEL = LoweredByPass("wispy-recurrent-kernel")

GRU_SEQUENCE = define(
    "wispy::gru_sequence",
    "(Tensor x, Tensor h0, Tensor w_ih, Tensor? b_ih, Tensor w_hh, Tensor? b_hh) -> Tensor",
    "a GRU layer over all frames: x [T, B, F], h0 [B, H] -> h after every frame [T, B, H]",
    gru_sequence_reference, _gru_sequence_fake, _BY_KERNEL,
    "tests/dialects/test_recurrent.py::test_gru_sequence", select)

LSTM_SEQUENCE = define(
    "wispy::lstm_sequence",
    "(Tensor x, Tensor h0, Tensor c0, Tensor w_ih, Tensor? b_ih, Tensor w_hh, Tensor? b_hh) -> (Tensor, Tensor)",
    "an LSTM layer (no projection) over all frames: x, h0, c0 -> h and c after every frame [T, B, H]",
    lstm_sequence_reference, _lstm_sequence_fake, _BY_KERNEL,
    "tests/dialects/test_recurrent.py::test_lstm_sequence", select)

OPS = (GRU_SEQUENCE, LSTM_SEQUENCE)

# What the export calls (torch.ops.wispy.gru_sequence / lstm_sequence).
gru_sequence = GRU_SEQUENCE
lstm_sequence = LSTM_SEQUENCE

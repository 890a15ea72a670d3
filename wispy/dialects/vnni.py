"""wispy::int8_matmul_vnni and wispy::int8_conv_vnni: int8 products on wispy's own kernel for
hosts with AVX-512 VNNI (wispy.kernels.int8_vnni), in the kernel's operand layout.

The int8 lowering (wispy.dialects.quant_lowering, with LoweringOptions.vnni) emits them for
static int8 products; the pass wispy-int8-vnni replaces each by a dispatch of the kernel.
The kernel reads the activations as unsigned bytes (a + 128) for `vpdpbusd` and adds a
correction per column: (a + 128) w^T + corr = a w^T with corr = -128 * sum_k w[n, k]. The
references below compute exactly that, in int64.

Weight layout (`pack_weights`): w [(G,) N, K] int8, K a multiple of 4, its rows padded to whole
tiles of VNNI_COLS, as packed [(G,) N/16, K/4, 64] (16 columns x 4 k per 64 bytes).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from wispy.dialects.base import LoweredByPass, define

VNNI_COLS = 32  # the kernel's tile of the weight's columns (rows: any number)


def pack_weights(w: Tensor) -> tuple[Tensor, Tensor]:
    """w [(G,) N, K] int8 (K a multiple of 4) as the kernel's operands, its columns padded
    with zeros to whole tiles of VNNI_COLS: packed [(G,) Np/16, K/4, 64] and corr [(G,) Np] =
    -128 * sum_k w. Torch ops on a constant, which IREE folds at compile time."""
    Np = -(-w.shape[-2] // VNNI_COLS) * VNNI_COLS
    w = F.pad(w, (0, 0, 0, Np - w.shape[-2])) if Np != w.shape[-2] else w
    *g, N, K = w.shape
    packed = w.reshape(*g, N // 16, 16, K // 4, 4).transpose(-3, -2).reshape(*g, N // 16, K // 4, 64)
    return packed.contiguous(), w.to(torch.int32).sum(-1, dtype=torch.int32) * -128


def unpack_weights(packed: Tensor) -> Tensor:
    """The inverse of pack_weights' packing: w [(G,) Np, K] int64."""
    *g, nb, k4, _ = packed.shape
    return packed.reshape(*g, nb, k4, 16, 4).transpose(-2, -3).reshape(*g, nb * 16, k4 * 4).to(torch.int64)


def int8_matmul_vnni_reference(a: Tensor, packed: Tensor, corr: Tensor) -> Tensor:
    """a [(G,) M, K] int8 times the packed weight [(G,) N/16, K/4, 64], plus corr [(G,) N]:
    (a + 128) w^T + corr = a w^T, int32 [(G,) M, N]. G products run in one dispatch."""
    w = unpack_weights(packed)
    return ((a.to(torch.int64) + 128) @ w.transpose(-1, -2) + corr.to(torch.int64).unsqueeze(-2)).to(torch.int32)


def _int8_matmul_vnni_fake(a, packed, corr):
    return a.new_empty((*a.shape[:-1], packed.shape[-3] * 16), dtype=torch.int32)


def window_rows(S: int, tiles: int, P: int, seq_rows: int, row_stride: int, piece_stride: int) -> Tensor:
    """The rows of `a` that int8_conv_vnni's logical rows read: row (s, t), piece q is
    s * seq_rows + row_stride * t + piece_stride * q, flattened [S * tiles * P]."""
    return (torch.arange(S).reshape(S, 1, 1) * seq_rows + torch.arange(tiles).reshape(1, tiles, 1) * row_stride
            + torch.arange(P).reshape(1, 1, P) * piece_stride).reshape(-1)


def int8_conv_vnni_reference(a: Tensor, packed: Tensor, corr: Tensor, tiles: int, seq_rows: int, row_stride: int,
                             piece_stride: int, scale: Optional[Tensor] = None) -> Tensor:
    """int8_matmul_vnni whose activations are read from a convolution's input rows a [(G,)
    S * seq_rows, Kc] (wispy.kernels.int8_vnni.Window): logical row (s, t), k = (piece q,
    channel c) is a[s * seq_rows + row_stride * t + piece_stride * q, c]. Result [(G,) S *
    tiles, N] int32, or with `scale` [(G,) N] float32, f32(product) * scale (float32)."""
    Kc = a.shape[-1]
    P = packed.shape[-2] * 4 // Kc
    S = a.shape[-2] // seq_rows
    rows = window_rows(S, tiles, P, seq_rows, row_stride, piece_stride)
    logical = a.index_select(-2, rows).reshape(*a.shape[:-2], S * tiles, P * Kc)
    out = int8_matmul_vnni_reference(logical, packed, corr)
    return out if scale is None else out.to(torch.float32) * scale.unsqueeze(-2)


def _int8_conv_vnni_fake(a, packed, corr, tiles, seq_rows, row_stride, piece_stride, scale=None):
    return a.new_empty((*a.shape[:-2], a.shape[-2] // seq_rows * tiles, packed.shape[-3] * 16),
                       dtype=torch.int32 if scale is None else torch.float32)


_BY_VNNI = LoweredByPass("wispy-int8-vnni")

INT8_MATMUL_VNNI = define(
    "wispy::int8_matmul_vnni",
    "(Tensor a, Tensor packed, Tensor corr) -> Tensor",
    "a [(G,) M, K] int8 @ w^T, w packed [(G,) N/16, K/4, 64] int8 with its correction: int32 [(G,) M, N]",
    int8_matmul_vnni_reference, _int8_matmul_vnni_fake, _BY_VNNI,
    "tests/dialects/test_vnni.py::test_int8_matmul_vnni")

INT8_CONV_VNNI = define(
    "wispy::int8_conv_vnni",
    "(Tensor a, Tensor packed, Tensor corr, SymInt tiles, SymInt seq_rows, SymInt row_stride, SymInt piece_stride, "
    "Tensor? scale=None) -> Tensor",
    "int8_matmul_vnni reading its rows in place from a convolution's input rows (a window), "
    "optionally scaled to float32",
    int8_conv_vnni_reference, _int8_conv_vnni_fake, _BY_VNNI,
    "tests/dialects/test_vnni.py::test_int8_conv_vnni")

OPS = (INT8_MATMUL_VNNI, INT8_CONV_VNNI)

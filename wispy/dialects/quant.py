"""wispy::qconv1d, wispy::winograd_qconv1d and wispy::qlinear: int8 Conv1d (direct or
Winograd F(m, 3)) and Linear layers, one op per layer.

The arithmetic is specified in `wispy.dialects.winograd` (numpy, int64: the contract). In
short, with float32 input x and output y:

    x_q = clamp(roundeven(x / x_scale), -127, 127)                     per-tensor activation scale
    direct  (Conv1d any stride/dilation/groups, Linear):
        acc = sum w_q * x_q (int32), y = f32(acc) * f32(x_scale * w_scale[f]) + bias[f]
    Winograd F(2,3) / F(4,3) (stride-1 Conv1d; kernels cut into 3-tap pieces):
        V = B^T z (int32), V_q = clamp(roundeven(f32(V) * f32(x_scale / v_scale[j])), -127, 127)
        M = sum over channels and pieces of u_q * V_q per position j (int32)
        y = A^T (f32(M) * f32(u_scale[f, j] * v_scale[j])) + bias[f]

Shapes:

    qconv1d           x [B, C, T] f32, w_q [F, C/groups, K] int8, w_scale [F] f32, bias [F] f32
                      -> [B, F, T_out], T_out = (T + 2 padding - dilation (K - 1) - 1) // stride + 1
    winograd_qconv1d  x [B, C, T] f32, u_q [F, C/groups, P, m+2] int8 (P = ceil(taps / 3)),
                      u_scale [F, m+2] f32, v_scale [m+2] f32, bias [F] f32, m in {2, 4}
                      -> [B, F, T + 2 padding - dilation (taps - 1)]
    qlinear           x [..., C] f32, w_q [F, C] int8, w_scale [F] f32, bias [F] f32 -> [..., F]

The references (eager) carry the integers exactly in float32: sums split into chunks whose
partial sums stay below 2^24, the chunks added in float64; they equal the numpy contract bit
for bit. `direct_core`, `linear_core` and `winograd_core` are that arithmetic on integer-valued
float tensors, shared with the training side (wispy.compress.quant's fake-quant forward, which
passes straight-through rounding). The ops lower at export to ATen int8 arithmetic
(wispy.dialects.quant_lowering), bit-exact with the references.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from wispy.dialects import quant_lowering as lowering
from wispy.dialects.base import Decomposition, define
from wispy.dialects.winograd import QMAX, WINOGRAD_TABLES, pieces, tile_grid

WINOGRAD_M = {"f23": 2, "f43": 4}  # winograd_qconv1d's m for each Winograd mode
_EXACT_F32 = 2 ** 24  # integers below this are exact in float32


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.round(x)  # half to even

    @staticmethod
    def backward(ctx, g):
        return g


def round_ste(x: Tensor) -> Tensor:
    """roundeven(x) forward, identity gradient (the straight-through estimator)."""
    return _RoundSTE.apply(x) if x.requires_grad else torch.round(x)


def matrices(m: int, dtype=torch.float32):
    """(B^T, G, A^T) of F(m, 3) as torch tensors."""
    BT, G, AT = WINOGRAD_TABLES[m]
    return (torch.tensor(BT, dtype=dtype), torch.tensor(G, dtype=dtype), torch.tensor(AT, dtype=dtype))


def _chunks(n: int, per_item: int) -> list[slice]:
    """Slices of range(n) with at most (2^24 - 1) // per_item items each: a float32 sum of
    that many integer products of |.| <= per_item is exact."""
    k = max(1, (_EXACT_F32 - 1) // per_item)
    return [slice(i, min(n, i + k)) for i in range(0, n, k)]


def direct_core(x_q: Tensor, w_q: Tensor, out_scale: Tensor, bias: Optional[Tensor], stride: int, padding: int,
                dilation: int, groups: int, exact: bool = True) -> Tensor:
    """y = f32(conv(x_q, w_q)) * out_scale[f] + bias[f]; x_q, w_q integer-valued float tensors.
    With `exact` the accumulation is exact: float32 sums over input-channel chunks small enough
    that no partial sum reaches 2^24, added in float64 (grouped convolutions: float64)."""
    Cg, K = w_q.shape[1:]
    if not exact or Cg * K * QMAX * QMAX < _EXACT_F32:
        acc = F.conv1d(x_q, w_q, None, stride, padding, dilation, groups)
    elif groups == 1:
        acc = sum(F.conv1d(x_q[:, sl], w_q[:, sl], None, stride, padding, dilation).double()
                  for sl in _chunks(Cg, K * QMAX * QMAX))
    else:
        acc = F.conv1d(x_q.double(), w_q.double(), None, stride, padding, dilation, groups)
    y = acc.to(torch.float32) * out_scale.view(1, -1, 1)
    return y if bias is None else y + bias.view(1, -1, 1)


def linear_core(x_q: Tensor, w_q: Tensor, out_scale: Tensor, bias: Optional[Tensor], exact: bool = True) -> Tensor:
    """y = f32(x_q @ w_q^T) * out_scale[f] + bias[f], exact like direct_core."""
    C = w_q.shape[1]
    if not exact or C * QMAX * QMAX < _EXACT_F32:
        acc = F.linear(x_q, w_q)
    else:
        acc = sum(F.linear(x_q[..., sl], w_q[:, sl]).double() for sl in _chunks(C, QMAX * QMAX))
    y = acc.to(torch.float32) * out_scale
    return y if bias is None else y + bias


def winograd_tiles(x_q: Tensor, m: int, taps: int, padding: int, dilation: int) -> tuple[Tensor, int]:
    """z [B, C, P, d, N, m+2] (z[..., q, r, n, j] = x_q_ext[r + d (n m + 3 q + j)]) and T_out."""
    B, C, T = x_q.shape
    d, P = dilation, pieces(taps)
    T_out, N, L = tile_grid(T, m, taps, padding, dilation)
    right = L - T - padding
    if right >= 0:
        xp = F.pad(x_q, (padding, right))
    else:  # (cannot happen: L >= T + 2 padding) kept for safety
        xp = F.pad(x_q, (padding, 0))[..., :L]
    zd = xp.reshape(B, C, L // d, d).transpose(2, 3)  # [B, C, d, L/d]: residue-major
    span = N * m + 2
    z = torch.stack([zd[..., 3 * q:3 * q + span].unfold(-1, m + 2, m) for q in range(P)], dim=2)
    return z, T_out  # [B, C, P, d, N, m+2]


def _winograd_products(Vq: Tensor, u_q: Tensor, groups: int, exact: bool) -> Tensor:
    """M [B, F, d, N, m+2] = sum over channels and pieces of u_q * V_q, per position."""
    B, C, P, d, N, n = Vq.shape
    Fo, Cg = u_q.shape[:2]
    Vg = Vq.reshape(B, groups, Cg, P, d, N, n)
    Ug = u_q.reshape(groups, Fo // groups, Cg, P, n)
    if not exact or Cg * P * QMAX * QMAX < _EXACT_F32:
        M = torch.einsum("bgcqrnj,gfcqj->bgfrnj", Vg, Ug)
    else:  # exact: float32 sums over channel chunks, added in float64
        M = sum(torch.einsum("bgcqrnj,gfcqj->bgfrnj", Vg[:, :, sl], Ug[:, :, sl]).double()
                for sl in _chunks(Cg, P * QMAX * QMAX))
    return M.reshape(B, Fo, d, N, n)


def winograd_core(x_q: Tensor, u_q: Tensor, v_mult: Tensor, m_scale: Tensor, bias: Optional[Tensor], m: int,
                  padding: int, dilation: int, taps: int, groups: int, exact: bool = True,
                  stats: Optional[dict] = None) -> Tensor:
    """The int8 Winograd convolution on integer-valued float tensors (x_q [B, C, T],
    u_q [F, C/g, P, m+2]); v_mult [m+2] = f32(x_scale / v_scale), m_scale [F, m+2] =
    f32(u_scale * v_scale). Differentiable (STE at the V requantization). `stats`, when given,
    receives V (the unrequantized transform, integer-valued) for calibration."""
    BT, _, AT = matrices(m)
    z, T_out = winograd_tiles(x_q, m, taps, padding, dilation)
    V = torch.matmul(z, BT.t())  # [B, C, P, d, N, m+2], exact integers (|V| <= 1270)
    if stats is not None:
        stats["V"] = V.detach()
    Vq = torch.clamp(round_ste(V * v_mult), -QMAX, QMAX)
    if stats is not None:
        stats["clamped"] = (V * v_mult).detach().abs().gt(QMAX + 0.5)
    M = _winograd_products(Vq, u_q, groups, exact)
    B, Fo, d, N, n = M.shape
    Mf = M.to(torch.float32) * m_scale.view(1, Fo, 1, 1, n)
    rows = []
    for i in range(m):  # the output transform, in the contract's order
        acc = None
        for j in range(n):
            a = float(AT[i, j])
            if a != 0:
                term = Mf[..., j] if a == 1 else Mf[..., j] * a
                acc = term if acc is None else acc + term
        rows.append(acc)
    Y = torch.stack(rows, dim=-1)  # [B, F, d, N, m]
    y = Y.permute(0, 1, 3, 4, 2).reshape(B, Fo, N * m * d)[..., :T_out]
    return y if bias is None else y + bias.view(1, -1, 1)


def quantize_activation(x: Tensor, x_scale: float) -> tuple[Tensor, Tensor]:
    """(x_q, f32(x_scale)): clamp(roundeven(x / x_scale), -127, 127) as integer-valued float32."""
    xs = torch.tensor(x_scale, dtype=torch.float32)
    return torch.clamp(torch.round(x.to(torch.float32) / xs), -QMAX, QMAX), xs


# ---------------------------------------------------------------------------------------------
# The ops: references and fakes


def qconv1d_reference(x: Tensor, w_q: Tensor, w_scale: Tensor, x_scale: float, bias: Optional[Tensor], stride: int,
                      padding: int, dilation: int, groups: int) -> Tensor:
    """int8 direct Conv1d, exact."""
    x_q, xs = quantize_activation(x, x_scale)
    out_scale = xs * w_scale.to(torch.float32)
    return direct_core(x_q, w_q.to(torch.float32), out_scale, bias, stride, padding, dilation, groups)


def _qconv1d_fake(x, w_q, w_scale, x_scale, bias, stride, padding, dilation, groups):
    B, _, T = x.shape
    K = w_q.shape[2]
    return x.new_empty((B, w_q.shape[0], (T + 2 * padding - dilation * (K - 1) - 1) // stride + 1),
                       dtype=torch.float32)


def winograd_qconv1d_reference(x: Tensor, u_q: Tensor, u_scale: Tensor, v_scale: Tensor, x_scale: float,
                               bias: Optional[Tensor], m: int, padding: int, dilation: int, taps: int,
                               groups: int) -> Tensor:
    """int8 Winograd F(m, 3) Conv1d, stride 1, exact."""
    x_q, xs = quantize_activation(x, x_scale)
    vs = v_scale.to(torch.float32)
    return winograd_core(x_q, u_q.to(torch.float32), xs / vs, u_scale.to(torch.float32) * vs.view(1, -1), bias,
                         m, padding, dilation, taps, groups)


def _winograd_qconv1d_fake(x, u_q, u_scale, v_scale, x_scale, bias, m, padding, dilation, taps, groups):
    B, _, T = x.shape
    return x.new_empty((B, u_q.shape[0], T + 2 * padding - dilation * (taps - 1)), dtype=torch.float32)


def qlinear_reference(x: Tensor, w_q: Tensor, w_scale: Tensor, x_scale: float, bias: Optional[Tensor]) -> Tensor:
    """int8 Linear, exact."""
    x_q, xs = quantize_activation(x, x_scale)
    return linear_core(x_q, w_q.to(torch.float32), xs * w_scale.to(torch.float32), bias)


def _qlinear_fake(x, w_q, w_scale, x_scale, bias):
    return x.new_empty((*x.shape[:-1], w_q.shape[0]), dtype=torch.float32)


QCONV1D = define(
    "wispy::qconv1d",
    "(Tensor x, Tensor w_q, Tensor w_scale, float x_scale, Tensor? bias, SymInt stride, SymInt padding, "
    "SymInt dilation, SymInt groups) -> Tensor",
    "int8 Conv1d, direct (any stride, padding, dilation, groups): per-tensor activation scale, "
    "per-channel weight scale",
    qconv1d_reference, _qconv1d_fake, Decomposition(lowering.qconv1d),
    "tests/dialects/test_quant.py::test_qconv1d")

WINOGRAD_QCONV1D = define(
    "wispy::winograd_qconv1d",
    "(Tensor x, Tensor u_q, Tensor u_scale, Tensor v_scale, float x_scale, Tensor? bias, SymInt m, "
    "SymInt padding, SymInt dilation, SymInt taps, SymInt groups) -> Tensor",
    "int8 Conv1d as Winograd F(m, 3), stride 1, taps cut in 3-tap pieces, the transformed input "
    "requantized per position",
    winograd_qconv1d_reference, _winograd_qconv1d_fake, Decomposition(lowering.winograd_qconv1d),
    "tests/dialects/test_quant.py::test_winograd_qconv1d")

QLINEAR = define(
    "wispy::qlinear",
    "(Tensor x, Tensor w_q, Tensor w_scale, float x_scale, Tensor? bias) -> Tensor",
    "int8 Linear over the last dimension: per-tensor activation scale, per-channel weight scale",
    qlinear_reference, _qlinear_fake, Decomposition(lowering.qlinear),
    "tests/dialects/test_quant.py::test_qlinear")

OPS = (QCONV1D, WINOGRAD_QCONV1D, QLINEAR)

"""int8 quantization of Conv1d and Linear layers: the modules, the `wispy::` custom ops the
compiler lowers, calibration (post-training quantization) and `quantize()`, the entry point.

    from wispy.compress import quantize, save_quantized, load_quantized
    q = quantize(model, calib_batch, method="ptq", winograd="auto")    # calibration only: seconds
    q = quantize(model, calib_batch, method="rsq", corpus_dir="out/corpus", epochs=2, out_dir="out/q")
    y = q(x)                                       # the exact int8 arithmetic (eval mode)
    torch.export.export(q, (x,))                   # one wispy::qconv1d / winograd_qconv1d / qlinear node per layer
    save_quantized(q, "q.pt"); q = load_quantized("q.pt")

The arithmetic is specified in `wispy.compress.winograd` (numpy, int64: the reference). In
short, for every quantized layer, with float32 input x and output y:

    x_q = clamp(roundeven(x / x_scale), -127, 127)                     per-tensor activation scale
    direct  (nn.Conv1d any stride/dilation/groups, nn.Linear):
        acc = sum w_q * x_q (int32), y = f32(acc) * f32(x_scale * w_scale[f]) + bias[f]
    Winograd F(2,3) "f23" / F(4,3) "f43" (stride-1 Conv1d; kernels cut into 3-tap pieces):
        V = B^T z (int32), V_q = clamp(roundeven(f32(V) * f32(x_scale / v_scale[j])), -127, 127)
        M = sum over channels and pieces of u_q * V_q per position j (int32)
        y = A^T (f32(M) * f32(u_scale[f, j] * v_scale[j])) + bias[f]

Weights are per output channel (and per Winograd position), symmetric, int8 in [-127, 127].

The custom ops (registered with torch.library when this module is imported; `torch.export`
keeps each as one node, its int8 tensors as the module's buffers):

    wispy::qconv1d(Tensor x, Tensor w_q, Tensor w_scale, float x_scale, Tensor? bias,
                   int stride, int padding, int dilation, int groups) -> Tensor
        x [B, C, T] f32, w_q [F, C/groups, K] int8, w_scale [F] f32, bias [F] f32
        -> [B, F, T_out], T_out = (T + 2 padding - dilation (K - 1) - 1) // stride + 1
    wispy::winograd_qconv1d(Tensor x, Tensor u_q, Tensor u_scale, Tensor v_scale, float x_scale,
                            Tensor? bias, int m, int padding, int dilation, int taps, int groups) -> Tensor
        x [B, C, T] f32, u_q [F, C/groups, P, m+2] int8 (P = ceil(taps / 3)), u_scale [F, m+2] f32,
        v_scale [m+2] f32, bias [F] f32, m in {2, 4} -> [B, F, T + 2 padding - dilation (taps - 1)]
    wispy::qlinear(Tensor x, Tensor w_q, Tensor w_scale, float x_scale, Tensor? bias) -> Tensor
        x [..., C] f32, w_q [F, C] int8, w_scale [F] f32, bias [F] f32 -> [..., F]

Their CPU implementations are the reference arithmetic (integers carried exactly in float32:
sums split into chunks whose partial sums stay below 2^24, the chunks added in float64), equal
bit for bit to the numpy reference (`tests/compress/test_quant.py`).

Module states. `QuantConv1d` / `QuantLinear` subclass nn.Conv1d / nn.Linear (so
`wispy.models.registry.output_lengths`, `model_config` and friends keep working). While training they
hold float weights and compute a *fake-quant* forward: the same arithmetic with the integers
carried in float32 and straight-through estimators at every rounding (so gradients reach the
float weights and, for RSQ, the Winograd-domain range). `freeze()` stores the int8 tensors
(w_q / u_q and their scales); `strip()` drops the float weights. A frozen module's eval forward
calls the custom op. `quantize()` returns frozen, stripped modules. BatchNorm layers that follow
a convolution are folded into it first (and become nn.Identity).

What the model records: `model.wispy_quant` = {"method", "winograd", "act_calib", ...,
"layers": {name: {"kind", "mode" ("direct" | "f23" | "f43"), "candidates" (the Winograd modes
legal for the layer), "why" (the reason for the mode), "calib": {"x_scale", "v_scale",
"err_direct", "err_f23", "err_f43", "ratio_f23", "ratio_f43", "clamp_f23", "clamp_f43"}}}};
`save_quantized` writes it beside the state dict. The compiler lowers each layer as its mode
says (the numbers depend on it); a different per-target choice is made by quantizing with
`winograd={name: mode}`.

Modes and the overflow rule. "auto" (the default) proposes F(4,3) for every dense (groups 1),
stride-1 Conv1d of at least 3 taps; calibration measures, on the calibration data, each
candidate's output error against float next to direct int8's, and a Winograd mode whose error
exceeds `overflow_ratio` (4) times the direct int8 error, i.e. one that loses more than 1 bit
(6 dB) of the layer's output SQNR to the range the transform adds, "overflows": the layer takes
F(2,3) instead, or direct int8 if that overflows too. Strided, 1-2 tap and grouped convolutions
and Linear layers are direct. An explicit "f23"/"f43" applies the rule to that mode only
(`overflow_ratio=None` keeps the requested mode whatever the error).
"""
from __future__ import annotations

import copy
import fnmatch
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from wispy.dialects.winograd import QMAX, WINOGRAD_TABLES, pieces, tile_grid

MODES = ("direct", "f23", "f43")
WINOGRAD_M = {"f23": 2, "f43": 4}
_EXACT_F32 = 2 ** 24  # integers below this are exact in float32


# ---------------------------------------------------------------------------------------------
# Straight-through rounding and the shared integer arithmetic (float tensors holding integers)


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


def quantize_ste(x: Tensor, scale: Tensor) -> Tensor:
    """clamp(roundeven(x / scale), -127, 127), integer-valued, float; STE gradient inside the
    range, zero outside (and the LSQ gradient for `scale` when it requires grad)."""
    return torch.clamp(round_ste(x / scale), -QMAX, QMAX)


def _matrices(m: int, dtype=torch.float32):
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


def winograd_core(x_q: Tensor, u_q: Tensor, v_mult: Tensor, m_scale: Tensor, bias: Optional[Tensor], m: int,
                  padding: int, dilation: int, taps: int, groups: int, exact: bool = True,
                  stats: Optional[dict] = None) -> Tensor:
    """The int8 Winograd convolution on integer-valued float tensors (x_q [B, C, T],
    u_q [F, C/g, P, m+2]); v_mult [m+2] = f32(x_scale / v_scale), m_scale [F, m+2] =
    f32(u_scale * v_scale). Differentiable (STE at the V requantization). `stats`, when given,
    receives V (the unrequantized transform, integer-valued) for calibration."""
    BT, _, AT = _matrices(m)
    z, T_out = winograd_tiles(x_q, m, taps, padding, dilation)
    V = torch.matmul(z, BT.t())  # [B, C, P, d, N, m+2], exact integers (|V| <= 1270)
    if stats is not None:
        stats["V"] = V.detach()
    Vq = torch.clamp(round_ste(V * v_mult), -QMAX, QMAX)
    if stats is not None:
        stats["clamped"] = (V * v_mult).detach().abs().gt(QMAX + 0.5)
    B, C, P, d, N, n = Vq.shape
    Fo, Cg = u_q.shape[:2]
    Vg = Vq.reshape(B, groups, Cg, P, d, N, n)
    Ug = u_q.reshape(groups, Fo // groups, Cg, P, n)
    if not exact or Cg * P * QMAX * QMAX < _EXACT_F32:
        M = torch.einsum("bgcqrnj,gfcqj->bgfrnj", Vg, Ug)
    else:  # exact: float32 sums over channel chunks, added in float64
        M = sum(torch.einsum("bgcqrnj,gfcqj->bgfrnj", Vg[:, :, sl], Ug[:, :, sl]).double()
                for sl in _chunks(Cg, P * QMAX * QMAX))
    M = M.reshape(B, Fo, d, N, n)
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


def winograd_weights(w: Tensor, m: int) -> Tensor:
    """U [F, C/g, P, m+2] = G g per 3-tap piece (float32, differentiable)."""
    Fo, Cg, K = w.shape
    P = pieces(K)
    wp = F.pad(w, (0, 3 * P - K)).reshape(Fo, Cg, P, 3)
    _, G, _ = _matrices(m, w.dtype)
    return torch.matmul(wp, G.t())


def per_channel_scale(w: Tensor, dims) -> Tensor:
    """max|w| / 127 over `dims` (detached; 1 where the slice is all zeros), float32."""
    a = w.detach().abs().amax(dim=dims).to(torch.float32) / QMAX
    return torch.where(a > 0, a, torch.ones_like(a))


def _f32(x: float) -> float:
    """x rounded to float32, as a Python float."""
    return float(np.float32(x))


# ---------------------------------------------------------------------------------------------
# The custom ops (what torch.export keeps and the compiler lowers)


@torch.library.custom_op("wispy::qconv1d", mutates_args=())
def qconv1d(x: Tensor, w_q: Tensor, w_scale: Tensor, x_scale: float, bias: Optional[Tensor], stride: int,
            padding: int, dilation: int, groups: int) -> Tensor:
    """int8 direct Conv1d (see the module docstring); CPU: the exact reference."""
    xs = torch.tensor(x_scale, dtype=torch.float32)
    x_q = torch.clamp(torch.round(x.to(torch.float32) / xs), -QMAX, QMAX)
    out_scale = xs * w_scale.to(torch.float32)
    return direct_core(x_q, w_q.to(torch.float32), out_scale, bias, stride, padding, dilation, groups)


@qconv1d.register_fake
def _qconv1d_fake(x, w_q, w_scale, x_scale, bias, stride, padding, dilation, groups):
    B, _, T = x.shape
    K = w_q.shape[2]
    return x.new_empty((B, w_q.shape[0], (T + 2 * padding - dilation * (K - 1) - 1) // stride + 1),
                       dtype=torch.float32)


@torch.library.custom_op("wispy::winograd_qconv1d", mutates_args=())
def winograd_qconv1d(x: Tensor, u_q: Tensor, u_scale: Tensor, v_scale: Tensor, x_scale: float,
                     bias: Optional[Tensor], m: int, padding: int, dilation: int, taps: int,
                     groups: int) -> Tensor:
    """int8 Winograd F(m, 3) Conv1d, stride 1 (see the module docstring); CPU: the exact reference."""
    xs = torch.tensor(x_scale, dtype=torch.float32)
    x_q = torch.clamp(torch.round(x.to(torch.float32) / xs), -QMAX, QMAX)
    vs = v_scale.to(torch.float32)
    return winograd_core(x_q, u_q.to(torch.float32), xs / vs, u_scale.to(torch.float32) * vs.view(1, -1), bias,
                         m, padding, dilation, taps, groups)


@winograd_qconv1d.register_fake
def _winograd_qconv1d_fake(x, u_q, u_scale, v_scale, x_scale, bias, m, padding, dilation, taps, groups):
    B, _, T = x.shape
    return x.new_empty((B, u_q.shape[0], T + 2 * padding - dilation * (taps - 1)), dtype=torch.float32)


@torch.library.custom_op("wispy::qlinear", mutates_args=())
def qlinear(x: Tensor, w_q: Tensor, w_scale: Tensor, x_scale: float, bias: Optional[Tensor]) -> Tensor:
    """int8 Linear (see the module docstring); CPU: the exact reference."""
    xs = torch.tensor(x_scale, dtype=torch.float32)
    x_q = torch.clamp(torch.round(x.to(torch.float32) / xs), -QMAX, QMAX)
    return linear_core(x_q, w_q.to(torch.float32), xs * w_scale.to(torch.float32), bias)


@qlinear.register_fake
def _qlinear_fake(x, w_q, w_scale, x_scale, bias):
    return x.new_empty((*x.shape[:-1], w_q.shape[0]), dtype=torch.float32)


# ---------------------------------------------------------------------------------------------
# Modules


class _QuantMixin:
    """What QuantConv1d and QuantLinear share: the activation scale (a float32 buffer mirrored as
    a Python float for the op), observing (calibration), frozen/stripped states."""

    def _init_quant(self):
        self.register_buffer("x_scale", torch.tensor(1.0))
        self._x_scale_value = 1.0
        self.frozen = False
        self.observer = None  # a callable(module, x) during calibration
        self.register_load_state_dict_post_hook(lambda mod, keys: mod._sync_scale())

    def _sync_scale(self):
        self._x_scale_value = _f32(float(self.x_scale))
        self.x_scale.fill_(self._x_scale_value)

    def set_x_scale(self, s: float):
        with torch.no_grad():
            self.x_scale.fill_(_f32(s))
        self._sync_scale()

    def forward(self, x: Tensor) -> Tensor:
        """Observing (calibration), the int8 custom op once frozen (in eval, or stripped), else
        the same arithmetic from the float weights (training)."""
        if self.observer is not None:
            return self.observer(self, x)
        if self.frozen and (not self.training or self.weight is None):
            return self.forward_int8(x)
        return self.forward_fake(x)

    def strip(self):
        """Drops the float weight (the frozen int8 tensors remain); bias stays float32."""
        if not self.frozen:
            raise RuntimeError("strip() before freeze() would lose the weights")
        if isinstance(getattr(self, "weight", None), nn.Parameter):
            del self.weight
            self.register_parameter("weight", None)
        return self


class QuantConv1d(_QuantMixin, nn.Conv1d):
    """An int8 nn.Conv1d: mode "direct" (any stride, padding, dilation, groups) or Winograd
    "f23" / "f43" (stride 1). Buffers: x_scale; direct: w_q int8 [F, C/g, K], w_scale [F];
    Winograd: u_q int8 [F, C/g, P, m+2], u_scale [F, m+2], v_scale [m+2]. RSQ adds the
    parameter `v_log_range` [m+2] while training: v_scale = x_scale * exp(v_log_range)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, mode: str = "direct"):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation,
                         groups=groups, bias=bias)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if isinstance(self.padding, str) or self.padding_mode != "zeros":
            raise ValueError("QuantConv1d needs an integer zero padding")
        if mode != "direct" and self.stride[0] != 1:
            raise ValueError(f"Winograd mode {mode} needs stride 1, not {self.stride[0]}")
        self.mode = mode
        self._init_quant()
        Fo, Cg, K = self.weight.shape
        if mode == "direct":
            self.register_buffer("w_q", torch.zeros(Fo, Cg, K, dtype=torch.int8))
            self.register_buffer("w_scale", torch.ones(Fo))
        else:
            n = self.m + 2
            self.register_buffer("u_q", torch.zeros(Fo, Cg, pieces(K), n, dtype=torch.int8))
            self.register_buffer("u_scale", torch.ones(Fo, n))
            self.register_buffer("v_scale", torch.ones(n))
        self.v_log_range = None

    @property
    def m(self) -> Optional[int]:
        return WINOGRAD_M.get(self.mode)

    @classmethod
    def from_float(cls, conv: nn.Conv1d, mode: str = "direct") -> "QuantConv1d":
        q = cls(conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.stride[0], conv.padding[0],
                conv.dilation[0], conv.groups, conv.bias is not None, mode)
        with torch.no_grad():
            q.weight.copy_(conv.weight)
            if conv.bias is not None:
                q.bias.copy_(conv.bias)
        return q.to(conv.weight.device)

    # -- scales ---------------------------------------------------------------------------

    def current_v_scale(self) -> Tensor:
        """v_scale: the learned range (RSQ) when present, else the buffer."""
        if self.v_log_range is not None:
            return self.x_scale * torch.exp(self.v_log_range)
        return self.v_scale

    def enable_range_training(self):
        """RSQ: makes the Winograd-domain scale a trained parameter, v_scale = x_scale *
        exp(v_log_range), initialised from the calibrated v_scale."""
        if self.m is None:
            return None
        with torch.no_grad():
            init = torch.log(self.v_scale / self.x_scale)
        self.v_log_range = nn.Parameter(init.clone())
        return self.v_log_range

    def disable_range_training(self):
        if self.v_log_range is not None:
            with torch.no_grad():
                self.v_scale.copy_(self.current_v_scale().to(torch.float32))
            self.v_log_range = None

    def quantized_weights(self) -> tuple[Tensor, Tensor]:
        """(integer-valued float q, scale) from the float weight: w_q, w_scale [F] (direct) or
        u_q, u_scale [F, m+2] (Winograd). Straight-through in training."""
        w = self.weight
        if self.m is None:
            s = per_channel_scale(w, (1, 2))
            return quantize_ste(w, s.view(-1, 1, 1)), s
        U = winograd_weights(w, self.m)
        s = per_channel_scale(U, (1, 2))  # [F, m+2]
        return quantize_ste(U, s.view(s.shape[0], 1, 1, -1)), s

    @torch.no_grad()
    def freeze(self):
        """Stores the int8 weights and their scales from the float weights (and the learned
        v_scale, for RSQ); eval forward then runs the custom op."""
        q, s = self.quantized_weights()
        if self.m is None:
            self.w_q.copy_(q.to(torch.int8))
            self.w_scale.copy_(s)
        else:
            self.u_q.copy_(q.to(torch.int8))
            self.u_scale.copy_(s)
            self.disable_range_training()
        self.frozen = True
        return self

    # -- forward (dispatched by _QuantMixin.forward) -------------------------------------------

    def forward_int8(self, x: Tensor) -> Tensor:
        """The custom op on the frozen int8 tensors."""
        if self.m is None:
            return torch.ops.wispy.qconv1d(x, self.w_q, self.w_scale, self._x_scale_value, self.bias,
                                           self.stride[0], self.padding[0], self.dilation[0], self.groups)
        return torch.ops.wispy.winograd_qconv1d(x, self.u_q, self.u_scale, self.v_scale, self._x_scale_value,
                                                self.bias, self.m, self.padding[0], self.dilation[0],
                                                self.kernel_size[0], self.groups)

    def forward_fake(self, x: Tensor) -> Tensor:
        """The same arithmetic from the float weights, straight-through (training)."""
        xs = self.x_scale
        x_q = quantize_ste(x, xs)
        q, s = self.quantized_weights()
        if self.m is None:
            return direct_core(x_q, q, xs * s, self.bias, self.stride[0], self.padding[0], self.dilation[0],
                               self.groups, exact=not self.training)
        vs = self.current_v_scale()
        return winograd_core(x_q, q, xs / vs, s * vs.view(1, -1), self.bias, self.m, self.padding[0],
                             self.dilation[0], self.kernel_size[0], self.groups, exact=not self.training)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", mode={self.mode}, x_scale={self._x_scale_value:.4g}" + \
            (", frozen" if self.frozen else "")


class QuantLinear(_QuantMixin, nn.Linear):
    """An int8 nn.Linear (direct): buffers x_scale, w_q int8 [F, C], w_scale [F]."""

    mode = "direct"
    m = None

    def __init__(self, in_features, out_features, bias=True, mode: str = "direct"):
        super().__init__(in_features, out_features, bias=bias)
        if mode != "direct":
            raise ValueError("QuantLinear is direct int8 only")
        self._init_quant()
        self.register_buffer("w_q", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("w_scale", torch.ones(out_features))

    @classmethod
    def from_float(cls, lin: nn.Linear, mode: str = "direct") -> "QuantLinear":
        q = cls(lin.in_features, lin.out_features, lin.bias is not None)
        with torch.no_grad():
            q.weight.copy_(lin.weight)
            if lin.bias is not None:
                q.bias.copy_(lin.bias)
        return q.to(lin.weight.device)

    def quantized_weights(self):
        s = per_channel_scale(self.weight, (1,))
        return quantize_ste(self.weight, s.view(-1, 1)), s

    @torch.no_grad()
    def freeze(self):
        q, s = self.quantized_weights()
        self.w_q.copy_(q.to(torch.int8))
        self.w_scale.copy_(s)
        self.frozen = True
        return self

    def forward_int8(self, x: Tensor) -> Tensor:
        return torch.ops.wispy.qlinear(x, self.w_q, self.w_scale, self._x_scale_value, self.bias)

    def forward_fake(self, x: Tensor) -> Tensor:
        q, s = self.quantized_weights()
        xs = self.x_scale
        return linear_core(quantize_ste(x, xs), q, xs * s, self.bias, exact=not self.training)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", x_scale={self._x_scale_value:.4g}" + (", frozen" if self.frozen else "")


QUANT_TYPES = (QuantConv1d, QuantLinear)


def quant_layers(model: nn.Module) -> dict:
    """{name: module} of the quantized layers."""
    return {n: m for n, m in model.named_modules() if isinstance(m, QUANT_TYPES)}


# ---------------------------------------------------------------------------------------------
# Preparing a float model: BatchNorm folding, choosing modes, swapping modules


def fold_batchnorm(model: nn.Module) -> list[str]:
    """Folds every BatchNorm1d that directly follows a Conv1d inside an nn.Sequential into the
    convolution (eval statistics) and replaces it with nn.Identity. Returns the folded names."""
    folded = []
    for pname, parent in model.named_modules():
        if not isinstance(parent, nn.Sequential):
            continue
        names = list(parent._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = parent._modules[a], parent._modules[b]
            if type(conv) is nn.Conv1d and isinstance(bn, nn.BatchNorm1d) and bn.track_running_stats:
                with torch.no_grad():
                    inv = (bn.running_var + bn.eps).rsqrt()
                    g = bn.weight * inv if bn.affine else inv
                    beta = bn.bias if bn.affine else torch.zeros_like(g)
                    b0 = conv.bias if conv.bias is not None else torch.zeros_like(g)
                    conv.weight.mul_(g.view(-1, 1, 1))
                    new_b = (b0 - bn.running_mean) * g + beta
                    if conv.bias is None:
                        conv.bias = nn.Parameter(new_b)
                    else:
                        conv.bias.copy_(new_b)
                parent._modules[b] = nn.Identity()
                folded.append(f"{pname}.{b}" if pname else b)
    return folded


def winograd_candidates(conv: nn.Conv1d) -> list[str]:
    """The Winograd modes legal for a Conv1d: stride 1 and at least 3 taps (any dilation,
    groups, padding); F(4,3) first."""
    if conv.stride[0] != 1 or conv.kernel_size[0] < 3 or isinstance(conv.padding, str):
        return []
    return ["f43", "f23"]


def legal_modes(conv: nn.Conv1d, per_layer: bool = False) -> list[str]:
    """"direct" and the Winograd modes `conv` may take: stride 1 and >= 3 taps, and groups 1
    unless the modes were given layer by layer (a dict)."""
    if conv.groups != 1 and not per_layer:
        return ["direct"]
    return ["direct"] + winograd_candidates(conv)


def _selected(name: str, layers) -> bool:
    if layers in (None, "all"):
        return True
    if isinstance(layers, str):
        layers = [layers]
    return any(fnmatch.fnmatchcase(name, p) for p in layers)


def _requested_mode(name: str, conv: nn.Module, winograd) -> Union[str, None]:
    """The mode asked for a layer: "auto", "direct", "f23" or "f43" (None: auto)."""
    if isinstance(winograd, dict):
        for pat, mode in winograd.items():
            if fnmatch.fnmatchcase(name, pat):
                return mode
        return "direct"
    if winograd in (None, "off", False):
        return "direct"
    return winograd


def _replace(model: nn.Module, name: str, new: nn.Module):
    parent = model
    *path, last = name.split(".")
    for p in path:
        parent = getattr(parent, p)
    setattr(parent, last, new)


def prepare(model: nn.Module, winograd: Union[str, dict] = "auto", layers="all", fold_bn: bool = True) -> nn.Module:
    """A deep copy of `model` with BatchNorm folded and every selected nn.Conv1d / nn.Linear
    replaced by its quantized module (not yet calibrated). `winograd`: "auto" (F(4,3) for every
    dense (groups 1) stride-1 conv of >= 3 taps, settled by calibration's overflow rule), "f43"
    or "f23" (that mode for those layers), "off" (all direct), or {name pattern: mode} per layer
    (a pattern's mode may be "auto"; layers matching no pattern are direct; explicit modes
    apply to grouped convolutions too)."""
    if isinstance(winograd, str) and winograd not in ("auto", "off", "f23", "f43", "direct"):
        raise ValueError(f"winograd must be auto, off, f23, f43 or a dict, not {winograd!r}")
    q = copy.deepcopy(model).eval()
    for p in q.parameters():
        p.requires_grad_(True)
    folded = fold_batchnorm(q) if fold_bn else []
    info = {}
    for name, mod in list(q.named_modules()):
        if type(mod) not in (nn.Conv1d, nn.Linear) or not _selected(name, layers):
            continue
        if type(mod) is nn.Linear:
            _replace(q, name, QuantLinear.from_float(mod))
            info[name] = {"kind": "linear", "mode": "direct", "candidates": [], "why": "linear layer"}
            continue
        cands = winograd_candidates(mod)
        want = _requested_mode(name, mod, winograd)
        legal = legal_modes(mod, isinstance(winograd, dict))
        if want == "auto":
            mode = legal[1] if len(legal) > 1 else "direct"
            why = "auto (pending calibration)" if len(legal) > 1 else _why_direct(mod)
        elif want in ("f23", "f43"):
            mode, why = (want, "requested") if want in legal else ("direct", _why_direct(mod))
        else:
            mode, why = "direct", "requested" if want == "direct" and winograd not in ("off", None) else "winograd off"
        _replace(q, name, QuantConv1d.from_float(mod, mode))
        info[name] = {"kind": "conv1d", "mode": mode, "candidates": cands, "why": why,
                      "auto": want == "auto" and mode != "direct"}
    q.wispy_quant = {"winograd": winograd if not isinstance(winograd, dict) else dict(winograd),
                     "folded_batchnorm": folded, "layers": info}
    if hasattr(model, "wispy_config"):
        q.wispy_config = copy.deepcopy(model.wispy_config)
    return q


def with_winograd(qmodel: nn.Module, winograd: Union[str, dict]) -> nn.Module:
    """A copy of a quantized model with its int8 Conv1d layers lowered as `winograd` asks:
    "off" (every layer direct int8), "f23" or "f43" (every stride-1 layer of 3 or more
    taps, groups 1, in that Winograd form; the others direct), or a dict of layer-name
    patterns to modes; "auto" returns the model as quantized. A layer whose mode changes is
    re-quantized from its float weight at the same activation scale; a new Winograd layer
    takes the worst-case range of the transformed input (it never clamps; RSQ or
    calibration would tighten it). Raises ValueError, naming the layer, when its float
    weight was stripped, and when the model has no int8 Conv1d layer at all."""
    if winograd == "auto":
        return qmodel
    if not isinstance(winograd, dict) and winograd not in ("off", "f23", "f43"):
        raise ValueError(f"winograd must be 'auto', 'off', 'f23', 'f43', 'measure' (compile_model) or a dict, "
                         f"not {winograd!r}")
    convs = [(n, m) for n, m in qmodel.named_modules() if isinstance(m, QuantConv1d)]
    if not convs:
        raise ValueError(f"winograd={winograd!r} chooses how int8 Conv1d layers are computed, and this model "
                         "has none: quantize it first (wispy.compress.quantize)")
    q = copy.deepcopy(qmodel)
    info = getattr(q, "wispy_quant", {}).get("layers", {})
    for name, mod in convs:
        want = _requested_mode(name, mod, winograd)
        mode = want if want in legal_modes(mod, isinstance(winograd, dict)) else "direct"
        if mode == mod.mode:
            continue
        if getattr(mod, "weight", None) is None:
            raise ValueError(f"int8 layer {name!r} is {mod.mode} and its float weight was stripped, so it cannot "
                             f"become {mode}: quantize with winograd={winograd!r}, or with strip=False to let "
                             "compile_model choose")
        new = QuantConv1d.from_float(mod, mode)
        new.set_x_scale(float(mod.x_scale))
        if new.m is not None:
            with torch.no_grad():
                new.v_scale.copy_(_matrices(new.m)[0].abs().sum(1) * new.x_scale)
        new.freeze()
        _replace(q, name, new.eval())
        if name in info:
            info[name] = {**info[name], "mode": mode, "why": f"compile_model(winograd={winograd!r})"}
    return q


def _why_direct(conv: nn.Conv1d) -> str:
    if conv.stride[0] != 1:
        return f"stride {conv.stride[0]} (Winograd needs stride 1)"
    if conv.kernel_size[0] < 3:
        return f"{conv.kernel_size[0]} tap(s) (Winograd F(m,3) needs >= 3)"
    if conv.groups != 1:
        return f"groups={conv.groups} (auto keeps grouped/depthwise convolutions direct)"
    return "direct"


# ---------------------------------------------------------------------------------------------
# Calibration


class RangeObserver:
    """Collects |values| for a symmetric range: "max" (running max) or "pXX.X" (the XX.X-th
    percentile of |values|, from a bounded uniform subsample, seeded)."""

    def __init__(self, method: str = "max", channels: Optional[int] = None, max_samples: int = 2_000_000,
                 seed: int = 0):
        if method not in ("max", "bound") and not (method.startswith("p") and 0 < float(method[1:]) <= 100):
            raise ValueError(f"range method must be 'max' or 'pXX' (a percentile), not {method!r}")
        self.method, self.channels = method, channels
        self.max = None
        self.samples: list = []
        self.n = 0
        self.max_samples = max_samples
        self.gen = torch.Generator().manual_seed(seed)

    def update(self, a: Tensor):
        """a: |values|, flattened per channel when `channels` ([channels, n]) else any shape."""
        a = a.detach().abs().to(torch.float32)
        a = a.reshape(self.channels, -1) if self.channels else a.reshape(1, -1)
        mx = a.amax(dim=1)
        self.max = mx if self.max is None else torch.maximum(self.max, mx)
        if self.method != "max":
            k = min(a.shape[1], max(1, self.max_samples // 16))
            idx = torch.randint(0, a.shape[1], (k,), generator=self.gen) if k < a.shape[1] else slice(None)
            self.samples.append(a[:, idx])
            self.n += k

    def range(self) -> Tensor:
        if self.max is None:
            raise RuntimeError("RangeObserver saw no data")
        if self.method in ("max", "bound") or not self.samples:
            r = self.max
        else:
            s = torch.cat(self.samples, dim=1)
            if s.shape[1] > self.max_samples:
                s = s[:, torch.randperm(s.shape[1], generator=self.gen)[:self.max_samples]]
            q = float(self.method[1:]) / 100
            r = torch.stack([torch.quantile(row.double(), q).float() if row.numel() <= 16_000_000
                             else row.max() for row in s])
            r = torch.minimum(r, self.max)
        return torch.where(r > 0, r, torch.ones_like(r))


def _batches_of(calibration_data) -> list:
    """A tensor -> [it]; an iterable of tensors or of tuples (input first) -> its inputs."""
    if isinstance(calibration_data, Tensor):
        return [calibration_data]
    out = []
    for b in calibration_data:
        out.append(b[0] if isinstance(b, (tuple, list)) else b)
    if not out:
        raise ValueError("calibration_data is empty")
    return out


@torch.no_grad()
def calibrate(qmodel: nn.Module, calibration_data, *, act_calib: str = "max", v_calib: Optional[str] = None,
              overflow_ratio: Optional[float] = 4.0, progress: bool = False) -> dict:
    """Post-training calibration of a `prepare`d model on `calibration_data` (a tensor or an
    iterable of input batches), in three passes over it, each layer fed the float model's
    activations:

    1. x_scale = range(|x|) / 127 of each quantized layer's input (`act_calib`: "max" or a
       percentile "p99.99");
    2. for every Winograd candidate mode of a conv (F(4,3), F(2,3)), the range of the input
       transform V = B^T z (z the quantized input tiles) per Winograd position j:
       v_scale[j] = x_scale * range(|V_j|) / 127 (`v_calib`, default `act_calib`; "bound" takes
       the worst case instead, range = 127 * sum_l |B^T[j, l]|, which can never clamp);
    3. the layer's relative output error ||y_q - y||^2 / ||y||^2 against float, for direct int8
       and each Winograd candidate, and the fraction of V values the int8 requantization clamps.

    The overflow rule: the transform widens the range, so V needs a coarser int8 step than the
    input (or saturates); a Winograd mode "overflows" when its error exceeds `overflow_ratio`
    times the direct int8 error of the same layer on the calibration data (the precision lost
    to the widened range, measured). An "auto" layer takes F(4,3) unless it overflows, then
    F(2,3) unless it overflows, then direct; an explicitly requested mode that overflows falls
    back to direct too (overflow_ratio=None disables the rule). Returns per-layer stats (also
    stored in `qmodel.wispy_quant["layers"][name]["calib"]`)."""
    from tqdm import tqdm

    batches = _batches_of(calibration_data)
    layers = quant_layers(qmodel)
    info = qmodel.wispy_quant["layers"]
    v_calib = v_calib or act_calib
    was_training = qmodel.training
    qmodel.eval()

    def run(desc):
        for b in tqdm(batches, desc=desc, unit="batch", leave=False, disable=not progress):
            qmodel(b)

    def float_out(mod, x):
        if isinstance(mod, QuantLinear):
            return F.linear(x, mod.weight, mod.bias)
        return F.conv1d(x, mod.weight, mod.bias, mod.stride, mod.padding, mod.dilation, mod.groups)

    # pass 1: activation ranges
    obs = {n: RangeObserver(act_calib) for n in layers}
    for n, mod in layers.items():
        mod.observer = (lambda o: (lambda m_, x: (o.update(x), float_out(m_, x))[1]))(obs[n])
    try:
        run("calibrating activations")
        for n, mod in layers.items():
            mod.set_x_scale(float(obs[n].range()[0]) / QMAX)

        # pass 2: Winograd-domain ranges per candidate
        wobs = {}
        for n, mod in layers.items():
            cands = info[n]["candidates"] if info[n].get("auto") or mod.m else []
            cands = [c for c in cands if c == mod.mode or info[n].get("auto")]
            if not cands:
                mod.observer = lambda m_, x: float_out(m_, x)
                continue
            wobs[n] = {c: RangeObserver(v_calib, channels=WINOGRAD_M[c] + 2) for c in cands}

            def observe_v(m_, x, o=wobs[n]):
                x_q = torch.clamp(torch.round(x / m_.x_scale), -QMAX, QMAX)
                for c, ob in o.items():
                    BT = _matrices(WINOGRAD_M[c])[0]
                    z, _ = winograd_tiles(x_q, WINOGRAD_M[c], m_.kernel_size[0], m_.padding[0], m_.dilation[0])
                    V = torch.matmul(z, BT.t())
                    ob.update(V.reshape(-1, V.shape[-1]).t())
                return float_out(m_, x)

            mod.observer = observe_v
        run("calibrating Winograd ranges")
        def v_range(c, o):
            if v_calib == "bound":  # the worst case: |V_j| <= ||B^T row j||_1 * 127, never clamps
                return _matrices(WINOGRAD_M[c])[0].abs().sum(1) * QMAX
            return o.range()

        v_scales = {n: {c: (v_range(c, o) * layers[n].x_scale / QMAX).to(torch.float32) for c, o in d.items()}
                    for n, d in wobs.items()}

        # pass 3: errors of each candidate against float
        errs = {n: {} for n in layers}

        def add(d, key, num, den):
            a, b = d.get(key, (0.0, 0.0))
            d[key] = (a + num, b + den)

        for n, mod in layers.items():
            def observe_err(m_, x, n=n):
                y = float_out(m_, x)
                den = float(y.double().pow(2).sum())
                x_q = torch.clamp(torch.round(x / m_.x_scale), -QMAX, QMAX)
                xs = m_.x_scale
                if isinstance(m_, QuantLinear):
                    wq, s = m_.quantized_weights()
                    yd = linear_core(x_q, wq, xs * s, m_.bias)
                else:
                    w = m_.weight
                    s = per_channel_scale(w, (1, 2))
                    wq = torch.clamp(torch.round(w / s.view(-1, 1, 1)), -QMAX, QMAX)
                    yd = direct_core(x_q, wq, xs * s, m_.bias, m_.stride[0], m_.padding[0], m_.dilation[0],
                                     m_.groups)
                add(errs[n], "direct", float((yd - y).double().pow(2).sum()), den)
                for c, vs in v_scales.get(n, {}).items():
                    mm = WINOGRAD_M[c]
                    U = winograd_weights(m_.weight, mm)
                    su = per_channel_scale(U, (1, 2))
                    uq = torch.clamp(torch.round(U / su.view(su.shape[0], 1, 1, -1)), -QMAX, QMAX)
                    st = {}
                    yw = winograd_core(x_q, uq, xs / vs, su * vs.view(1, -1), m_.bias, mm, m_.padding[0],
                                       m_.dilation[0], m_.kernel_size[0], m_.groups, stats=st)
                    add(errs[n], c, float((yw - y).double().pow(2).sum()), den)
                    add(errs[n], "clamp_" + c, float(st["clamped"].sum()), float(st["clamped"].numel()))
                return y

            mod.observer = observe_err
        run("measuring quantization error")
    finally:
        for mod in layers.values():
            mod.observer = None
    qmodel.train(was_training)

    # decisions
    out = {}
    for n, mod in layers.items():
        e = {k: (a / b if b > 0 else 0.0) for k, (a, b) in errs[n].items()}
        cal = {"x_scale": mod._x_scale_value, "err_direct": e.get("direct")}
        for c in ("f43", "f23"):
            if c in e:
                cal[f"err_{c}"] = e[c]
                cal[f"ratio_{c}"] = e[c] / max(e["direct"], 1e-30)
                cal[f"clamp_{c}"] = e["clamp_" + c]
                cal[f"v_scale_{c}"] = [float(v) for v in v_scales[n][c]]
        rec = info[n]
        if mod.m is not None or rec.get("auto"):
            ok = [c for c in (v_scales.get(n) or {}) if overflow_ratio is None or cal[f"ratio_{c}"] <= overflow_ratio]
            if rec.get("auto"):
                choice = next((c for c in ("f43", "f23") if c in ok), "direct")
                why = (f"auto: {choice}" if choice != "direct" else
                       f"auto: Winograd overflows (error ratio > {overflow_ratio:g} x direct)")
                if choice == "f23":
                    why += f" (F(4,3) overflows: error ratio {cal['ratio_f43']:.2f} > {overflow_ratio:g})"
            else:
                choice = mod.mode if mod.mode in ok else "direct"
                why = "requested" if choice != "direct" else (
                    f"{mod.mode} overflows (error ratio {cal['ratio_' + mod.mode]:.2f} > {overflow_ratio:g})")
            if choice != mod.mode:
                new = _rebuild(mod, choice)
                _replace(qmodel, n, new)
                mod = new
            if mod.m is not None:
                mod.v_scale.copy_(v_scales[n][mod.mode])
            rec["mode"], rec["why"] = choice, why
        if mod.m is not None:
            cal["v_scale"] = [float(v) for v in mod.v_scale]
        rec["calib"] = cal
        out[n] = cal
    qmodel.wispy_quant.update(act_calib=act_calib, v_calib=v_calib, overflow_ratio=overflow_ratio,
                              calibration_batches=len(batches))
    return out


def _rebuild(mod: QuantConv1d, mode: str) -> QuantConv1d:
    new = QuantConv1d(mod.in_channels, mod.out_channels, mod.kernel_size[0], mod.stride[0], mod.padding[0],
                      mod.dilation[0], mod.groups, mod.bias is not None, mode)
    with torch.no_grad():
        new.weight.copy_(mod.weight)
        if mod.bias is not None:
            new.bias.copy_(mod.bias)
    new.set_x_scale(mod._x_scale_value)
    new.train(mod.training)
    return new


# ---------------------------------------------------------------------------------------------
# Freezing, saving, loading


def freeze(qmodel: nn.Module, strip: bool = True) -> nn.Module:
    """Stores every quantized layer's int8 tensors (`QuantConv1d.freeze`) and, with `strip`,
    drops the float weights; the model is left in eval mode."""
    for mod in quant_layers(qmodel).values():
        mod.freeze()
        if strip:
            mod.strip()
    return qmodel.eval()


def save_quantized(qmodel: nn.Module, path, **extra) -> None:
    """Writes {"model": state_dict, "config": wispy_config, "quant": wispy_quant, **extra}."""
    from wispy.training.ctc import save_checkpoint as _atomic_save

    obj = {"model": qmodel.state_dict(), "config": getattr(qmodel, "wispy_config", None),
           "quant": getattr(qmodel, "wispy_quant", None), **extra}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    _atomic_save(obj, Path(path))


def load_quantized(path_or_ckpt, model: Optional[nn.Module] = None) -> nn.Module:
    """Rebuilds a quantized model saved by `save_quantized` (frozen, eval mode). The float
    architecture comes from `model` or the checkpoint's config (`wispy.models.registry.build_model`)."""
    ck = path_or_ckpt if isinstance(path_or_ckpt, dict) else torch.load(path_or_ckpt, map_location="cpu",
                                                                        weights_only=False)
    quant = ck["quant"]
    if model is None:
        from wispy.models.registry import build_model

        model = build_model(ck["config"])
    modes = {n: r["mode"] for n, r in quant["layers"].items()}
    q = prepare(model, winograd=dict(modes), layers=list(modes), fold_bn=bool(quant.get("folded_batchnorm")))
    for n, mod in quant_layers(q).items():
        mod.frozen = True
        mod.strip()
    q.load_state_dict(ck["model"])
    q.wispy_quant = quant
    if ck.get("config") is not None:
        q.wispy_config = ck["config"]
    return q.eval()


# ---------------------------------------------------------------------------------------------
# The entry point


def quantize(model: nn.Module, calibration_data, method: str = "ptq", winograd: Union[str, dict] = "auto", *,
             corpus_dir=None, epochs: float = 1, teacher: Optional[nn.Module] = None, layers="all",
             act_calib: str = "max", v_calib: Optional[str] = None, overflow_ratio: Optional[float] = 4.0,
             lr: float = 3e-4, range_lr: float = 1e-2, kd_weight: Optional[float] = None,
             batch_size: int = 16, max_batches: Optional[int] = None, out_dir=None, resume: bool = True,
             seed: int = 0, progress: bool = True, strip: bool = True, data: Optional[dict] = None) -> nn.Module:
    """Returns an int8 copy of `model` (the float model is not changed) that `compile_model`
    compiles to int8 code: its quantized layers run the `wispy::` custom ops.

    method      "ptq": calibration only (`calibrate`); "qat": then quantization-aware training
                with CTC on `corpus_dir` (fake-quant in the direct or Winograd domain, with the
                calibrated ranges held); "rsq": Range-Scaled Quantization: Winograd-domain QAT
                whose Winograd-domain ranges (v_scale) are trained too, plus knowledge
                distillation from the float model (`wispy.compress.rsq`)
    winograd    "auto" | "off" | "f23" | "f43" | {layer pattern: mode} (see `prepare`)
    calibration_data  a tensor [B, C, T] (or the model's input layout) or an iterable of batches
    epochs      training epochs over the corpus' train split (fractions allowed: `max_batches`
                per epoch is then scaled); qat/rsq only
    teacher     the distillation teacher (default: `model` itself, float); rsq only
    kd_weight   weight of the distillation term (default 0 for qat, 1 for rsq)
    act_calib / v_calib / overflow_ratio   see `calibrate`
    lr / range_lr   Adam learning rates of the weights and of the RSQ ranges (cosine decay)
    out_dir     training checkpoints (qat_last.pt per epoch, resumable; best.pt; quantized.pt)
    strip       drop the float weights from the result (keeps only int8 tensors, scales, biases)
    The result carries `wispy_quant` (see the module docstring) and `wispy_config` (the float
    model's, when it has one)."""
    if method not in ("ptq", "qat", "rsq"):
        raise ValueError(f"method must be ptq, qat or rsq, not {method!r}")
    if method != "ptq" and corpus_dir is None and data is None:
        raise ValueError(f"method={method!r} trains: pass corpus_dir")
    q = prepare(model, winograd, layers)
    q.wispy_quant["method"] = method
    calibrate(q, calibration_data, act_calib=act_calib, v_calib=v_calib, overflow_ratio=overflow_ratio,
              progress=progress)
    if method in ("qat", "rsq"):
        from wispy.compress.rsq import qat_train

        rsq = method == "rsq"
        info = qat_train(q, corpus_dir, epochs=epochs, lr=lr, range_lr=range_lr, learn_range=rsq,
                         teacher=(teacher if teacher is not None else model) if rsq or kd_weight else None,
                         kd_weight=kd_weight if kd_weight is not None else (1.0 if rsq else 0.0),
                         batch_size=batch_size, max_batches=max_batches, out_dir=out_dir, resume=resume,
                         seed=seed, progress=progress, data=data)
        q.wispy_quant["training"] = {k: v for k, v in info.items() if k != "model"}
    freeze(q, strip=strip)
    for n, mod in quant_layers(q).items():
        rec = q.wispy_quant["layers"][n]
        rec["mode"] = mod.mode
        if mod.m is not None:
            rec.setdefault("calib", {})["v_scale_final"] = [float(v) for v in mod.v_scale]
    if out_dir is not None:
        save_quantized(q, Path(out_dir) / "quantized.pt")
    return q


def quant_summary(qmodel: nn.Module) -> str:
    """One line per quantized layer: name, shape, mode and why, calibration errors."""
    lines = []
    for n, mod in quant_layers(qmodel).items():
        rec = qmodel.wispy_quant["layers"].get(n, {})
        cal = rec.get("calib", {})
        shape = (f"{mod.in_channels}->{mod.out_channels} k{mod.kernel_size[0]} s{mod.stride[0]} "
                 f"d{mod.dilation[0]} g{mod.groups}" if isinstance(mod, QuantConv1d)
                 else f"{mod.in_features}->{mod.out_features}")
        errs = "  ".join(f"{k}={cal[k]:.2e}" for k in ("err_direct", "err_f23", "err_f43") if k in cal)
        lines.append(f"{n:24s} {shape:28s} {mod.mode:6s} {errs}  ({rec.get('why', '')})")
    return "\n".join(lines)

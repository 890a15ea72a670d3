"""The int8 arithmetic of wispy's quantized Conv1D, written once in numpy with int64 integers:
the specification that the `wispy::` int8 ops (`wispy.dialects.quant`, PyTorch), their lowering
(`wispy.dialects.quant_lowering`) and the training side (`wispy.compress.quant`) reproduce.
Nothing here is approximate: every integer is exact and every float step is a single float32
operation whose order is stated.

Notation: a Conv1d with F output channels, C input channels, `groups` groups (C/g inputs and
F/g outputs per group), K taps, stride s, zero padding p on both sides, dilation d. Input
x [B, C, T] float32, output y [B, F, T_out], T_out = floor((T + 2p - d(K-1) - 1) / s) + 1.

1. Activation quantization (symmetric, per tensor, scale x_scale > 0, a float32 number):

       x_q = clamp(roundeven(x / x_scale), -127, 127)                  (float32 division)

   Zero padding is 0 in the integer domain (x_q is padded, not x).

2. Direct int8 convolution (`direct_int8_conv1d`), w_q int8 [F, C/g, K], w_scale float32 [F]:

       acc[b, f, t] = sum_{c in group(f), k} w_q[f, c, k] * x_q_pad[b, c, t*s + k*d]   (int32)
       y[b, f, t]   = f32(acc) * out_scale[f] + bias[f]
       out_scale[f] = f32(x_scale * w_scale[f])                        (one float32 multiply)

   `f32(acc)` is the int32 -> float32 conversion (round to nearest even); the multiply and the
   add are separate float32 operations (a fused multiply-add may differ in the last bit).
   Linear layers are the same with K = 1, T = 1 (`direct_int8_linear`).

3. Winograd F(m, 3), m in {2, 4}, stride 1, any dilation d (`winograd_int8_conv1d`).
   Matrices (`winograd_matrices`): B^T [(m+2), (m+2)] integer, G [(m+2), 3] rational,
   A^T [m, (m+2)] integer (interpolation points 0, 1, -1, inf for F(2,3); 0, 1, -1, 2, -2, inf
   for F(4,3)); for a 3-tap correlation y[i] = sum_k g[k] z[i+k] (i < m), exactly
   y = A^T ((G g) * (B^T z)).

   Pieces: a K-tap kernel is split into P = ceil(K/3) pieces of 3 taps, piece q holding taps
   3q, 3q+1, 3q+2 (taps past K are zero). Every piece is a 3-tap dilated convolution of the
   same input shifted by 3q*d; the pieces' products are summed in the Winograd domain, before
   the output transform.

   Weights (made in float64 by `winograd_weights`, quantized per output channel and position):

       U[f, c, q, j] = sum_k G[j, k] * w[f, c, 3q + k]
       u_scale[f, j] = max_{c, q} |U[f, c, q, j]| / 127      (or any positive float32 scale)
       u_q[f, c, q, j] = clamp(roundeven(U / u_scale[f, j]), -127, 127)   int8 [F, C/g, P, m+2]

   Tiles: the padded input x_q_pad (length T + 2p) is extended with zeros on the right as far
   as the tiles read. Output t belongs to residue r = t mod d and tile n = (t div d) div m, at
   row i = (t div d) mod m. Tile (r, n) of piece q reads the m+2 inputs

       z[j] = x_q_ext[r + d * (n*m + 3q + j)],      j = 0 .. m+1

   Input transform (exact integers, |V| <= 10*127), then requantization to int8 with one
   float32 scale per Winograd position, v_scale[j] (shared by all channels, pieces, tiles):

       V[j]     = sum_l B^T[j, l] * z[l]                                        (int32)
       V_q[j]   = clamp(roundeven(f32(V[j]) * v_mult[j]), -127, 127)           (float32 multiply)
       v_mult[j] = f32(x_scale / v_scale[j])                                    (float32 division)

   Products per Winograd position, accumulated over channels and pieces (int32; |M| <=
   (C/g) * P * 127^2, which fits int32 for (C/g) * P < 133,000):

       M[b, f, r, n, j] = sum_{c in group(f), q} u_q[f, c, q, j] * V_q[b, c, q, r, n, j]

   Output transform in float32, then the bias:

       Mf[j]     = f32(M[j]) * m_scale[f, j],   m_scale[f, j] = f32(u_scale[f, j] * v_scale[j])
       y[i]      = sum over j = 0 .. m+1 with A^T[i, j] != 0, in that order, of A^T[i, j] * Mf[j]
                   (A^T's entries are 1, -1, 2, -2, 4, -4, 8, -8: the products are exact)
       y[b, f, (n*m + i)*d + r] = y[i] + bias[f]                   (outputs past T_out dropped)

   With v_scale[j] = x_scale (v_mult = 1) and |V| <= 127 nothing is requantized, and with
   u_scale[f, j] = w_scale[f] / lambda_m (lambda_2 = 2, lambda_4 = 24) the integer U of a
   quantized kernel w_q is exact: then A^T M = lambda_m * acc of the direct convolution, bit for
   bit (`tests/dialects/test_winograd.py` checks it).

Why requantize V: the transforms widen the range (|B^T z| up to 2x the input range for
F(2,3), 10x for F(4,3)), and the int8 products need int8 operands. v_scale is where
Range-Scaled Quantization acts: plain int8 Winograd takes it from calibration (the range of V
on calibration data), RSQ trains it (`wispy.compress.rsq`).
"""
from __future__ import annotations

from fractions import Fraction
from typing import Optional

import numpy as np

QMAX = 127  # symmetric int8: [-127, 127]; -128 is never produced

# Interpolation points (inf last) of the Winograd/Toom-Cook algorithms F(m, 3).
POINTS = {2: (0, 1, -1), 4: (0, 1, -1, 2, -2)}
# Scale making G's entries integers (the denominators' lcm): lambda * G is an integer matrix.
G_DENOMINATOR = {2: 2, 4: 24}


def winograd_matrices(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(B^T int64 [(m+2), (m+2)], G float64 [(m+2), 3], A^T int64 [m, (m+2)]) of F(m, 3), with
    y = A^T ((G g) * (B^T z)) the correlation y[i] = sum_k g[k] z[i + k]. m in {2, 4}.

    F(2,3):  B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
             G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
             A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]
    F(4,3):  B^T = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                    [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
             G   = [[1/4, 0, 0], [-1/6, -1/6, -1/6], [-1/6, 1/6, -1/6],
                    [1/24, 1/12, 1/6], [1/24, -1/12, 1/6], [0, 0, 1]]
             A^T = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]
    """
    if m not in WINOGRAD_TABLES:
        raise ValueError(f"Winograd F(m, 3) is implemented for m in {sorted(WINOGRAD_TABLES)}, not {m}")
    BT, G, AT = WINOGRAD_TABLES[m]
    return np.array(BT, dtype=np.int64), np.array(G, dtype=np.float64), np.array(AT, dtype=np.int64)


# The standard tables (Lavin & Gray 2016), spelled out: these are the contract. `_check_tables`
# (run by the tests) verifies them against the exact correlation identity with Fractions.
WINOGRAD_TABLES = {
    2: ([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
        [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]],
        [[1, 1, 1, 0], [0, 1, -1, -1]]),
    4: ([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
         [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
        [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
         [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
        [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]),
}
_G_EXACT = {
    2: [[Fraction(1), 0, 0], [Fraction(1, 2)] * 3, [Fraction(1, 2), Fraction(-1, 2), Fraction(1, 2)], [0, 0, 1]],
    4: [[Fraction(1, 4), 0, 0], [Fraction(-1, 6)] * 3, [Fraction(-1, 6), Fraction(1, 6), Fraction(-1, 6)],
        [Fraction(1, 24), Fraction(1, 12), Fraction(1, 6)], [Fraction(1, 24), Fraction(-1, 12), Fraction(1, 6)],
        [0, 0, 1]],
}


def check_tables() -> None:
    """Raises unless A^T ((G g) * (B^T z)) == the 3-tap correlation of z, exactly (Fractions),
    for every m, on the basis vectors of g and z (the identity is bilinear)."""
    for m, (BT, _, AT) in WINOGRAD_TABLES.items():
        G = _G_EXACT[m]
        n = m + 2
        for a in range(3):
            for b in range(n):
                U = [Fraction(G[j][a]) for j in range(n)]                    # G e_a
                V = [Fraction(BT[j][b]) for j in range(n)]                   # B^T e_b
                y = [sum(AT[i][j] * U[j] * V[j] for j in range(n)) for i in range(m)]
                want = [Fraction(1 if b == i + a else 0) for i in range(m)]  # sum_k e_a[k] e_b[i+k]
                if y != want:
                    raise AssertionError(f"F({m},3) tables wrong for g=e{a}, z=e{b}: {y} != {want}")


def pieces(taps: int) -> int:
    """Number of 3-tap pieces of a `taps`-tap kernel."""
    return -(-int(taps) // 3)


def output_length(T: int, taps: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    return (T + 2 * padding - dilation * (taps - 1) - 1) // stride + 1


# ---------------------------------------------------------------------------------------------
# The reference (numpy, int64 integers, float32 scales)


def f32(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def quantize_activation(x: np.ndarray, x_scale: float) -> np.ndarray:
    """x_q = clamp(roundeven(x / x_scale), -127, 127) in float32, returned as int64."""
    q = np.rint(f32(x) / np.float32(x_scale))  # np.rint rounds half to even
    return np.clip(q, -QMAX, QMAX).astype(np.int64)


def quantize_per_channel(w: np.ndarray, scale: np.ndarray, axis: int = 0) -> np.ndarray:
    """clamp(roundeven(w / scale), -127, 127) with `scale` along `axis`, in float32 -> int8."""
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.rint(f32(w) / f32(scale).reshape(shape))
    return np.clip(q, -QMAX, QMAX).astype(np.int8)


def max_abs_scale(w: np.ndarray, axis) -> np.ndarray:
    """float32 max|w| / 127 reduced over `axis` (a tensor of zeros gets scale 1)."""
    a = np.abs(np.asarray(w, dtype=np.float64)).max(axis=axis) / QMAX
    return f32(np.where(a > 0, a, 1.0))


def direct_int8_acc(x_q: np.ndarray, w_q: np.ndarray, stride: int = 1, padding: int = 0, dilation: int = 1,
                    groups: int = 1) -> np.ndarray:
    """acc [B, F, T_out] int64 of the direct int8 convolution (step 2 of the module docstring)."""
    x_q = np.asarray(x_q, dtype=np.int64)
    w = np.asarray(w_q, dtype=np.int64)
    B, C, T = x_q.shape
    F, Cg, K = w.shape
    Fg = F // groups
    xp = np.pad(x_q, ((0, 0), (0, 0), (padding, padding)))
    T_out = output_length(T, K, stride, padding, dilation)
    acc = np.zeros((B, F, T_out), dtype=np.int64)
    for g in range(groups):
        xs = xp[:, g * Cg:(g + 1) * Cg]
        ws = w[g * Fg:(g + 1) * Fg]
        for k in range(K):
            cols = xs[:, :, k * dilation: k * dilation + stride * (T_out - 1) + 1: stride]  # [B, Cg, T_out]
            acc[:, g * Fg:(g + 1) * Fg] += np.einsum("fc,bct->bft", ws[:, :, k], cols)
    return acc


def direct_int8_conv1d(x: np.ndarray, w_q: np.ndarray, w_scale: np.ndarray, x_scale: float,
                       bias: Optional[np.ndarray] = None, stride: int = 1, padding: int = 0, dilation: int = 1,
                       groups: int = 1) -> np.ndarray:
    """y [B, F, T_out] float32 of the direct int8 convolution."""
    acc = direct_int8_acc(quantize_activation(x, x_scale), w_q, stride, padding, dilation, groups)
    out_scale = np.float32(x_scale) * f32(w_scale)
    y = acc.astype(np.float32) * out_scale[None, :, None]
    if bias is not None:
        y = y + f32(bias)[None, :, None]
    return y.astype(np.float32)


def direct_int8_linear(x: np.ndarray, w_q: np.ndarray, w_scale: np.ndarray, x_scale: float,
                       bias: Optional[np.ndarray] = None) -> np.ndarray:
    """y [..., F] float32 of an int8 linear layer: x_q [..., C] @ w_q^T [C, F] in int64."""
    acc = quantize_activation(x, x_scale) @ np.asarray(w_q, dtype=np.int64).T
    y = acc.astype(np.float32) * (np.float32(x_scale) * f32(w_scale))
    if bias is not None:
        y = y + f32(bias)
    return y.astype(np.float32)


def winograd_weights(w: np.ndarray, m: int) -> np.ndarray:
    """U [F, C/g, P, m+2] float64 = G g per 3-tap piece of the kernel w [F, C/g, K]."""
    w = np.asarray(w, dtype=np.float64)
    F, Cg, K = w.shape
    P = pieces(K)
    wp = np.zeros((F, Cg, 3 * P))
    wp[:, :, :K] = w
    _, G, _ = winograd_matrices(m)
    return np.einsum("jk,fcqk->fcqj", G, wp.reshape(F, Cg, P, 3))


def tile_grid(T: int, m: int, taps: int, padding: int, dilation: int) -> tuple[int, int, int]:
    """(T_out, N, L): the output length, the tiles per residue, N = ceil(ceil(T_out / d) / m),
    and the padded input length L = d (N m + 3 P - 1) that covers every index a tile reads.
    Part of the contract: the tile grid decides what gets rounded."""
    T_out = output_length(T, taps, 1, padding, dilation)
    if T_out < 1:
        raise ValueError(f"Winograd conv: no output for T={T}, taps={taps}, padding={padding}, "
                         f"dilation={dilation}")
    N = -(-(-(-T_out // dilation)) // m)
    return T_out, N, dilation * (N * m + 3 * pieces(taps) - 1)


def winograd_tiles(x_q: np.ndarray, m: int, taps: int, padding: int = 0, dilation: int = 1) -> np.ndarray:
    """z [B, C, P, d, N, m+2] int64: the input tiles of every piece q, residue r and tile n
    (z[..., q, r, n, j] = x_q_ext[r + d (n m + 3 q + j)]), N = ceil(ceil(T_out / d) / m)."""
    x_q = np.asarray(x_q, dtype=np.int64)
    B, C, T = x_q.shape
    d, P = dilation, pieces(taps)
    T_out, N, L = tile_grid(T, m, taps, padding, dilation)
    ext = np.zeros((B, C, max(L, T + 2 * padding)), dtype=np.int64)
    ext[:, :, padding:padding + T] = x_q
    r = np.arange(d)[:, None, None, None]
    q = np.arange(P)[None, :, None, None]
    n = np.arange(N)[None, None, :, None]
    j = np.arange(m + 2)[None, None, None, :]
    idx = r + d * (n * m + 3 * q + j)          # [d, P, N, m+2]
    z = ext[:, :, idx]                          # [B, C, d, P, N, m+2]
    return z.transpose(0, 1, 3, 2, 4, 5)        # [B, C, P, d, N, m+2]


def winograd_int8_acc(x_q: np.ndarray, u_q: np.ndarray, v_mult: np.ndarray, m: int, taps: int, padding: int = 0,
                      dilation: int = 1, groups: int = 1, return_v: bool = False):
    """M [B, F, d, N, m+2] int64: the Winograd-domain int32 accumulations (step 3), from the
    quantized input x_q [B, C, T] (int), u_q [F, C/g, P, m+2] and v_mult [m+2] float32."""
    BT, _, _ = winograd_matrices(m)
    z = winograd_tiles(x_q, m, taps, padding, dilation)
    V = np.einsum("jl,bcqrnl->bcqrnj", BT, z)  # exact int64
    Vq = np.clip(np.rint(V.astype(np.float32) * f32(v_mult)), -QMAX, QMAX).astype(np.int64)
    u = np.asarray(u_q, dtype=np.int64)
    F, Cg = u.shape[:2]
    Fg = F // groups
    M = np.concatenate([np.einsum("fcqj,bcqrnj->bfrnj", u[g * Fg:(g + 1) * Fg], Vq[:, g * Cg:(g + 1) * Cg])
                        for g in range(groups)], axis=1)
    return (M, V, Vq) if return_v else M


def winograd_output(M: np.ndarray, m_scale: np.ndarray, m: int, T_out: int, bias: Optional[np.ndarray] = None):
    """y [B, F, T_out] float32 from M [B, F, d, N, m+2] (the output transform, in the stated
    float32 order), m_scale [F, m+2] float32."""
    _, _, AT = winograd_matrices(m)
    B, F, d, N, n = M.shape
    Mf = M.astype(np.float32) * f32(m_scale)[None, :, None, None, :]
    rows = []
    for i in range(m):
        acc = None
        for j in range(n):
            if AT[i, j] != 0:
                term = Mf[..., j] * np.float32(AT[i, j])
                acc = term if acc is None else (acc + term).astype(np.float32)
        rows.append(acc)
    Y = np.stack(rows, axis=-1)                         # [B, F, d, N, m]: output (n m + i) d + r
    y = Y.transpose(0, 1, 3, 4, 2).reshape(B, F, N * m * d)[:, :, :T_out]
    if bias is not None:
        y = y + f32(bias)[None, :, None]
    return y.astype(np.float32)


def winograd_int8_conv1d(x: np.ndarray, u_q: np.ndarray, u_scale: np.ndarray, v_scale: np.ndarray, x_scale: float,
                         bias: Optional[np.ndarray] = None, m: int = 4, padding: int = 0, dilation: int = 1,
                         taps: int = 3, groups: int = 1) -> np.ndarray:
    """y [B, F, T_out] float32 of the int8 Winograd convolution (step 3 of the docstring)."""
    x_q = quantize_activation(x, x_scale)
    v_mult = np.float32(x_scale) / f32(v_scale)
    M = winograd_int8_acc(x_q, u_q, v_mult, m, taps, padding, dilation, groups)
    T_out = output_length(x.shape[-1], taps, 1, padding, dilation)
    m_scale = f32(u_scale) * f32(v_scale)[None, :]
    return winograd_output(M, m_scale, m, T_out, bias)

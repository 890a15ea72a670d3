"""The lowering of wispy's int8 ops (wispy::qconv1d, wispy::winograd_qconv1d, wispy::qlinear,
wispy.dialects.quant) to standard ATen ops at export time.

`wispy.dialects.decompositions(options)` binds these functions to the target's
`LoweringOptions` as decompositions of the ops (the compiler's `decomposition_table`), so
`ExportedProgram.run_decompositions` replaces every op node by ATen ops the FX importer and
IREE's torch input conversion understand. The int8 products become `aten._int_mm`
(int8 x int8 -> int32), which IREE lowers to `linalg.matmul` i8 x i8 -> i32 (fast with data
tiling), or, with `LoweringOptions.vnni`, wispy::int8_matmul_vnni / int8_conv_vnni
(wispy.dialects.vnni). Every step follows the ops' arithmetic contract
(`wispy.dialects.winograd`) in the stated order, so the compiled module is bit-exact with the
ops' reference:

    x_q   = clamp(round(x / x_scale), -127, 127) -> int8       (f32 division, half to even)
    direct: col = im2col(x_q) (one gather over k*dilation + t*stride), acc = W[F, C*K] @ col (int32),
            y = f32(acc) * f32(x_scale * w_scale[f]) + bias[f]
    Winograd F(m, 3): V = B^T z (exact: integers < 2^11, carried in float32, which is exact),
            V_q = clamp(round(V * f32(x_scale / v_scale[j])), -127, 127) -> int8,
            M[j] = U_q[j][F, C*P] @ V_q[j][C*P, tiles] (int32, one int8 matmul per position j),
            Y[i] = sum_j A^T[i, j] * (f32(M[j]) * f32(u_scale[f, j] * v_scale[j])), j in order, + bias

Grouped convolutions: up to `GROUP_LOOP_MAX` groups run one int8 matmul per group; more groups
(depthwise) run as an int32 multiply-sum (exact, no matmul: these layers are memory bound).

Shapes: any batch, stride, padding, dilation, groups; the number of frames may be dynamic
(the tile count of Winograd layers is then a symbolic ceil-division).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from wispy.dialects.vnni import VNNI_COLS, pack_weights
from wispy.dialects.winograd import QMAX, winograd_matrices

GROUP_LOOP_MAX = 16  # grouped convs with more groups use the int32 multiply-sum form

MM_ROWS, MM_COLS = 8, 16  # IREE's int8 matmul tiles on arm (LoweringOptions.pad_ragged)
_ROUND_MAGIC = 12582912.0  # 1.5 * 2^23


@dataclass(frozen=True)
class LoweringOptions:
    """Target-dependent choices of the lowering, which compile_model passes to the export.

    vnni           static int8 products export as wispy::int8_matmul_vnni /
                   wispy::int8_conv_vnni (wispy's own kernel; hosts with AVX-512 VNNI), and
                   static Winograd layers take the fused form.
    magic_round    quantization rounds by adding and subtracting 1.5 * 2^23 rather than
                   math.roundeven, which IREE expands into ~25 vector instructions on x86
                   (arm64 has frintn; a GPU's adds need not round to nearest even).
    fused_winograd static Winograd layers take the fused form with IREE's int8 matmuls too
                   (arm64 and armv7). Not on Vulkan: on lavapipe it was not bit-exact in a
                   one-off check (some outputs a quantization step off; the per-position
                   form is exact). Not on x86 without wispy's kernel: IREE fused the 50-row
                   product (ragged for its 16-row tiles) with its scale and unpacking into a
                   dispatch that needs 33 KiB of stack (over its 32 KiB limit); with the rows
                   padded to 16 it compiled and was exact, but ran slower than the
                   per-position form (Wav2letter F(4,3), back to back, one-off comparison).
    pad_ragged     static int8 products whose rows and columns are both ragged get their rows
                   padded to MM_ROWS: IREE's arm64 int8 matmul of 50x750 @ 750x250 ran at 0.42
                   multiply-adds an instruction, 1.30-1.54 with M or N padded
                   (benchmarks/arm64_int8_matmul.py)."""
    vnni: bool = False
    magic_round: bool = False
    fused_winograd: bool = False
    pad_ragged: bool = False


def round_clamp(o: LoweringOptions, v: Tensor) -> Tensor:
    """clamp(roundeven(v), -127, 127) in float32. Clamping first gives the same values (the
    bounds are integers and rounding is monotonic), and then |v| <= 127 makes the add of
    1.5 * 2^23 round to an integer, half to even, exactly."""
    if o.magic_round:
        return (torch.clamp(v, -QMAX, QMAX) + _ROUND_MAGIC) - _ROUND_MAGIC
    return torch.clamp(torch.round(v), -QMAX, QMAX)


def _int8_mm(o: LoweringOptions, a: Tensor, w: Tensor) -> Tensor:
    """a [M, K] int8 @ w [N, K]^T int8 -> [M, N] int32: aten._int_mm, or with
    LoweringOptions.vnni and static sizes wispy's kernel (k padded to 4 and the weight's columns to
    its tiles; the weight's padding, packing and correction are constant folded)."""
    M, K = a.shape
    N = w.shape[0]
    static = all(isinstance(v, int) for v in (M, K, N))
    if o.pad_ragged and static and M % MM_ROWS and N % MM_COLS:
        Mp = -(-M // MM_ROWS) * MM_ROWS  # the rows: a small copy (the columns: the weight's)
        return torch._int_mm(F.pad(a, (0, 0, 0, Mp - M)), w.t())[:M]
    if not (o.vnni and static):
        return torch._int_mm(a, w.t())
    Kp = -(-K // 4) * 4
    ap = F.pad(a, (0, Kp - K)) if Kp != K else a
    wp = F.pad(w, (0, Kp - K)) if Kp != K else w
    return torch.ops.wispy.int8_matmul_vnni(ap.contiguous(), *pack_weights(wp))[:, :N]


def quantize_int8(o: LoweringOptions, x: Tensor, x_scale: float, as_int8: bool = True) -> Tensor:
    """clamp(roundeven(x / x_scale), -127, 127): int8 (or integer-valued float32)."""
    q = round_clamp(o, x.to(torch.float32) / x_scale)
    return q.to(torch.int8) if as_int8 else q


_FLT_MAX = 3.4028234663852886e38


def no_contract(p: Tensor) -> Tensor:
    """`p` itself (a finite float32 product), through a clamp to the finite range: IREE's CPU
    codegen marks float ops `contract`, and LLVM would fuse `p + b` into a fused multiply-add
    (one rounding instead of the contract's two: 1 ulp off). The clamp between the multiply and
    the add keeps them separate; it is an identity on finite values."""
    return torch.clamp(p, -_FLT_MAX, _FLT_MAX)


def _affine(acc: Tensor, scale: Tensor, bias: Optional[Tensor], channel_dim: int) -> Tensor:
    """f32(acc) * scale[f] + bias[f], f along `channel_dim` (two separate float32 ops)."""
    shape = [1] * acc.dim()
    shape[channel_dim] = -1
    y = acc.to(torch.float32) * scale.reshape(shape)
    if bias is None:
        return y
    y = no_contract(y)
    return y if bias is None else y + bias.to(torch.float32).reshape(shape)


def _grouped_products(o: LoweringOptions, w: Tensor, cols: Tensor, groups: int) -> Tensor:
    """acc[f, n] = sum_k w[f, k] * cols[g(f), k, n] (int32) for w [F, Kg] int8 and cols
    [groups, Kg, N] int8: one int8 matmul per group, or an int32 multiply-sum for many groups."""
    Fo, Kg = w.shape
    Fg = Fo // groups

    def mm(wg, cg):
        # [N, Kg] @ [Kg, Fg]: the frames as the matmul's rows. With the weights as the rows,
        # a dynamic number of frames exceeded IREE's 32 KiB stack limit.
        return _int8_mm(o, cg.t(), wg).t()

    if groups == 1:
        return mm(w, cols[0])
    if groups <= GROUP_LOOP_MAX:
        return torch.cat([mm(w[g * Fg:(g + 1) * Fg], cols[g]) for g in range(groups)], dim=0)
    wg = w.reshape(groups, Fg, Kg, 1).to(torch.int32)
    cg = cols.reshape(groups, 1, Kg, -1).to(torch.int32)
    return (wg * cg).sum(dim=2, dtype=torch.int32).reshape(Fo, -1)


def qconv1d(o: LoweringOptions, x: Tensor, w_q: Tensor, w_scale: Tensor, x_scale: float, bias: Optional[Tensor],
            stride: int, padding: int, dilation: int, groups: int) -> Tensor:
    """wispy::qconv1d as im2col + int8 matmul(s)."""
    B, C, T = x.shape
    Fo, Cg, K = w_q.shape
    s, d = stride, dilation
    T_out = (T + 2 * padding - d * (K - 1) - 1) // s + 1
    xq = quantize_int8(o, x, x_scale)
    static = all(isinstance(v, int) for v in (B, C, T))
    # (strided slices of a dynamic length made IREE allocate a dynamic stack buffer)
    if groups == C == Fo and groups > GROUP_LOOP_MAX and (s == 1 or static):
        return _affine(_depthwise(xq, w_q, T_out, s, padding, d), w_scale.to(torch.float32) * x_scale, bias, 1)
    if o.vnni and groups == 1 and static:
        acc = _direct_vnni(xq, w_q, T_out, s, d, padding)                       # [B, F, T_out] int32
        return _affine(acc, w_scale.to(torch.float32) * x_scale, bias, 1)
    if padding:
        xq = F.pad(xq, (padding, padding))
    if K == 1 and s == 1:
        cols = xq  # [B, C, T_out]
    else:
        idx = (torch.arange(K, device=x.device) * d).unsqueeze(1) + \
            (torch.arange(T_out, device=x.device) * s).unsqueeze(0)          # [K, T_out]
        # one gather, output [B, C, K, T_out] directly (a flattened index_select followed by a
        # dynamic reshape made IREE's pack dispatch allocate on the stack for dynamic T)
        Tp = xq.shape[2]
        cols = torch.gather(xq.unsqueeze(2).expand(B, C, K, Tp), 3, idx.expand(B, C, K, T_out))
    # [groups, Cg*K, B*T_out]: row c*K + k matches w_q[f, c, k] reshaped to [F, Cg*K]
    cols = cols.reshape(B, groups, Cg * K, T_out).permute(1, 2, 0, 3).reshape(groups, Cg * K, B * T_out)
    acc = _grouped_products(o, w_q.reshape(Fo, Cg * K), cols, groups)            # [F, B*T_out] int32
    acc = acc.reshape(Fo, B, T_out).permute(1, 0, 2)
    return _affine(acc, w_scale.to(torch.float32) * x_scale, bias, 1)


def qlinear(o: LoweringOptions, x: Tensor, w_q: Tensor, w_scale: Tensor, x_scale: float,
            bias: Optional[Tensor]) -> Tensor:
    """wispy::qlinear as one int8 matmul."""
    Fo, C = w_q.shape
    lead = x.shape[:-1]
    xq = quantize_int8(o, x, x_scale).reshape(-1, C)
    acc = _int8_mm(o, xq, w_q)                                                  # [N, F] int32
    y = _affine(acc, w_scale.to(torch.float32) * x_scale, bias, 1)
    return y.reshape(*lead, Fo)


def winograd_qconv1d(o: LoweringOptions, x: Tensor, u_q: Tensor, u_scale: Tensor, v_scale: Tensor, x_scale: float,
                     bias: Optional[Tensor], m: int, padding: int, dilation: int, taps: int,
                     groups: int) -> Tensor:
    """wispy::winograd_qconv1d: tiles and the input transform on the quantized input
    (elementwise over strided slices), one int8 matmul per Winograd position, the output
    transform in float32 in the contract's order."""
    B, C, T = x.shape
    Fo, Cg, P, n = u_q.shape
    d = dilation
    BT, _, AT = (t.tolist() for t in winograd_matrices(m))
    T_out = T + 2 * padding - d * (taps - 1)
    N = -(-(-(-T_out // d)) // m)             # tiles per residue: ceil(ceil(T_out / d) / m)
    L = d * (N * m + 3 * P - 1)               # extended input length the tiles read
    xq = quantize_int8(o, x, x_scale, as_int8=False)   # integer-valued float32
    v_mult = torch.full_like(v_scale, x_scale, dtype=torch.float32) / v_scale.to(torch.float32)
    m_scale = u_scale.to(torch.float32) * v_scale.to(torch.float32).reshape(1, -1)   # [F, n]
    if groups == 1 and all(isinstance(v, int) for v in (B, C, T)) and \
            (o.vnni or o.fused_winograd):
        y = _winograd_fused(o, xq, padding, L, u_q, v_mult, m_scale, u_scale, v_scale, m, d, N, BT, AT, T_out)
        return y if bias is None else y + bias.to(torch.float32).reshape(1, -1, 1)
    xp = F.pad(xq, (padding, L - T - padding))
    zr = xp.reshape(B, C, L // d, d).transpose(2, 3)  # [B, C, d, L/d]: residue r, then time
    # The tiles read z[o + m t] (t = 0..N-1) for each offset o: a stride-m slice, which IREE
    # leaves to scalar code. With z as [m, L/(d m)] (z[m a + b] at [b, a]), z[o + m t] is
    # [o % m, o // m + t]: contiguous over t, so the transforms vectorize. Same values.
    Lm = -(-(L // d) // m)
    zm = F.pad(zr, (0, Lm * m - L // d)).reshape(B, C, d, Lm, m).transpose(3, 4)   # [B, C, d, m, Lm]
    # V_q[j] [B, C, P, d, N] int8 for each position j (exact integer transform in float32)
    per_j = [[] for _ in range(n)]
    for q in range(P):
        S = [zm[..., (3 * q + l) % m, (3 * q + l) // m:(3 * q + l) // m + N] for l in range(n)]  # [B, C, d, N]
        for j in range(n):
            v = None
            for l in range(n):
                c = BT[j][l]
                if c == 0:
                    continue
                if v is None:
                    v = S[l] if c == 1 else S[l] * float(c)
                elif c == 1:
                    v = v + S[l]
                elif c == -1:
                    v = v - S[l]
                else:
                    v = v + S[l] * float(c)
            vq = round_clamp(o, v * v_mult[j]).to(torch.int8)
            per_j[j].append(vq)
    Mf = []
    # Every position's weights as one contiguous [F, P*Cg] slab, rows piece-major (q, c), in
    # one transpose of the constant that compilation folds. Sliced per position straight from
    # u_q (positions innermost), the weight of a one-piece (3-tap) layer reached the matmul's
    # dispatch as a strided slice that IREE packs inside the dispatch on the stack: 80 KiB
    # for 256 channels, over IREE's 32 KiB limit.
    u_all = u_q.permute(3, 0, 2, 1).reshape(n, Fo, P * Cg)
    for j in range(n):
        # piece-major rows (q, c): each piece's transform is one contiguous block of the operand
        vj = torch.stack(per_j[j], dim=1)                                   # [B, P, C, d, N]
        cols = vj.reshape(B, P, groups, Cg, d * N).permute(2, 1, 3, 0, 4).reshape(groups, P * Cg, B * d * N)
        uj = u_all[j]
        Mf.append(_grouped_products(o, uj, cols, groups))                      # [F, B*d*N] int32
    # The int32 products of all positions in one tensor before the output transform: fused into
    # the last matmul's dispatch, the transform (reading every position) overflowed IREE's
    # 32 KiB stack for F(2,3) with many pieces (DESIGN.md); the stack keeps it a dispatch apart.
    Mall = torch.stack(Mf, dim=0)                                           # [n, F, B*d*N]
    Mf = [no_contract(Mall[j].to(torch.float32) * m_scale[:, j:j + 1]) for j in range(n)]
    rows = []
    for i in range(m):  # the output transform, in the contract's order
        acc = None
        for j in range(n):
            a = AT[i][j]
            if a == 0:
                continue
            term = Mf[j] if a == 1 else Mf[j] * float(a)
            acc = term if acc is None else acc + term
        rows.append(acc)
    Y = torch.stack(rows, dim=-1).reshape(Fo, B, d, N, m)                   # output (n m + i) d + r
    y = Y.permute(1, 0, 3, 4, 2).reshape(B, Fo, N * m * d)[..., :T_out]
    return y if bias is None else y + bias.to(torch.float32).reshape(1, -1, 1)


def _constant(rows: list) -> Tensor:
    """A small float32 table as traceable ops (torch.tensor inside a decomposition leaves a
    `lift_fresh_copy` that export rejects); IREE folds it to a constant."""
    return torch.stack([torch.stack([torch.full((), float(v)) for v in row]) for row in rows])


def _depthwise(xq: Tensor, w_q: Tensor, T_out, stride: int, padding: int, dilation: int) -> Tensor:
    """A depthwise convolution (one input channel per output channel) as the sum over taps of
    int32 products of shifted input slices: exact, and contiguous along time for stride 1. (An
    im2col gather and multiply-sum would spend far longer gathering.) xq [B, C,
    T] int8; returns [B, C, T_out] int32."""
    K = w_q.shape[2]
    x32 = F.pad(xq, (padding, padding)).to(torch.int32)
    w32 = w_q.to(torch.int32)
    span = (T_out - 1) * stride + 1
    acc = None
    for k in range(K):
        term = w32[:, 0, k].reshape(1, -1, 1) * x32[:, :, k * dilation:k * dilation + span:stride]
        acc = term if acc is None else acc + term
    return acc


def _direct_vnni(xq: Tensor, w_q: Tensor, T_out: int, stride: int, dilation: int, padding: int) -> Tensor:
    """The direct convolution's int8 products on wispy's kernel, which reads im2col's rows in
    place from the input in frames by channels layout (row stride t + dilation k): no gathered
    copy of K times the input. xq [B, C, T] int8; returns [B, F, T_out] int32. (The input is
    transposed before it is padded, so the transpose meets the one a frames-by-channels
    producer ends with, and IREE cancels the two.)"""
    B, C, T = xq.shape
    Tp = T + 2 * padding
    Fo, _, K = w_q.shape
    Cp = -(-C // 4) * 4
    a = F.pad(xq.transpose(1, 2), (0, Cp - C, padding, padding)).reshape(B * Tp, Cp)   # [B Tp, Cp]
    w = F.pad(w_q.permute(0, 2, 1), (0, Cp - C)).reshape(Fo, K * Cp)            # k = (tap, channel)
    out = torch.ops.wispy.int8_conv_vnni(a.contiguous(), *pack_weights(w), T_out, Tp, stride, dilation)
    return out[:, :Fo].reshape(B, T_out, Fo).permute(0, 2, 1)


def _winograd_fused(o: LoweringOptions, xq: Tensor, padding: int, L: int, u_q: Tensor, v_mult: Tensor, m_scale: Tensor,
                    u_scale: Tensor, v_scale: Tensor, m: int, d: int, N: int, BT: list, AT: list,
                    T_out: int) -> Tensor:
    """winograd_qconv1d's arithmetic (same values, bit for bit) in a few dispatches: the input
    transform of every piece and position as one expression in frames by channels layout,
    the products (with LoweringOptions.vnni, of all positions in one call of wispy's kernel,
    which reads the tiles in place; else IREE's int8 matmul per position on gathered tiles), and the output
    transform as one expression. (Per position and piece, IREE made 30-60 dispatches of a
    layer, each a few microseconds of work and as much of waiting on two threads.)

    xq [B, C, T] is the quantized input (integer-valued float32), padded here to L frames after
    its transpose (which then meets the one a frames-by-channels producer ends with, and IREE
    cancels the two); returns [B, F, T_out] without the bias."""
    B, C, T = xq.shape
    Fo, _, P, n = u_q.shape
    vnni = o.vnni
    Cp = -(-C // 4) * 4 if vnni else C         # k = (piece, channel), a multiple of 4 for the kernel
    # frames by channels: z[b, r, a, c] = x[b, c, a d + r], channels padded with zeros
    zt = F.pad(xq.transpose(1, 2), (0, Cp - C, padding, L - T - padding))       # [B, L, Cp]
    zt = zt.reshape(B, L // d, d, Cp).transpose(1, 2) if d > 1 else zt.unsqueeze(1)   # [B, d, L/d, Cp]
    # The transform at every offset o, T[j, o] = sum_l BT[j, l] z[o + l] (contiguous slices;
    # exact: integers below 2^11): tile t of piece q is T[m t + 3 q], which the kernel reads
    # in place (the pieces' tiles overlap; gathered, they were a copy as large as the products'
    # operand, and slow).
    R = L // d - (n - 1)
    bt = _constant(BT)                                                  # [n (j), n (l)]
    V = None
    for l in range(n):
        term = bt[:, l].reshape(n, 1, 1, 1, 1) * zt[:, :, l:l + R].unsqueeze(0)   # [n, B, d, R, Cp]
        V = term if V is None else V + term
    vq = round_clamp(o, V * v_mult.reshape(n, 1, 1, 1, 1)).to(torch.int8)
    if vnni:
        # the weights [n, F, (piece, channel)] to match, columns padded to the kernel's tiles
        w = F.pad(u_q.permute(3, 0, 2, 1), (0, Cp - C)).reshape(n, Fo, P * Cp)
        # the products scaled in the kernel: Mf[j] = f32(product) * m_scale[f, j] (as an
        # elementwise op after it, IREE read the [F, n] scales transposed, a gather per
        # element; m_scale.t() here, IREE moved the transpose into the reading dispatch)
        m_scale_t = u_scale.to(torch.float32).t() * v_scale.to(torch.float32).reshape(-1, 1)   # [n, F]
        Np = -(-Fo // VNNI_COLS) * VNNI_COLS
        m_scale_t = F.pad(m_scale_t, (0, Np - Fo)) if Np != Fo else m_scale_t
        Mall = torch.ops.wispy.int8_conv_vnni(vq.reshape(n, B * d * R, Cp), *pack_weights(w), N, R, m, 3,
                                              m_scale_t)[..., :Fo]          # [n, B d N, F]
        Mf = [Mall[j] for j in range(n)]
    else:
        # IREE's int8 matmul per position, on the tiles gathered from the transform's rows
        rows = ((torch.arange(B * d) * R).reshape(-1, 1, 1) + (m * torch.arange(N)).reshape(1, N, 1)
                + (3 * torch.arange(P)).reshape(1, 1, P)).reshape(-1)
        A = vq.reshape(n, B * d * R, Cp).index_select(1, rows).reshape(n, B * d * N, P * Cp)
        w = u_q.permute(3, 0, 2, 1).reshape(n, Fo, P * Cp)
        Mf = [no_contract(_int8_mm(o, A[j], w[j]).to(torch.float32) * m_scale[:, j]) for j in range(n)]
    at = _constant(AT)                                                  # [m, n]
    # Y[i] = sum_j AT[i, j] Mf[j], j in order (the zero and unit terms are exact), in the
    # products' frames-by-channels layout: contiguous, and for dilation 1 the output as the
    # next layer reads it (IREE cancels the transpose back with the next layer's own). (Mf
    # computed per j inside this sum, IREE fused it in but took twice as long.)
    Y = None
    for j in range(n):
        term = at[:, j].reshape(m, 1) * Mf[j].reshape(B, d, N, 1, Fo)     # [B, d, N, m, F]
        Y = term if Y is None else Y + term
    # frame (t m + i) d + r
    Y = Y.permute(0, 2, 3, 1, 4).reshape(B, N * m * d, Fo)[:, :T_out]
    return Y.transpose(1, 2)

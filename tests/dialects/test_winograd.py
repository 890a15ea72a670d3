"""The integer Winograd contract (wispy.dialects.winograd, numpy, int64): the tables are exact; the
int8 Winograd arithmetic equals direct int8 convolution bit for bit when nothing is requantized
(F(2,3) and F(4,3), kernels of 3 to 11 taps cut into 3-tap pieces, dilation 1 and 2), and so do
the ops wispy::winograd_qconv1d and wispy::qconv1d; activations round as float32 division, half
to even."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from wispy.dialects import winograd as W


def _rng(seed=0):
    return np.random.default_rng(seed)


def test_tables_exact():
    W.check_tables()
    for m in (2, 4):
        BT, G, AT = W.winograd_matrices(m)
        assert BT.dtype == np.int64 and AT.dtype == np.int64
        # lambda * G is an integer matrix (the exactness test below relies on it)
        lg = G * W.G_DENOMINATOR[m]
        assert np.allclose(lg, np.rint(lg))


def _direct_and_winograd_acc(m, K, d, pad, B, C, Fo, T, groups, seed):
    """Integer inputs small enough that V = B^T z fits int8 unscaled and lambda * G w_q is an
    int8 integer: then the Winograd integers must equal lambda * the direct accumulation."""
    rng = _rng(seed)
    lam = W.G_DENOMINATOR[m]
    xmax = 127 // 10 if m == 4 else 127 // 2  # |B^T z| <= (max row L1 norm) * max|z|
    x_q = rng.integers(-xmax, xmax + 1, size=(B, C, T))
    wmax = 2 if m == 4 else 42                # |lambda G w| <= lambda * max row L1 of G * max|w|
    w_q = rng.integers(-wmax, wmax + 1, size=(Fo, C // groups, K))
    U = np.rint(W.winograd_weights(w_q, m) * lam).astype(np.int64)
    assert np.allclose(W.winograd_weights(w_q, m) * lam, U) and np.abs(U).max() <= 127
    M, V, Vq = W.winograd_int8_acc(x_q, U, np.ones(m + 2, np.float32), m, K, pad, d, groups, return_v=True)
    assert np.abs(V).max() <= 127 and np.array_equal(V, Vq)  # nothing requantized, nothing clamped
    _, _, AT = W.winograd_matrices(m)
    Y = np.einsum("ij,bfrnj->bfrni", AT, M)
    Bn, Fn, dd, N, _ = M.shape
    T_out = W.output_length(T, K, 1, pad, d)
    Y = Y.transpose(0, 1, 3, 4, 2).reshape(Bn, Fn, N * m * dd)[:, :, :T_out]
    acc = W.direct_int8_acc(x_q, w_q, 1, pad, d, groups)
    return Y, acc, lam, x_q, w_q, U


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("K", [3, 5, 7, 11])
@pytest.mark.parametrize("d", [1, 2])
def test_winograd_integers_equal_direct(m, K, d):
    rng = _rng(K * 10 + d + m)
    for trial in range(3):
        B, C, Fo = int(rng.integers(1, 3)), int(rng.integers(1, 9)), int(rng.integers(1, 7))
        T = int(rng.integers(d * (K - 1) + 1, 60))
        pad = [0, d * (K - 1) // 2, int(rng.integers(0, 5))][trial]
        Y, acc, lam, *_ = _direct_and_winograd_acc(m, K, d, pad, B, C, Fo, T, 1, seed=trial)
        assert Y.shape == acc.shape
        assert np.array_equal(Y, lam * acc)  # exact int64


@pytest.mark.parametrize("m", [2, 4])
def test_winograd_integers_equal_direct_grouped(m):
    Y, acc, lam, *_ = _direct_and_winograd_acc(m, 7, 2, 6, 2, 6, 4, 41, groups=2, seed=3)
    assert np.array_equal(Y, lam * acc)


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("K", [3, 7, 11])
def test_winograd_op_equals_direct_op_when_exact(m, K):
    """The custom ops themselves (float in, float out): with v_scale = x_scale and u_scale =
    w_scale / lambda, the Winograd op computes lambda * acc * (u_scale v_scale) = the direct
    op's numbers up to float32 rounding of the output transform."""
    Y, acc, lam, x_q, w_q, U = _direct_and_winograd_acc(m, K, 1, K // 2, 2, 5, 3, 33, 1, seed=K)
    xs = 0.05
    x = torch.tensor(x_q * xs, dtype=torch.float32)
    w_scale = torch.tensor([0.01, 0.02, 0.03], dtype=torch.float32)
    u_scale = (w_scale / lam)[:, None].expand(3, m + 2).contiguous()
    v_scale = torch.full((m + 2,), W.f32(xs).item())
    yd = torch.ops.wispy.qconv1d(x, torch.tensor(w_q, dtype=torch.int8), w_scale, xs, None, 1, K // 2, 1, 1)
    yw = torch.ops.wispy.winograd_qconv1d(x, torch.tensor(U, dtype=torch.int8), u_scale, v_scale, xs, None, m,
                                          K // 2, 1, K, 1)
    torch.testing.assert_close(yw, yd, rtol=1e-5, atol=1e-5 * float(yd.abs().max()))


def test_activation_rounding_is_float32_division_half_even():
    xs = float(np.float32(0.1))
    vals = np.array([0.05, 0.15, 0.25, -0.05, -0.25, 12.7, 12.75, 100.0, -100.0], np.float32)
    vals = np.concatenate([vals, np.float32(xs) * np.arange(-130, 131, 0.5, dtype=np.float32)])
    want = W.quantize_activation(vals, xs)
    got = torch.clamp(torch.round(torch.from_numpy(vals) / torch.tensor(xs, dtype=torch.float32)), -127, 127)
    assert np.array_equal(got.numpy().astype(np.int64), want)
    assert want.max() == 127 and want.min() == -127

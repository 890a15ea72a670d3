"""wispy::int8_matmul_vnni and wispy::int8_conv_vnni (wispy.dialects.vnni): the references compute
the int8 products they stand for (through the unsigned-byte correction), the fakes give their
shapes and dtypes, and the weight packing round-trips. Their lowering, wispy-int8-vnni, is
checked in tests/passes/wispy-int8-vnni.mlir and, on hosts with AVX-512 VNNI, against the
references in tests/compiler/test_quantized.py."""
from __future__ import annotations

import pytest
import torch

from wispy.dialects import get_op
from wispy.dialects.vnni import VNNI_COLS, pack_weights, unpack_weights


def _int8(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-127, 128, shape, generator=g).to(torch.int8)


def _check_fake(op, args, want):
    torch.library.opcheck(op.overload, args, test_utils=("test_schema", "test_faketensor"))
    fake = op.fake(*[a.to("meta") if isinstance(a, torch.Tensor) else a for a in args])
    assert fake.shape == want.shape and fake.dtype == want.dtype


@pytest.mark.parametrize("groups", [None, 3])
@pytest.mark.parametrize("M,N,K", [(5, 7, 12), (16, 32, 64), (1, 40, 4)])
def test_int8_matmul_vnni(groups, M, N, K):
    g = () if groups is None else (groups,)
    a, w = _int8(*g, M, K, seed=1), _int8(*g, N, K, seed=2)
    packed, corr = pack_weights(w)
    Np = -(-N // VNNI_COLS) * VNNI_COLS
    assert packed.shape == (*g, Np // 16, K // 4, 64) and corr.shape == (*g, Np) and corr.dtype == torch.int32
    assert torch.equal(unpack_weights(packed)[..., :N, :], w.to(torch.int64))
    op = get_op("int8_matmul_vnni")
    out = op(a, packed, corr)
    want = a.to(torch.int64) @ w.to(torch.int64).transpose(-1, -2)
    assert out.dtype == torch.int32 and torch.equal(out[..., :N], want.to(torch.int32))
    assert not out[..., N:].any()  # the padding columns
    _check_fake(op, (a, packed, corr), out)


@pytest.mark.parametrize("scaled", [False, True])
def test_int8_conv_vnni(scaled):
    """Logical rows read from a window over a's rows: 2 sequences of 11 rows, 4 tiles each at
    row stride 2, 3 pieces at piece stride 1, 8 channels."""
    S, seq_rows, tiles, row_stride, P, piece_stride, Kc, N = 2, 11, 4, 2, 3, 1, 8, 20
    a = _int8(S * seq_rows, Kc, seed=3)
    w = _int8(N, P * Kc, seed=4)
    packed, corr = pack_weights(w)
    scale = torch.linspace(0.5, 2.0, packed.shape[-3] * 16) if scaled else None
    op = get_op("int8_conv_vnni")
    args = (a, packed, corr, tiles, seq_rows, row_stride, piece_stride, scale)
    out = op(*args)
    logical = torch.stack([torch.cat([a[s * seq_rows + row_stride * t + piece_stride * q] for q in range(P)])
                           for s in range(S) for t in range(tiles)])                      # [S tiles, P Kc]
    want = (logical.to(torch.int64) @ w.to(torch.int64).t()).to(torch.int32)
    if scaled:
        want = want.to(torch.float32) * scale[:N]
    assert out.dtype == want.dtype and torch.equal(out[:, :N], want)
    _check_fake(op, args, out)

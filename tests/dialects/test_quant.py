"""wispy::qconv1d, wispy::winograd_qconv1d, wispy::qlinear (wispy.dialects.quant): the references
equal the numpy contract bit for bit (with requantization and clamping); the fakes give the
references' shapes and dtypes; the lowering (wispy.dialects.quant_lowering), run eagerly and
through torch.export's decompositions, equals the reference bit for bit under every
LoweringOptions. The compiled modules are checked in tests/compiler/test_quantized.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from wispy.compiler.importer import decomposition_table
from wispy.dialects import LoweringOptions, decompositions, get_op
from wispy.dialects import winograd as W

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

OPTIONS = [LoweringOptions(), LoweringOptions(vnni=True), LoweringOptions(magic_round=True),
           LoweringOptions(fused_winograd=True, pad_ragged=True), LoweringOptions(vnni=True, magic_round=True)]


def _rng(seed=0):
    return np.random.default_rng(seed)


def _check_op(name, args):
    """The op's reference output; its fake's shape and dtype agree (opcheck), and so does the
    lowering, bit for bit, under every option set."""
    op = get_op(name)
    want = op.reference(*args)
    assert torch.equal(op(*args), want)
    torch.library.opcheck(op.overload, args, test_utils=("test_schema", "test_faketensor"))
    fake = op.fake(*[a.to("meta") if isinstance(a, torch.Tensor) else a for a in args])
    assert fake.shape == want.shape and fake.dtype == want.dtype == torch.float32
    for options in OPTIONS:
        got = decompositions(options)[op.overload](*args)
        np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=str(options))
    return want


def _random_winograd_args(m, K, d, groups, rng, B=2, C=6, Fo=4, T=37):
    x = (rng.standard_normal((B, C, T)) * 3).astype(np.float32)
    w = rng.standard_normal((Fo, C // groups, K)).astype(np.float32)
    xs = float(np.float32(np.abs(x).max() / 127 * 0.7))  # some of x clamps
    U = W.winograd_weights(w, m)
    us = W.max_abs_scale(U, (1, 2))
    uq = np.clip(np.rint(np.float32(U) / us[:, None, None, :]), -127, 127).astype(np.int8)
    mult = rng.uniform(0.5, 4, size=m + 2).astype(np.float32)
    mult[1] = 0.3  # position 1 saturates: some V clamp
    vs = (np.float32(xs) * mult).astype(np.float32)
    b = rng.standard_normal(Fo).astype(np.float32)
    return x, w, xs, uq, us, vs, b


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("K", [3, 5, 7, 11])
@pytest.mark.parametrize("d,groups", [(1, 1), (2, 1), (1, 2), (3, 3)])
def test_winograd_qconv1d(m, K, d, groups):
    rng = _rng(m * 100 + K * 10 + d + groups)
    Fo = 6 if groups == 3 else 4
    x, w, xs, uq, us, vs, b = _random_winograd_args(m, K, d, groups, rng, Fo=Fo)
    pad = d * (K - 1) // 2
    want = W.winograd_int8_conv1d(x, uq, us, vs, xs, b, m, pad, d, K, groups)
    args = (torch.from_numpy(x), torch.from_numpy(uq), torch.from_numpy(us), torch.from_numpy(vs), xs,
            torch.from_numpy(b), m, pad, d, K, groups)
    got = _check_op("winograd_qconv1d", args).numpy()
    assert got.shape == want.shape == (2, Fo, 37) and np.array_equal(got, want)
    _, V, Vq = W.winograd_int8_acc(W.quantize_activation(x, xs), uq, np.float32(xs) / vs, m, K, pad, d, groups,
                                   return_v=True)
    assert (np.abs(V * (np.float32(xs) / vs)) > 127.5).any(), "the test should exercise the clamp"


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("K", [3, 5, 7, 11])
@pytest.mark.parametrize("d,groups", [(1, 1), (2, 1), (1, 2), (3, 3)])
def test_qconv1d(m, K, d, groups):
    rng = _rng(m * 100 + K * 10 + d + groups)
    Fo = 6 if groups == 3 else 4
    x, w, xs, uq, us, vs, b = _random_winograd_args(m, K, d, groups, rng, Fo=Fo)
    pad = d * (K - 1) // 2
    ws = W.max_abs_scale(w, (1, 2))
    wq = W.quantize_per_channel(w, ws)
    for stride in (1, 2, 3):
        want = W.direct_int8_conv1d(x, wq, ws, xs, b, stride, pad, d, groups)
        got = _check_op("qconv1d", (torch.from_numpy(x), torch.from_numpy(wq), torch.from_numpy(ws), xs,
                                    torch.from_numpy(b), stride, pad, d, groups)).numpy()
        assert np.array_equal(got, want)


def test_qconv1d_depthwise_and_no_bias():
    """More groups than the lowering's group loop (its int32 multiply-sum form), without bias."""
    rng = _rng(7)
    x = torch.from_numpy((rng.standard_normal((2, 24, 45)) * 2).astype(np.float32))
    wq = torch.from_numpy(rng.integers(-127, 128, size=(24, 1, 7)).astype(np.int8))
    ws = torch.from_numpy(rng.uniform(0.001, 0.01, 24).astype(np.float32))
    for stride in (1, 2):
        want = W.direct_int8_conv1d(x.numpy(), wq.numpy(), ws.numpy(), 0.04, None, stride, 3, 2, 24)
        assert np.array_equal(_check_op("qconv1d", (x, wq, ws, 0.04, None, stride, 3, 2, 24)).numpy(), want)


def test_qlinear():
    rng = _rng(5)
    x = rng.standard_normal((3, 7, 50)).astype(np.float32)
    w = rng.standard_normal((20, 50)).astype(np.float32)
    ws = W.max_abs_scale(w, 1)
    wq = W.quantize_per_channel(w, ws)
    b = rng.standard_normal(20).astype(np.float32)
    xs = float(np.float32(0.02))
    want = W.direct_int8_linear(x, wq, ws, xs, b)
    got = _check_op("qlinear", (torch.from_numpy(x), torch.from_numpy(wq), torch.from_numpy(ws), xs,
                                torch.from_numpy(b))).numpy()
    assert np.array_equal(got, want)


def test_lowering_rounds_exact_halves_to_even():
    """Inputs on exact halves of the int8 grid and past the clamp: the magic-number rounding
    and math.roundeven agree with the reference."""
    k = torch.tensor([0.25, 0.75, 1.25, -0.25, -0.75, -1.25, 63.25, 63.75, 64.25, -63.25, -63.75, 100.0])
    x = torch.cat([k, torch.arange(-65.0, 65.0, 0.25)[:52]]).reshape(1, 8, 8)
    g = torch.Generator().manual_seed(4)
    wq = torch.randint(-127, 128, (8, 8, 3), generator=g).to(torch.int8)
    _check_op("qconv1d", (x, wq, torch.full((8,), 0.01), 0.5, None, 1, 1, 1, 1))


class _Layers(nn.Module):
    """Each op once, on buffers, as a frozen quantized model calls them."""

    def __init__(self, seed=0):
        super().__init__()
        rng = _rng(seed)
        x, w, xs, uq, us, vs, b = _random_winograd_args(4, 5, 1, 1, rng, C=6, Fo=6)
        ws = W.max_abs_scale(w, (1, 2))
        self.xs = xs
        for k, v in dict(wq=W.quantize_per_channel(w, ws), ws=ws, uq=uq, us=us, vs=vs, b=b,
                         lq=rng.integers(-127, 128, size=(10, 6)).astype(np.int8),
                         ls=rng.uniform(0.001, 0.01, 10).astype(np.float32)).items():
            self.register_buffer(k, torch.from_numpy(np.ascontiguousarray(v)))

    def forward(self, x):
        y = torch.ops.wispy.qconv1d(x, self.wq, self.ws, self.xs, self.b, 1, 2, 1, 1)
        y = torch.ops.wispy.winograd_qconv1d(torch.relu(y), self.uq, self.us, self.vs, self.xs, self.b, 4, 2, 1, 5, 1)
        return torch.ops.wispy.qlinear(y.transpose(1, 2), self.lq, self.ls, self.xs, None)


@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_export_decomposes_the_ops(options):
    """What compile_model imports: the exported program after the decompositions holds no
    wispy int8 op (the VNNI ops where `vnni` asks for them) and computes the reference's numbers."""
    model = _Layers().eval()
    x = torch.from_numpy((_rng(1).standard_normal((2, 6, 33)) * 3).astype(np.float32))
    ep = torch.export.export(model, (x,), strict=False).run_decompositions(decomposition_table(options))
    called = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert not {"wispy.qconv1d.default", "wispy.winograd_qconv1d.default", "wispy.qlinear.default"} & called
    assert any(t.startswith("wispy.int8_") for t in called) == options.vnni
    with torch.no_grad():
        np.testing.assert_array_equal(ep.module()(x).numpy(), model(x).numpy())

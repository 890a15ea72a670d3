"""int8 quantization (wispy.compress.quant, winograd, rsq): the Winograd tables are exact; the
int8 Winograd arithmetic equals direct int8 convolution bit for bit when nothing is requantized
(F(2,3) and F(4,3), kernels of 3 to 11 taps cut into 3-tap pieces, dilation 1 and 2); the
custom ops equal the numpy reference bit for bit (with requantization and clamping); the
training (fake-quant) forward equals the frozen int8 forward; weight scales are per output
channel; state dicts round-trip; torch.export keeps one custom op per layer; the overflow rule
sends a layer whose transformed range blows up to direct int8; PTQ stays close to float."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from wispy.dialects import winograd as W
from wispy.compress.calibrate import calibrate, quantize
from wispy.compress.quant import (QuantLinear, fold_batchnorm, freeze, load_quantized, prepare, quant_layers,
                                  save_quantized)
from wispy.models.acoustic import ConvDFSMN, Wav2Letter


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


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
def test_ops_equal_numpy_reference_bitwise(m, K, d, groups):
    rng = _rng(m * 100 + K * 10 + d + groups)
    Fo = 6 if groups == 3 else 4
    x, w, xs, uq, us, vs, b = _random_winograd_args(m, K, d, groups, rng, Fo=Fo)
    pad = d * (K - 1) // 2
    want = W.winograd_int8_conv1d(x, uq, us, vs, xs, b, m, pad, d, K, groups)
    got = torch.ops.wispy.winograd_qconv1d(torch.from_numpy(x), torch.from_numpy(uq), torch.from_numpy(us),
                                           torch.from_numpy(vs), xs, torch.from_numpy(b), m, pad, d, K,
                                           groups).numpy()
    assert got.shape == want.shape == (2, Fo, 37) and np.array_equal(got, want)
    _, V, Vq = W.winograd_int8_acc(W.quantize_activation(x, xs), uq, np.float32(xs) / vs, m, K, pad, d, groups,
                                   return_v=True)
    assert (np.abs(V * (np.float32(xs) / vs)) > 127.5).any(), "the test should exercise the clamp"
    ws = W.max_abs_scale(w, (1, 2))
    wq = W.quantize_per_channel(w, ws)
    for stride in (1, 2, 3):
        want = W.direct_int8_conv1d(x, wq, ws, xs, b, stride, pad, d, groups)
        got = torch.ops.wispy.qconv1d(torch.from_numpy(x), torch.from_numpy(wq), torch.from_numpy(ws), xs,
                                      torch.from_numpy(b), stride, pad, d, groups).numpy()
        assert np.array_equal(got, want)


def test_qlinear_equals_numpy_reference_bitwise():
    rng = _rng(5)
    x = rng.standard_normal((3, 7, 50)).astype(np.float32)
    w = rng.standard_normal((20, 50)).astype(np.float32)
    ws = W.max_abs_scale(w, 1)
    wq = W.quantize_per_channel(w, ws)
    b = rng.standard_normal(20).astype(np.float32)
    xs = float(np.float32(0.02))
    want = W.direct_int8_linear(x, wq, ws, xs, b)
    got = torch.ops.wispy.qlinear(torch.from_numpy(x), torch.from_numpy(wq), torch.from_numpy(ws), xs,
                                  torch.from_numpy(b)).numpy()
    assert np.array_equal(got, want)


def test_activation_rounding_is_float32_division_half_even():
    xs = float(np.float32(0.1))
    vals = np.array([0.05, 0.15, 0.25, -0.05, -0.25, 12.7, 12.75, 100.0, -100.0], np.float32)
    vals = np.concatenate([vals, np.float32(xs) * np.arange(-130, 131, 0.5, dtype=np.float32)])
    want = W.quantize_activation(vals, xs)
    got = torch.clamp(torch.round(torch.from_numpy(vals) / torch.tensor(xs, dtype=torch.float32)), -127, 127)
    assert np.array_equal(got.numpy().astype(np.int64), want)
    assert want.max() == 127 and want.min() == -127


def _layer(mode, K=7, d=1, groups=1, C=8, Fo=6, seed=0):
    torch.manual_seed(seed)
    conv = nn.Conv1d(C, Fo, K, padding=d * (K - 1) // 2, dilation=d, groups=groups)
    model = nn.Sequential(conv)
    return model


@pytest.mark.parametrize("mode", ["direct", "f23", "f43"])
@pytest.mark.parametrize("K,d,groups", [(3, 1, 1), (7, 2, 1), (11, 1, 2)])
def test_fake_quant_equals_int8_eval(mode, K, d, groups):
    model = _layer(mode, K, d, groups)
    x = torch.randn(3, 8, 45)
    q = prepare(model, {"*": mode})
    calibrate(q, x, overflow_ratio=None)
    (name, mod), = quant_layers(q).items()
    assert mod.mode == mode
    q.train()
    y_train = q(x)                                   # fake-quant, float32, STE
    q.eval()
    y_fake_eval = q(x)                               # fake-quant, exact accumulation
    freeze(q, strip=False)
    y_int8 = q(x)                                    # the custom op on the int8 buffers
    assert torch.equal(y_train.detach(), y_int8) and torch.equal(y_fake_eval, y_int8)
    # and the numpy reference, bit for bit
    xs = mod._x_scale_value
    b = mod.bias.detach().numpy()
    if mode == "direct":
        want = W.direct_int8_conv1d(x.numpy(), mod.w_q.numpy(), mod.w_scale.numpy(), xs, b, 1, mod.padding[0], d,
                                    groups)
    else:
        want = W.winograd_int8_conv1d(x.numpy(), mod.u_q.numpy(), mod.u_scale.numpy(), mod.v_scale.numpy(), xs,
                                      b, mod.m, mod.padding[0], d, K, groups)
    assert np.array_equal(y_int8.detach().numpy(), want)


def test_gradients_reach_weights_and_rsq_ranges():
    q = prepare(_layer("f43"), {"*": "f43"})
    x = torch.randn(2, 8, 40)
    calibrate(q, x, overflow_ratio=None)
    mod = q[0]
    r = mod.enable_range_training()
    q.train()
    q(x).pow(2).sum().backward()
    assert mod.weight.grad is not None and mod.weight.grad.abs().sum() > 0
    assert r.grad is not None and r.grad.abs().sum() > 0


def test_weight_scales_are_per_output_channel():
    model = _layer("direct", K=5)
    with torch.no_grad():
        model[0].weight[2] *= 100.0
    x = torch.randn(2, 8, 30)
    q = quantize(model, x, "ptq", "off", progress=False)
    mod = q[0]
    w = model[0].weight.detach()
    want = w.abs().amax(dim=(1, 2)) / 127
    torch.testing.assert_close(mod.w_scale, want, rtol=1e-6, atol=0)
    assert mod.w_q.dtype == torch.int8 and int(mod.w_q.abs().amax(dim=(1, 2)).min()) == 127
    # a huge channel does not coarsen the others
    other = (mod.w_q[0].float() * mod.w_scale[0] - w[0]).abs().max()
    assert other <= mod.w_scale[0] / 2 + 1e-7


def test_batchnorm_is_folded():
    torch.manual_seed(0)
    m = Wav2Letter(width=0.1, n_classes=10)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm1d):
            mod.running_mean.uniform_(-1, 1)
            mod.running_var.uniform_(0.5, 2)
            mod.weight.data.uniform_(0.5, 1.5)
    m.eval()
    f = __import__("copy").deepcopy(m)
    names = fold_batchnorm(f)
    assert len(names) == 10 and not any(isinstance(x, nn.BatchNorm1d) for x in f.modules())
    x = torch.randn(2, 40, 120)
    torch.testing.assert_close(f(x), m(x), rtol=1e-4, atol=1e-4)


def test_state_dict_round_trip(tmp_path):
    torch.manual_seed(0)
    m = Wav2Letter(width=0.1, n_classes=12).eval()
    x = torch.randn(2, 40, 150)
    q = quantize(m, x, "ptq", "auto", progress=False)
    sd = q.state_dict()
    assert not any(k.endswith(".weight") for k in sd if k.startswith("body.1.0")), "float weights stripped"
    assert sd["body.1.0.u_q"].dtype == torch.int8 if q.body[1][0].m else sd["body.1.0.w_q"].dtype == torch.int8
    save_quantized(q, tmp_path / "q.pt")
    r = load_quantized(tmp_path / "q.pt", model=Wav2Letter(width=0.1, n_classes=12))
    assert {n: mm.mode for n, mm in quant_layers(r).items()} == {n: mm.mode for n, mm in quant_layers(q).items()}
    assert all(mm._x_scale_value == quant_layers(q)[n]._x_scale_value for n, mm in quant_layers(r).items())
    assert torch.equal(r(x), q(x))


def test_export_keeps_one_custom_op_per_layer():
    torch.manual_seed(0)
    m = Wav2Letter(width=0.25, n_classes=46).eval()
    x = torch.randn(2, 40, 160)
    q = quantize(m, x, "ptq", "auto", progress=False)
    T = torch.export.Dim("T", min=64, max=10_000)
    ep = torch.export.export(q, (x,), dynamic_shapes={"x": {2: T}})
    targets = [str(n.target) for n in ep.graph.nodes if n.op == "call_function"]
    n_wino = sum(t == "wispy.winograd_qconv1d.default" for t in targets)
    n_direct = sum(t == "wispy.qconv1d.default" for t in targets)
    modes = [mm.mode for mm in quant_layers(q).values()]
    assert n_wino == sum(md != "direct" for md in modes) == 8      # seven k=7 layers and the k=32 one
    assert n_direct == sum(md == "direct" for md in modes) == 3    # strided k=48, two 1x1
    assert not any("convolution" in t for t in targets)
    # the int8 tensors are the program's buffers
    bufs = {s.target for s in ep.graph_signature.input_specs if s.kind.name == "BUFFER"}
    assert "body.1.0.u_q" in bufs and "body.0.0.w_q" in bufs and ep.state_dict["body.0.0.w_q"].dtype == torch.int8
    params = {s.target for s in ep.graph_signature.input_specs if s.kind.name == "PARAMETER"}
    assert all(p.endswith(".bias") for p in params)
    x2 = torch.randn(2, 40, 97)
    assert torch.equal(ep.module()(x2), q(x2))


def _adversarial_layer():
    """A k=7 conv fed a signal of period 4 (+1, +1, -1, -1): F(4,3)'s input transform maps its
    tiles to 10x the input's range, so V needs a 10x coarser int8 step; plus small noise that
    direct int8 resolves and the coarse step does not."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(4, 4, 7, padding=3))
    T = 64
    pat = torch.tensor([1.0, 1.0, -1.0, -1.0]).repeat(T // 4)
    x = pat.expand(3, 4, T).clone() + 0.3 * torch.randn(3, 4, T)
    return model, x


def test_overflow_rule_marks_layer_direct():
    model, x = _adversarial_layer()
    q = quantize(model, x, "ptq", "f43", progress=False)
    rec = q.wispy_quant["layers"]["0"]
    assert q[0].mode == "direct" and "overflows" in rec["why"]
    assert rec["calib"]["ratio_f43"] > 4.0
    # the same layer kept in Winograd form when the rule is off
    q2 = quantize(model, x, "ptq", "f43", overflow_ratio=None, progress=False)
    assert q2[0].mode == "f43"
    # benign (smooth) input: F(2,3)'s widening costs less than the threshold
    xs = torch.randn(3, 4, 64).cumsum(-1) / 8
    q3 = quantize(model, xs, "ptq", "auto", progress=False)
    assert q3[0].mode in ("f43", "f23"), q3.wispy_quant["layers"]["0"]


def test_ptq_close_to_float():
    torch.manual_seed(0)
    m = Wav2Letter(width=0.25, n_classes=46).eval()
    x = torch.randn(4, 40, 200)
    with torch.no_grad():
        y = m(x)
    for wg in ("off", "f23"):
        q = quantize(m, x[:2], "ptq", wg, progress=False)
        with torch.no_grad():
            yq = q(x)
        rel = float((yq - y).norm() / (y - y.mean(1, keepdim=True)).norm())
        assert rel < 0.05, (wg, rel)


def test_demo_model_head_quantized_same_phones():
    from wispy.metrics import greedy_ctc_decode
    from wispy.models.acoustic import demo_features, demo_model

    m = demo_model()
    x = torch.from_numpy(demo_features())[None]
    q = quantize(m, x, "ptq", progress=False)
    assert isinstance(q.head, QuantLinear) and q.head.w_q.dtype == torch.int8
    assert greedy_ctc_decode(q(x)[0].detach().numpy()) == greedy_ctc_decode(m(x)[0].detach().numpy())


def test_convdfsmn_quantizes_and_exports():
    torch.manual_seed(0)
    m = ConvDFSMN(n_classes=20, conv_layers=2, conv_channels=16, layers=2, hidden=32, proj=16, lookback=4,
                  lookahead=2, stride=2, fc_layers=1).eval()
    x = torch.randn(2, 40, 80)
    q = quantize(m, x, "ptq", "auto", overflow_ratio=None, progress=False)
    modes = {n: mm.mode for n, mm in quant_layers(q).items()}
    assert modes["front.0"] == "f43" and modes["front.3"] == "f43"
    assert modes["dfsmn.0.memory"] == "direct"  # depthwise: auto keeps it direct
    # an explicit per-layer request puts the depthwise memory block in Winograd form too
    q2 = quantize(m, x, "ptq", {"front.*": "f23", "dfsmn.*.memory": "f43"}, overflow_ratio=None, progress=False)
    assert q2.dfsmn[0].memory.mode == "f43" and q2.front[0].mode == "f23" and q2.dfsmn[0].hidden.mode == "direct"
    ep = torch.export.export(q2, (x,))
    assert torch.equal(ep.module()(x), q2(x))
    with torch.no_grad():
        rel = float((q2(x) - m(x)).norm() / m(x).norm())
    assert rel < 0.05


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    from wispy.data.corpus import generate_corpus

    out = tmp_path_factory.mktemp("qcorpus")
    generate_corpus(out, n_train=24, n_valid=6, n_test=4, workers=2, progress=False)
    return out


def test_qat_and_rsq_train_checkpoint_and_freeze(tiny_corpus, tmp_path):
    from wispy.compress.rsq import prepare_data

    torch.manual_seed(0)
    m = Wav2Letter(width=0.1, n_classes=46).eval()
    data = prepare_data(m, tiny_corpus)
    calib = torch.from_numpy(data["train"][0][0].T.copy())[None]
    q = quantize(m, calib, "rsq", "f23", corpus_dir=tiny_corpus, epochs=1, max_batches=2, batch_size=4,
                 overflow_ratio=None, out_dir=tmp_path / "rsq", progress=False, data=data)
    assert (tmp_path / "rsq" / "qat_last.pt").exists() and (tmp_path / "rsq" / "quantized.pt").exists()
    tr = q.wispy_quant["training"]
    assert tr["learn_range"] and tr["kd_weight"] == 1.0 and len(tr["history"]) == 1
    mod = q.body[1][0]
    assert mod.frozen and mod.weight is None and mod.mode == "f23" and mod.v_log_range is None
    r = load_quantized(tmp_path / "rsq" / "quantized.pt")
    x = torch.randn(1, 40, 90)
    assert torch.equal(r(x), q(x))
    # resuming a finished run trains nothing more and gives the same model
    q2 = quantize(m, calib, "rsq", "f23", corpus_dir=tiny_corpus, epochs=1, max_batches=2, batch_size=4,
                  overflow_ratio=None, out_dir=tmp_path / "rsq", progress=False, data=data)
    assert torch.equal(q2(x), q(x))


def test_quant_table_command_on_a_tiny_corpus(tiny_corpus, tmp_path):
    """The table's whole pipeline (every row, training included) on a tiny corpus and model."""
    from wispy.experiments.quant_table import ROWS, run_quant_table
    from wispy.training.ctc import train_ctc

    torch.manual_seed(0)
    model = Wav2Letter(width=0.1, n_classes=46)
    train_ctc(model, tiny_corpus, epochs=1, batch_size=8, out_dir=tmp_path / "float", progress=False)
    r = run_quant_table(tmp_path / "q", tiny_corpus, models=["wav2letter-small"], docs_dir=tmp_path / "docs",
                        checkpoints={"wav2letter-small": tmp_path / "float" / "best.pt"}, calib=2, rsq_batches=1,
                        limit=2, progress=False)
    rows = r["models"]["wav2letter-small"]["rows"]
    assert list(rows) == [k for k, *_ in ROWS]
    assert (tmp_path / "docs" / "quant_table.md").exists() and (tmp_path / "docs" / "quant_table.json").exists()
    assert rows["f43-rsq"]["modes"]["f43"] == 8 and rows["direct-ptq"]["modes"]["f43"] == 0
    # a second run reads the finished rows back
    r2 = run_quant_table(tmp_path / "q", tiny_corpus, models=["wav2letter-small"], docs_dir=None,
                         checkpoints={"wav2letter-small": tmp_path / "float" / "best.pt"}, calib=2, rsq_batches=1,
                         limit=2, progress=False)
    assert r2["models"]["wav2letter-small"]["rows"]["f43-rsq"]["test"] == rows["f43-rsq"]["test"]

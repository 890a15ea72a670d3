"""int8 quantization (wispy.compress.quant, calibrate, rsq; the ops themselves and the Winograd
contract are tested in tests/dialects/): the training (fake-quant) forward equals the frozen
int8 forward, and both the numpy contract; weight scales are per output
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
    from wispy.training.data import prepare_data

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

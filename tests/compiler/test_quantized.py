"""compile_model on models quantized by wispy.compress.quantize: the wispy:: int8 ops lowered to
int8 arithmetic (wispy/dialects/quant_lowering.py), bit-exact with the ops' CPU reference."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import wispy
from wispy.compress.calibrate import quantize
from wispy.compress.quant import QuantConv1d, QuantLinear
from wispy.models.acoustic import Wav2Letter

def _qconv(cin, cout, k, stride=1, padding=0, dilation=1, groups=1, mode="direct", seed=0):
    """A frozen QuantConv1d with random weights, activation and Winograd-domain scales."""
    g = torch.Generator().manual_seed(seed)
    m = QuantConv1d(cin, cout, k, stride, padding, dilation, groups, True, mode)
    with torch.no_grad():
        m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.2)
        m.bias.copy_(torch.randn(cout, generator=g) * 0.1)
    m.set_x_scale(0.04)
    if m.m is not None:  # some positions coarser than the input (requantized), some finer (clamped)
        m.v_scale.copy_(torch.rand(m.m + 2, generator=g) * 0.3 + 0.02)
    m.freeze()
    m.strip()
    return m.eval()


def _x(c, t, seed=1):
    return torch.randn(1, c, t, generator=torch.Generator().manual_seed(seed)) * 2


def _assert_exact(module, cm, x):
    with torch.no_grad():
        ref = module(x).numpy()
    np.testing.assert_array_equal(cm(x.numpy()), ref)


def test_tables_match_contract():
    """The lowering reads winograd_matrices(); the tables satisfy the correlation identity."""
    from wispy.dialects.winograd import check_tables

    check_tables()


@pytest.mark.parametrize("kw", [dict(k=5, padding=2), dict(k=5, stride=2, padding=1),
                                dict(k=3, padding=2, dilation=2), dict(k=3, padding=1, groups=2),
                                dict(k=5, padding=2, groups=16, cout=16), dict(k=1)],
                         ids=["plain", "stride2", "dilation2", "groups2", "depthwise", "1x1"])
def test_direct_conv_bit_exact(kw):
    kw = dict(kw)
    m = _qconv(16, kw.pop("cout", 24), kw.pop("k"), **kw)
    x = _x(16, 37)
    _assert_exact(m, wispy.compile_model(m, (x,), progress=False), x)


@pytest.mark.parametrize("mode", ["f23", "f43"])
@pytest.mark.parametrize("taps,dilation", [(3, 1), (5, 1), (7, 1), (3, 2), (5, 2), (7, 2)])
def test_winograd_conv_bit_exact(mode, taps, dilation):
    m = _qconv(12, 20, taps, padding=dilation * (taps // 2), dilation=dilation, mode=mode, seed=taps)
    x = _x(12, 41)
    _assert_exact(m, wispy.compile_model(m, (x,), progress=False), x)


def test_winograd_three_taps_wide_channels():
    """A one-piece (3-tap) layer of 256 channels: its per-position weights once reached the
    matmul's dispatch as a strided slice, packed there on the stack past IREE's 32 KiB."""
    m = _qconv(256, 256, 3, padding=1, mode="f43", seed=3)
    x = _x(256, 64)
    _assert_exact(m, wispy.compile_model(m, (x,), progress=False), x)


def test_winograd_grouped_bit_exact():
    m = _qconv(16, 16, 3, padding=1, groups=2, mode="f43")
    x = _x(16, 30)
    _assert_exact(m, wispy.compile_model(m, (x,), progress=False), x)


def test_qlinear_bit_exact():
    torch.manual_seed(0)
    lin = QuantLinear(48, 30)
    with torch.no_grad():
        lin.weight.normal_(0, 0.2)
        lin.bias.normal_(0, 0.1)
    lin.set_x_scale(0.03)
    lin.freeze()
    lin.strip()
    lin.eval()
    x = torch.randn(1, 25, 48) * 2
    _assert_exact(lin, wispy.compile_model(lin, (x,), progress=False), x)


def test_dynamic_frames_bit_exact():
    """One module for every length: direct (k=7) and F(2,3) with 11 pieces (k=32)."""
    seq = nn.Sequential(_qconv(16, 24, 7, padding=3), nn.ReLU(), _qconv(24, 32, 32, padding=15, mode="f23"))
    T = torch.export.Dim("T", min=64, max=4096)
    cm = wispy.compile_model(seq, (_x(16, 100),), dynamic_shapes={"input": {2: T}}, progress=False)
    for t in (64, 101, 333):
        _assert_exact(seq, cm, _x(16, t, seed=t))


def test_int8_matmuls_in_ir(tmp_path):
    """The products are i8 x i8 -> i32 matmuls (no i64 matmul, no float matmul) with
    int8_kernel="off"; by default, on a host with AVX-512 VNNI, one call of wispy's kernel
    for all six Winograd positions."""
    m = _qconv(16, 24, 5, padding=2, mode="f43")
    wispy.compile_model(m, (_x(16, 40),), dump_dir=tmp_path / "off", progress=False, int8_kernel="off")
    text = (tmp_path / "off" / "3-input.mlir").read_text()
    mm = [ln for ln in text.splitlines() if "linalg.matmul" in ln]
    assert len(mm) == 6 and all("xi8>" in ln and "xi32>" in ln for ln in mm), mm
    assert not [ln for ln in text.splitlines() if "linalg.matmul" in ln and ("i64" in ln or "f32" in ln)]
    if "avx512_vnni" not in open("/proc/cpuinfo").read():
        return
    wispy.compile_model(m, (_x(16, 40),), dump_dir=tmp_path / "auto", progress=False)
    text = (tmp_path / "auto" / "3-input.mlir").read_text()
    calls = [ln for ln in text.splitlines() if "flow.dispatch @wispy_int8_vnni_" in ln]
    assert len(calls) == 1 and "tensor<6x10x" in calls[0], calls
    assert not [ln for ln in text.splitlines() if "linalg.matmul" in ln and "xi8>" in ln]


class _Logits(nn.Module):
    """Wav2Letter without its log_softmax (IREE's exp/log differ from PyTorch's by an ulp)."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m.head(self.m.body(x))


def _small_w2l(winograd):
    torch.manual_seed(0)
    model = Wav2Letter(width=0.25).eval()
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm1d):
            with torch.no_grad():
                mod.running_mean.normal_(0, 0.1)
                mod.running_var.uniform_(0.5, 2.0)
    q = quantize(model, torch.randn(2, 40, 160), method="ptq", winograd=winograd,
                 overflow_ratio=None if winograd in ("f23", "f43") else 4.0, progress=False)
    return q


@pytest.mark.parametrize("winograd", ["off", "f23", "f43"])
def test_wav2letter_small_quantized(winograd):
    q = _small_w2l(winograd)
    modes = {r["mode"] for r in q.wispy_quant["layers"].values()}
    assert modes == ({"direct"} if winograd == "off" else {"direct", winograd})
    x = torch.randn(1, 40, 150)
    logits = _Logits(q).eval()
    _assert_exact(logits, wispy.compile_model(logits, (x,), progress=False), x)
    cm = wispy.compile_model(q, (x,), progress=False)  # the whole model, log_softmax included
    with torch.no_grad():
        ref = q(x).numpy()
    np.testing.assert_allclose(cm(x.numpy()), ref, rtol=0, atol=2e-5)


@pytest.mark.vulkan
def test_wav2letter_small_winograd_on_vulkan_matches_host():
    """The whole int8 Wav2letter (a quarter wide, F(4,3)) on lavapipe: its logits bit-exact
    with the host's module, its log-probabilities within float rounding (the log_softmax
    over channels goes through wispy-softmax-last-dim on Vulkan); 200 frames, so the
    frame count is no multiple of 16 after the stride-2 first layer."""
    q = _small_w2l("f43")
    x = torch.randn(1, 40, 202, generator=torch.Generator().manual_seed(5))
    logits = _Logits(q).eval()
    host = wispy.compile_model(logits, (x,), progress=False)
    vk = wispy.compile_model(logits, (x,), target="vulkan", vulkan_target="lavapipe", progress=False)
    np.testing.assert_array_equal(vk(x.numpy()), host(x.numpy()))
    whole = wispy.compile_model(q, (x,), target="vulkan", vulkan_target="lavapipe", progress=False)
    with torch.no_grad():
        ref = q(x).numpy()
    for _ in range(2):
        np.testing.assert_allclose(whole(x.numpy()), ref, rtol=0, atol=2e-5)


class _TwoConvs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv1d(8, 16, 5, padding=2)
        self.b = nn.Conv1d(16, 12, 3, padding=1, stride=2)   # strided: direct in every mode

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


@pytest.mark.parametrize("winograd", ["off", "f23", "f43"])
def test_compile_model_winograd_option(winograd):
    """compile_model(winograd=...) re-lowers an unstripped quantized model's convolutions,
    bit-exact with the same re-moded model in PyTorch."""
    from wispy.compress import with_winograd

    torch.manual_seed(0)
    q = quantize(_TwoConvs().eval(), torch.randn(2, 8, 40), method="ptq", winograd="f43", strip=False, overflow_ratio=None,
                 progress=False)
    assert (q.a.mode, q.b.mode) == ("f43", "direct")
    ref_model = with_winograd(q, winograd)
    assert (ref_model.a.mode, ref_model.b.mode) == ("direct" if winograd == "off" else winograd, "direct")
    assert q.a.mode == "f43"  # the caller's model is untouched
    x = _x(8, 40)
    _assert_exact(ref_model, wispy.compile_model(q, (x,), progress=False, winograd=winograd), x)


@pytest.mark.parametrize("target", ["host", pytest.param("arm64", marks=[pytest.mark.arm64, pytest.mark.slow])])
def test_compile_model_winograd_measure(target):
    """winograd="measure": each eligible layer compiled alone in direct, F(2,3) and F(4,3) on
    the target, the cheapest kept; the costs in the remarks; the result bit-exact with the
    same choice made in PyTorch."""
    import re

    from wispy.compress import with_winograd

    torch.manual_seed(0)
    q = quantize(_TwoConvs().eval(), torch.randn(2, 8, 40), method="ptq", winograd="f43", strip=False,
                 overflow_ratio=None, progress=False)
    x = _x(8, 40)
    cm = wispy.compile_model(q, (x,), target=target, progress=False, winograd="measure")
    lines = [r for r in cm.remarks if r.startswith("winograd choice: a ")]
    assert len(lines) == 1 and not any(r.startswith("winograd choice: b ") for r in cm.remarks), cm.remarks
    costs = dict(re.findall(r"(direct|f23|f43) ([\d.]+)", lines[0]))
    assert set(costs) == {"direct", "f23", "f43"}, lines[0]
    best = lines[0].rsplit("-> ", 1)[1]
    # The remark rounds the costs, so a mode that won by less than the rounding ties there.
    assert best in costs and float(costs[best]) == min(float(c) for c in costs.values()), lines[0]
    assert q.wispy_quant["layers"]["a"]["cost"]["unit"] == ("instructions" if target == "arm64" else "ms")
    if target == "host":
        _assert_exact(with_winograd(q, {"a": best, "b": "direct"}), cm, x)


def test_compile_model_winograd_option_errors():
    torch.manual_seed(0)
    q = quantize(_TwoConvs().eval(), torch.randn(2, 8, 40), method="ptq", winograd="f43", overflow_ratio=None,
                 progress=False)
    x = torch.randn(1, 8, 40)
    with pytest.raises(ValueError, match=r"int8 layer 'a' is f43 and its float weight was stripped"):
        wispy.compile_model(q, (x,), progress=False, winograd="off")
    with pytest.raises(ValueError, match="this model has none: quantize it first"):
        wispy.compile_model(_TwoConvs().eval(), (x,), progress=False, winograd="f43")
    with pytest.raises(ValueError, match="winograd must be"):
        wispy.compile_model(q, (x,), progress=False, winograd="f63")


@pytest.mark.parametrize("target,kw", [pytest.param("arm64", {}, marks=pytest.mark.arm64),
                                       pytest.param("vulkan", {"vulkan_target": "lavapipe"},
                                                    marks=pytest.mark.vulkan)])
def test_quantized_layers_on_device(target, kw):
    seq = nn.Sequential(_qconv(12, 16, 5, stride=2, padding=2), nn.ReLU(),
                        _qconv(16, 16, 7, padding=6, dilation=2, mode="f43"),
                        _qconv(16, 20, 3, padding=1, mode="f23")).eval()
    x = _x(12, 50)
    _assert_exact(seq, wispy.compile_model(seq, (x,), target=target, progress=False, **kw), x)


@pytest.mark.skipif("avx512_vnni" not in open("/proc/cpuinfo").read(), reason="no AVX-512 VNNI here")
@pytest.mark.parametrize("mode", ["direct", "f43"])
def test_vnni_kernel_on_sizes_that_are_not_whole_tiles(mode):
    """On a host with AVX-512 VNNI the int8 products run on wispy's kernel (remarks), bit-exact
    where rows (frames), columns (channels out) and k (channels in x taps) are not whole tiles
    of 8, 32 and 4 (the export pads them; IREE folds the weight's padding and packing)."""
    m = _qconv(5, 7, 3, padding=1, mode=mode, seed=3)
    x = _x(5, 29)
    cm = wispy.compile_model(m, (x,), progress=False, explain=True)
    assert any("on wispy's VNNI kernel" in r for r in cm.remarks), cm.remarks
    _assert_exact(m, cm, x)
    off = wispy.compile_model(m, (x,), progress=False, explain=True, int8_kernel="off")
    assert not any("VNNI" in r for r in off.remarks)
    np.testing.assert_array_equal(cm(x.numpy()), off(x.numpy()))
    with pytest.raises(wispy.WispyError, match="unknown int8_kernel 'fast'"):
        wispy.compile_model(m, (x,), progress=False, int8_kernel="fast")


@pytest.mark.skipif("avx512_vnni" not in open("/proc/cpuinfo").read(), reason="no AVX-512 VNNI here")
@pytest.mark.parametrize("mode", ["f23", "f43"])
def test_vnni_winograd_reads_tiles_in_place(mode):
    """A Winograd layer on wispy's kernel: its positions in one dispatch, the tiles of every
    piece read in place from the transformed input (a window over rows). Batch 3 and
    dilation 2 make six sequences of tiles; 6 channels are padded to 8, 5 taps make two
    pieces. Bit-exact against the reference and against IREE's int8 matmul."""
    m = _qconv(6, 9, 5, padding=4, dilation=2, mode=mode, seed=5)
    x = torch.randn(3, 6, 23, generator=torch.Generator().manual_seed(2)) * 2
    cm = wispy.compile_model(m, (x,), progress=False, explain=True)
    n = {"f23": 4, "f43": 6}[mode]
    assert any(f"{n} int8 products" in r and "read from the convolution's input (8 channels, 2 pieces)" in r
               for r in cm.remarks), cm.remarks
    _assert_exact(m, cm, x)
    off = wispy.compile_model(m, (x,), progress=False, int8_kernel="off")
    np.testing.assert_array_equal(cm(x.numpy()), off(x.numpy()))


@pytest.mark.parametrize("target", ["host", pytest.param("arm64", marks=pytest.mark.arm64)])
@pytest.mark.parametrize("mode", ["direct", "f43"])
def test_rounding_of_exact_halves(mode, target):
    """Quantization rounds half to even. On x86 hosts the compiled module rounds by adding and
    subtracting 1.5 * 2^23 after the clamp (quant_lowering.round_clamp), since IREE expands
    math.roundeven into ~25 instructions there; arm64 keeps math.roundeven. Inputs on exact halves of the int8 grid (x_scale
    0.5, x = k / 4), and Winograd positions at twice that scale (odd transformed values land on
    halves too), including the clamp's edges 126.5, 127.5 and beyond: bit-exact."""
    g = torch.Generator().manual_seed(4)
    m = QuantConv1d(8, 8, 3, 1, 1, 1, 1, True, mode)
    with torch.no_grad():
        m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.2)
        m.bias.zero_()
    m.set_x_scale(0.5)
    if m.m is not None:
        m.v_scale.fill_(1.0)
    m.freeze()
    m.strip()
    m.eval()
    k = torch.tensor([0.25, 0.75, 1.25, -0.25, -0.75, -1.25, 63.25, 63.75, 64.25, -63.25, -63.75, 100.0])
    x = torch.cat([k, torch.randint(-260, 260, (52,), generator=g) / 4.0]).reshape(1, 8, 8)
    cm = wispy.compile_model(m, (x,), target=target, progress=False)
    _assert_exact(m, cm, x)


@pytest.mark.parametrize("kw", [dict(k=20, padding=19), dict(k=5, stride=2, padding=2),
                                dict(k=7, padding=6, dilation=2)], ids=["memory", "stride2", "dilation2"])
def test_depthwise_conv_as_shifted_products(kw):
    """A depthwise layer with more groups than the group loop takes (ConvDFSMN's memory blocks)
    is the sum over taps of int32 products of shifted input slices: bit-exact, batch 2, and
    with a dynamic number of frames."""
    kw = dict(kw)
    m = _qconv(24, 24, kw.pop("k"), groups=24, **kw)
    x = torch.randn(2, 24, 45, generator=torch.Generator().manual_seed(6)) * 2
    _assert_exact(m, wispy.compile_model(m, (x,), progress=False), x)
    T = torch.export.Dim("T", min=30, max=400)
    cm = wispy.compile_model(m, (x,), dynamic_shapes={"x": {2: T}}, progress=False)
    for t in (31, 77):
        xt = torch.randn(2, 24, t, generator=torch.Generator().manual_seed(t)) * 2
        _assert_exact(m, cm, xt)

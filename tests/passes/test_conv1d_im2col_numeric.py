"""wispy-conv1d-im2col, numerically: Conv1d layers of random shapes compiled for host with
`compile_model` (the pass runs in the default `wispy` phase) against
`torch.nn.functional.conv1d`, and the IR dumps show the rewrite really happened."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import wispy

# f32 convolutions with a reduction of Cg*K <= 16*7 = 112 terms on O(1) inputs: the matmul
# reorders and FMA-fuses the sums, ~sqrt(112) ulp of error (observed <= 5e-7).
# 1e-5 absolute / 1e-4 relative leaves >10x headroom; a wrong tap, stride or group moves
# outputs by O(0.1).
ATOL, RTOL = 1e-5, 1e-4
N_CONFIGS = 10


def draw_configs(seed: int = 1234, n: int = N_CONFIGS) -> list[dict]:
    """Random Conv1d shapes; the group kind cycles 1, 2, C so each appears."""
    rng = np.random.default_rng(seed)
    configs = []
    for i in range(n):
        kind = ("1", "2", "C")[i % 3]
        if kind == "1":
            cin, cout, groups = int(rng.integers(1, 17)), int(rng.integers(1, 17)), 1
        elif kind == "2":
            cin, cout, groups = 2 * int(rng.integers(1, 9)), 2 * int(rng.integers(1, 9)), 2
        else:  # depthwise; every other time with a channel multiplier of 2 (C -> 2C channels)
            mult = 1 + (i // 3) % 2
            cin = int(rng.integers(3, 17 if mult == 1 else 9))  # 3+: unlike groups=2
            cout, groups = cin * mult, cin
        k, stride, dil, pad = (int(rng.integers(1, 8)), int(rng.integers(1, 4)), int(rng.integers(1, 4)),
                               int(rng.integers(0, 4)))
        t = int(rng.integers(6, 25)) + dil * (k - 1)
        configs.append(dict(batch=int(rng.integers(1, 3)), cin=cin, cout=cout, k=k, stride=stride,
                            dilation=dil, padding=pad, groups=groups, t=t, bias=bool(rng.integers(0, 2))))
    return configs


CONFIGS = draw_configs()


def _id(c: dict) -> str:
    g = "dw" if c["groups"] == c["cin"] > 2 else f"g{c['groups']}"
    return (f"n{c['batch']}-c{c['cin']}to{c['cout']}-{g}-k{c['k']}-s{c['stride']}-d{c['dilation']}"
            f"-p{c['padding']}-t{c['t']}" + ("" if c["bias"] else "-nobias"))


def test_configs_cover_the_space():
    assert {c["groups"] == 1 for c in CONFIGS} == {True, False}
    assert any(c["groups"] == 2 for c in CONFIGS)
    assert any(c["groups"] == c["cin"] == c["cout"] > 2 for c in CONFIGS)
    assert any(c["groups"] == c["cin"] > 2 and c["cout"] == 2 * c["cin"] for c in CONFIGS)
    for key in ("stride", "dilation", "padding", "k", "batch"):
        assert len({c[key] for c in CONFIGS}) > 1, key


CONV_OPS = ("linalg.conv_1d_ncw_fcw", "linalg.conv_2d_ngchw_gfchw")


@pytest.mark.parametrize("cfg", CONFIGS, ids=[_id(c) for c in CONFIGS])
def test_im2col_conv1d_matches_torch(cfg, tmp_path):
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(cfg["cin"], cfg["cout"], cfg["k"], stride=cfg["stride"], padding=cfg["padding"],
                           dilation=cfg["dilation"], groups=cfg["groups"], bias=cfg["bias"]).eval()
    x = torch.randn(cfg["batch"], cfg["cin"], cfg["t"])
    cm = wispy.compile_model(conv, (x,), target="host", dump_dir=tmp_path, explain=True, progress=False)
    with torch.no_grad():
        want = torch.nn.functional.conv1d(x, conv.weight, conv.bias, stride=cfg["stride"],
                                          padding=cfg["padding"], dilation=cfg["dilation"],
                                          groups=cfg["groups"])
    got = cm(x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=ATOL, rtol=RTOL)

    input_ir = (tmp_path / "3-input.mlir").read_text()
    wispy_ir = (tmp_path / "4-wispy.mlir").read_text()
    before = [op for op in CONV_OPS if op in input_ir]
    if cfg["groups"] == 1:
        assert before == ["linalg.conv_1d_ncw_fcw"]
    elif cfg["groups"] == 2 or cfg["cout"] > cfg["cin"]:
        assert before == ["linalg.conv_2d_ngchw_gfchw"]
    else:  # depthwise, multiplier 1: IREE's own depthwise op, which the pass leaves alone
        assert before == [] and "linalg.depthwise_conv_2d_nchw_chw" in input_ir
        assert "linalg.depthwise_conv_2d_nchw_chw" in wispy_ir
    for op in CONV_OPS:  # every conv the pass matches was rewritten ...
        assert op not in wispy_ir, f"{op} left in 4-wispy.mlir"
    if before:  # ... into the packed mmt4d (batch 1, no groups), a matmul or a batch_matmul
        want_op = ("linalg.mmt4d" if cfg["batch"] == 1 else "linalg.matmul") if cfg["groups"] == 1 \
            else "linalg.batch_matmul"
        assert want_op in wispy_ir
    assert not [r for r in cm.remarks if "declined" in r], cm.remarks


DYNAMIC_CASES = {
    "strided": dict(cin=6, cout=10, k=5, stride=2, padding=2, dilation=1, groups=1),
    "dilated": dict(cin=6, cout=10, k=3, stride=1, padding=2, dilation=2, groups=1),
    "grouped": dict(cin=6, cout=10, k=3, stride=1, padding=1, dilation=1, groups=2),
    "pointwise": dict(cin=6, cout=10, k=1, stride=1, padding=0, dilation=1, groups=1),
}


@pytest.mark.parametrize("name", list(DYNAMIC_CASES))
def test_im2col_dynamic_frames(name, tmp_path):
    """One module for every number of frames: the rewrite applies with a dynamic width
    (no convolution left) and matches PyTorch at lengths other than the example's."""
    c = DYNAMIC_CASES[name]
    torch.manual_seed(1)
    conv = torch.nn.Conv1d(c["cin"], c["cout"], c["k"], stride=c["stride"], padding=c["padding"],
                           dilation=c["dilation"], groups=c["groups"]).eval()
    frames = torch.export.Dim("frames", min=8, max=8192)
    cm = wispy.compile_model(conv, (torch.randn(1, c["cin"], 40),), dynamic_shapes={"input": {2: frames}},
                             dump_dir=tmp_path, progress=False)
    wispy_ir = (tmp_path / "4-wispy.mlir").read_text()
    assert not [op for op in CONV_OPS if op in wispy_ir]
    for t in (9, 40, 333):
        x = torch.randn(1, c["cin"], t)
        with torch.no_grad():
            want = conv(x)
        got = cm(x)
        assert got.shape == want.shape
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=ATOL, rtol=RTOL)


PACKED_CASES = {
    # (Cin, Cout, K, stride, dilation, frames): partial tiles on both sides, a reduction
    # split into uneven k-blocks, a 1x1 convolution.
    "strided-blocks": (13, 21, 7, 2, 1, 61),
    "dilated-blocks": (9, 17, 5, 1, 3, 50),
    "pointwise": (40, 24, 1, 1, 1, 33),
}


@pytest.mark.parametrize("k_block", [0, 10])
@pytest.mark.parametrize("name", list(PACKED_CASES))
def test_packed_form_matches_torch(name, k_block, tmp_path):
    """The packed mmt4d form at batch 1: one mmt4d per k-block (chained through the
    accumulator), partial row and column tiles unpacked away, against PyTorch; and the
    same module with the packed form off (plain matmul) for comparison."""
    cin, cout, k, stride, dil, t = PACKED_CASES[name]
    torch.manual_seed(2)
    conv = torch.nn.Conv1d(cin, cout, k, stride=stride, dilation=dil, padding=k // 2).eval()
    x = torch.randn(1, cin, t)
    with torch.no_grad():
        want = conv(x).numpy()
    for packed in (True, False):
        pipe = f"builtin.module(wispy-conv1d-im2col{{packed={str(packed).lower()} k-block={k_block}}})"
        cm = wispy.compile_model(conv, (x,), wispy_pipeline=pipe, dump_dir=tmp_path / str(packed),
                                 progress=False)
        wispy_ir = (tmp_path / str(packed) / "4-wispy.mlir").read_text()
        n_mmt4d = wispy_ir.count("linalg.mmt4d ")
        blocks = -(-cin * k // k_block) if k_block else 1
        assert n_mmt4d == (blocks if packed else 0), wispy_ir
        np.testing.assert_allclose(cm(x).numpy(), want, atol=ATOL, rtol=RTOL)

"""wispy-block-sparse against PyTorch: random block patterns, the packed form's arithmetic,
and compiled models (Linear, GRU, LSTM with projection) on host, arm64 and Vulkan."""
import numpy as np
import pytest
import torch
from torch import nn

import wispy
from wispy.compiler.pipeline import DEFAULT_WISPY_PIPELINE
from wispy.compress import prune_block_sparse
from wispy.models.acoustic import GRUAcousticModel
from wispy.dialects import bspc

ATOL = 2e-5


def _random_block_sparse(rng, m, n, row_edges, col_edges, mode):
    """A dense m x n matrix with, inside each block, random whole rows/columns zeroed."""
    w = rng.standard_normal((m, n)).astype(np.float32)
    for i in range(len(row_edges) - 1):
        for j in range(len(col_edges) - 1):
            r0, r1, c0, c1 = row_edges[i], row_edges[i + 1], col_edges[j], col_edges[j + 1]
            block = w[r0:r1, c0:c1]
            if mode in ("rows", "both"):
                block[rng.random(r1 - r0) < 0.8, :] = 0
            if mode in ("cols", "both"):
                block[:, rng.random(c1 - c0) < 0.7] = 0
    return w


@pytest.mark.parametrize("shape,rows,cols,mode", [
    ((96, 64), [0, 96], [0, 16, 32, 48, 64], "rows"),          # column strips, rows pruned (RTMobile)
    ((96, 64), [0, 32, 64, 96], [0, 64], "cols"),              # row strips, columns pruned
    ((96, 64), [0, 32, 64, 96], [0, 16, 32, 48, 64], "both"),  # tiles
    ((90, 61), [0, 90], [0, 15, 30, 46, 61], "rows"),          # uneven strips (sizes differ by one)
])
def test_packed_form_is_exact(shape, rows, cols, mode):
    rng = np.random.default_rng(0)
    w = _random_block_sparse(rng, *shape, rows, cols, mode)
    grid, cost = bspc.detect(w)
    sp = bspc.pack(w, grid)
    np.testing.assert_array_equal(sp.to_dense(), w)
    assert sp.nonzeros == np.count_nonzero(w)
    assert sp.work < w.size / 2, sp.describe()
    x = rng.standard_normal((5, shape[1])).astype(np.float32)
    np.testing.assert_allclose(sp.matmul(x), x @ w.T, atol=1e-4)


def test_detect_finds_the_pruning_grid():
    rng = np.random.default_rng(1)
    w = _random_block_sparse(rng, 256, 128, [0, 256], [0, 32, 64, 96, 128], "rows")
    (row_edges, col_edges), _ = bspc.detect(w)
    assert list(row_edges) == [0, 256] and list(col_edges) == [0, 32, 64, 96, 128]


def test_padding_and_buckets_keep_values():
    """Blocks of different survivor counts go to different buckets; padding is zero."""
    w = np.zeros((64, 64), np.float32)
    w[:40, :32] = 1.0   # block 0: 40 rows
    w[:8, 32:] = 2.0    # block 1: 8 rows
    sp = bspc.pack(w, bspc.detect(w, (64, 32))[0])
    assert sorted(bk.values.shape[1] for bk in sp.buckets) == [8 + 1, 40 + 1]  # + the zero row
    np.testing.assert_array_equal(sp.to_dense(), w)


def _compile(model, x, **kw):
    return wispy.compile_model(model, (x,), progress=False, explain=True, **kw)


def _lowered(cm):
    return [r for r in cm.remarks if "wispy-block-sparse" in r and "lowered" in r]


class _MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(64, 256), nn.Linear(256, 32)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


@pytest.mark.parametrize("block,prune", [("tiles:64x32", "both"), ("cols:4", "rows"), ("rows:4", "cols")])
def test_linear_layers_match_pytorch(block, prune):
    torch.manual_seed(0)
    model = _MLP().eval()
    prune_block_sparse(model, rate=6.0, block=block, prune=prune, layers=["a.weight", "b.weight"])
    x = torch.randn(7, 64)
    cm = _compile(model, x)
    assert len(_lowered(cm)) == 2, cm.remarks
    with torch.no_grad():
        np.testing.assert_allclose(cm(x), model(x).numpy(), atol=ATOL)


def test_gru_recurrence_and_projections_any_length():
    torch.manual_seed(0)
    model = GRUAcousticModel(n_feats=40, hidden=128, layers=2, n_classes=20).eval()
    prune_block_sparse(model, rate=8.0, block="cols:4", prune="rows", layers="rnn")
    T = torch.export.Dim("T", min=1, max=1000)
    cm = _compile(model, torch.randn(1, 20, 40), dynamic_shapes={"x": {1: T}})
    lowered = " ".join(_lowered(cm))
    for name in ("weight_ih_l0", "weight_hh_l0", "weight_ih_l1", "weight_hh_l1"):
        assert name in lowered, cm.remarks
    for t in (1, 37, 100):
        x = torch.randn(1, t, 40)
        with torch.no_grad():
            np.testing.assert_allclose(cm(x), model(x).numpy(), atol=ATOL)


def test_row_tile_sizes():
    """16 rows per tile on x86; on Arm the widest tile that pads at most 5% more than 16
    rows would, and never wider than armv7's 16 NEON registers allow."""
    from wispy.kernels.row_tiles import row_tile

    assert row_tile(308, arm=False) == 16
    assert row_tile(308, arm=True) == 64          # 320 rows either way
    assert row_tile(156, arm=True) == 32          # 192 rows at 64 against 160
    assert row_tile(100, arm=True) == 16          # 112 rows at 16, 128 at 32
    assert row_tile(308, arm=True, widest=32) == 32


@pytest.mark.parametrize("target", ["host", pytest.param("arm64", marks=pytest.mark.arm64)])
@pytest.mark.parametrize("hidden,block,rate", [
    (48, "cols:1", 4.0),   # one block per weight (its dimension folded away), rows not a whole tile
    (40, "cols:2", 10.0),  # blocks of fewer rows than one tile
    (80, "cols:4", 3.0),   # several row tiles, uneven count for the register tiling
])
def test_tiled_matvec_shapes(target, hidden, block, rate):
    """The recurrent matvec packed in row tiles (CPU targets): padding, unit dimensions and
    the register tiling for each shape class, against PyTorch (the loop's matvec: the
    whole-recurrence kernel off)."""
    torch.manual_seed(1)
    model = GRUAcousticModel(n_feats=12, hidden=hidden, layers=1, n_classes=7).eval()
    prune_block_sparse(model, rate=rate, block=block, prune="rows", layers="rnn")
    x = torch.randn(1, 9, 12)
    cm = wispy.compile_model(model, (x,), target=target, progress=False, explain=True, recurrent_kernel="off")
    assert "weight_hh_l0" in " ".join(_lowered(cm)), cm.remarks
    with torch.no_grad():
        np.testing.assert_allclose(cm(x), model(x).numpy(), atol=ATOL)


@pytest.mark.parametrize("scatter", [0, 1, 2])
@pytest.mark.parametrize("block,prune", [("cols:4", "rows"), ("tiles:32x32", "both")])
def test_scatter_combine_matches_pytorch(scatter, block, prune, tmp_path):
    """The partial sums added by a scatter (1: the recurrent product, the default on Arm;
    2: the input projection over a dynamic number of frames too) or read by the combine
    (0, the default on x86), for RTMobile's strips (rows kept in several strips add
    twice into one output) and for tiles (several buckets), against PyTorch at several
    lengths; the dumped IR shows which form was built."""
    torch.manual_seed(2)
    model = GRUAcousticModel(n_feats=80, hidden=64, layers=1, n_classes=7).eval()
    prune_block_sparse(model, rate=4.0, block=block, prune=prune, layers="rnn")
    pipe = DEFAULT_WISPY_PIPELINE.replace("wispy-block-sparse", f"wispy-block-sparse{{scatter-combine={scatter}}}")
    T = torch.export.Dim("T", min=1, max=1000)
    cm = wispy.compile_model(model, (torch.randn(1, 11, 80),), progress=False, explain=True, wispy_pipeline=pipe,
                             dump_dir=tmp_path, dynamic_shapes={"x": {1: T}})
    lowered = " ".join(_lowered(cm))
    assert "weight_hh_l0" in lowered and "weight_ih_l0" in lowered, cm.remarks
    # At 1, one scatter per bucket for the recurrent product; at 2, for the input
    # projection over all frames (a dynamic number of rows) too.
    scatters = [ln for ln in (tmp_path / "4-wispy.mlir").read_text().splitlines() if "iree_linalg_ext.scatter" in ln]
    over_frames = [ln for ln in scatters if "x?xf32>, tensor<" in ln]  # updates [N, P], P dynamic
    assert bool(scatters) == (scatter > 0) and bool(over_frames) == (scatter == 2), scatters
    for t in (1, 11, 40):
        x = torch.randn(1, t, 80)
        with torch.no_grad():
            np.testing.assert_allclose(cm(x), model(x).numpy(), atol=ATOL)


def test_lstm_with_projection():
    torch.manual_seed(0)
    model = nn.LSTM(32, 128, num_layers=1, batch_first=True, proj_size=64).eval()
    prune_block_sparse(model, rate=5.0, block="tiles:64x32", prune="both", layers=["weight_*"])
    x = torch.randn(1, 30, 32)

    class Wrap(nn.Module):
        def __init__(self, rnn):
            super().__init__()
            self.rnn = rnn

        def forward(self, x):
            return self.rnn(x)[0]

    wrapped = Wrap(model).eval()
    cm = _compile(wrapped, x)
    assert any("weight_hr" in r for r in _lowered(cm)), cm.remarks
    with torch.no_grad():
        np.testing.assert_allclose(cm(x), wrapped(x).numpy(), atol=ATOL)


def test_off_switch_and_dense_weights_stay_dense():
    torch.manual_seed(0)
    model = _MLP().eval()
    x = torch.randn(3, 64)
    dense = _compile(model, x)
    assert not _lowered(dense)
    assert any("declined" in r and "min-gain" in r for r in dense.remarks), dense.remarks
    prune_block_sparse(model, rate=8.0, block="cols:4", layers=["a.weight"])
    off = _compile(model, x, block_sparse=False)
    assert not _lowered(off)
    with torch.no_grad():
        np.testing.assert_allclose(off(x), model(x).numpy(), atol=ATOL)


def test_sparse_module_is_smaller():
    torch.manual_seed(0)
    model = GRUAcousticModel(n_feats=40, hidden=256, layers=1, n_classes=20).eval()
    prune_block_sparse(model, rate=10.0, block="cols:4", prune="rows", layers="rnn")
    x = torch.randn(1, 10, 40)
    sparse, dense = _compile(model, x), _compile(model, x, block_sparse=False)
    # The recurrent and input matrices hold ~90% of the bytes; stored compact, a tenth.
    assert len(sparse.vmfb) < 0.35 * len(dense.vmfb), (len(sparse.vmfb), len(dense.vmfb))


@pytest.mark.parametrize("target,kw", [pytest.param("arm64", {}, marks=pytest.mark.arm64),
                                       pytest.param("vulkan", {"vulkan_target": "lavapipe"},
                                                    marks=pytest.mark.vulkan)])
def test_sparse_gru_on_device_targets(target, kw):
    torch.manual_seed(0)
    model = GRUAcousticModel(n_feats=16, hidden=64, layers=1, n_classes=10).eval()
    prune_block_sparse(model, rate=4.0, block="cols:2", prune="rows", layers="rnn")
    x = torch.randn(1, 12, 16)
    cm = wispy.compile_model(model, (x,), target=target, progress=False, explain=True,
                             recurrent_kernel="off", **kw)
    assert _lowered(cm), cm.remarks
    with torch.no_grad():
        np.testing.assert_allclose(cm(x), model(x).numpy(), atol=1e-4)


def test_split_combine_feeds_the_gates():
    """split-combine=true: one combine per gate, fused with the gates (off by default)."""
    torch.manual_seed(0)
    model = GRUAcousticModel(n_feats=16, hidden=64, layers=1, n_classes=10).eval()
    prune_block_sparse(model, rate=4.0, block="cols:4", prune="rows", layers="rnn")
    x = torch.randn(1, 21, 16)
    pipe = "builtin.module(wispy-block-sparse{split-combine=true}, util.func(canonicalize, cse))"
    cm = _compile(model, x, wispy_pipeline=pipe, recurrent_kernel="off")
    assert _lowered(cm), cm.remarks
    with torch.no_grad():
        np.testing.assert_allclose(cm(x), model(x).numpy(), atol=ATOL)

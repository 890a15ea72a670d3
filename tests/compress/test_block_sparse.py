"""Block-based structured pruning: the projection gives exactly the block structure (every
block's nonzeros are a dense kept-rows x kept-columns sub-matrix), the rates are the closest
achievable and exact where the sizes allow, uniform mode keeps the same count per block, masks
survive saving and loading, pruning a model selects the right matrices."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wispy.compress import (
    BlockSpec,
    apply_masks,
    block_sparse_mask,
    block_structure,
    compression_report,
    load_pruned,
    mask_gradients,
    masks_from_weights,
    project_block_sparse,
    prunable_matrices,
    prune_block_sparse,
    rates_for_target,
    save_pruned,
)
from wispy.models.acoustic import ConvGRUModel, GRUAcousticModel, LSTMAcousticModel

SPECS = ["cols:4", "rows:3", "tiles:64x32", "tiles:*x48", "grid:3x2", "whole", "tiles:50x30"]


def _w(shape=(384, 128), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g)


def _blocks(mask: np.ndarray, spec: BlockSpec):
    re, ce = spec.edges(*mask.shape)
    for i in range(len(re) - 1):
        for j in range(len(ce) - 1):
            yield (i, j), mask[re[i]:re[i + 1], ce[j]:ce[j + 1]]


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("prune", ["rows", "cols", "both"])
@pytest.mark.parametrize("uniform", [True, False])
@pytest.mark.parametrize("rate", [2.0, 4.0, 10.0, 50.0])
def test_projection_is_block_structured(spec, prune, uniform, rate):
    W = _w()
    bspec = BlockSpec.parse(spec)
    m = block_sparse_mask(W, rate, spec, prune, uniform).numpy()
    per_block = []
    for _, B in _blocks(m, bspec):
        rows, cols = B.any(1), B.any(0)
        # the nonzeros of every block are exactly (kept rows) x (kept columns): a dense sub-matrix
        assert (B == np.outer(rows, cols)).all()
        if prune == "rows" and rows.any():
            assert cols.all(), "pruning rows keeps whole rows of the block"
        if prune == "cols" and cols.any():
            assert rows.all(), "pruning columns keeps whole columns of the block"
        per_block.append((int(rows.sum()), int(cols.sum()), B.shape))
    if uniform:
        # the same number of surviving rows (columns) in every block (capped by a short block)
        kr = {min(r, s[0]) for r, _, s in per_block if s[0] >= max(p[0] for p in per_block)}
        kc = {c for _, c, s in per_block if s[1] >= max(p[1] for p in per_block)}
        if prune in ("rows", "both"):
            assert len({r for r, _, s in per_block if s[0] == max(q[2][0] for q in per_block)}) == 1, per_block
        if prune in ("cols", "both"):
            assert len({c for _, c, s in per_block if s[1] == max(q[2][1] for q in per_block)}) == 1, per_block
        assert kr and kc
    # Z = projection: W on the mask, zero elsewhere
    Z = project_block_sparse(W, rate, spec, prune, uniform)
    assert torch.equal(Z, W * torch.from_numpy(m))


def test_projection_keeps_largest_rows_per_block():
    """rows mode is the exact Euclidean projection: inside each block the kept rows are the
    ones of largest L2 norm (so no other choice of the same counts is closer to W)."""
    W = _w((96, 40), seed=3)
    spec = BlockSpec.parse("cols:4")
    m = block_sparse_mask(W, 4.0, spec, "rows", True).numpy()
    _, ce = spec.edges(96, 40)
    for j in range(4):
        S = W[:, ce[j]:ce[j + 1]].numpy()
        norms = np.linalg.norm(S, axis=1)
        kept = m[:, ce[j]].nonzero()[0]
        assert len(kept) == 24
        assert set(kept) == set(np.argsort(-norms)[:24])


@pytest.mark.parametrize("rate", [2, 4, 8, 16, 32])
@pytest.mark.parametrize("spec,prune", [("cols:4", "rows"), ("rows:3", "cols"), ("tiles:64x32", "rows"),
                                        ("grid:4x4", "cols")])
def test_rates_exact_when_divisible(rate, spec, prune):
    W = _w((384, 128))
    for uniform in (True, False):
        m = block_sparse_mask(W, rate, spec, prune, uniform)
        assert int(m.sum()) * rate == W.numel(), (uniform, int(m.sum()))


@pytest.mark.parametrize("rate", [3.0, 7.0, 10.0, 20.0, 245.0])
def test_rate_is_the_closest_achievable(rate):
    """RTMobile's pattern: uniform rows in 4 column strips can keep k rows per strip, i.e.
    k * 128 weights; the projection takes the k closest to total/rate (log scale)."""
    W = _w((384, 128))
    m = block_sparse_mask(W, rate, "cols:4", "rows", True)
    kept = int(m.sum())
    assert kept % 128 == 0
    options = np.arange(1, 385) * 128
    best = options[np.argmin(np.abs(np.log(options) - math.log(W.numel() / rate)))]
    assert kept == best


def test_uniform_survivors_and_nonuniform_freedom():
    # make strip 0 much larger: non-uniform rows give it more rows, uniform the same count
    W = _w((256, 128))
    W[:, :32] *= 10
    u = block_sparse_mask(W, 8, "cols:4", "rows", True).numpy()
    n = block_sparse_mask(W, 8, "cols:4", "rows", False).numpy()
    ku = [u[:, 32 * j].sum() for j in range(4)]
    kn = [n[:, 32 * j].sum() for j in range(4)]
    assert ku == [32, 32, 32, 32]
    assert sum(kn) == 128 and kn[0] > 32


def test_block_spec_parse_and_edges():
    assert str(BlockSpec.parse("cols:4")) == "cols:4"
    assert str(BlockSpec.parse("rows:3")) == "rows:3"
    assert str(BlockSpec.parse("tiles:64x32")) == "tiles:64x32"
    assert str(BlockSpec.parse("grid:2x4")) == "grid:2x4"
    assert str(BlockSpec.parse("whole")) == "whole"
    re, ce = BlockSpec.parse("cols:4").edges(384, 1024)
    assert re.tolist() == [0, 384] and ce.tolist() == [0, 256, 512, 768, 1024]  # RTMobile's strips
    re, ce = BlockSpec.parse("tiles:64x50").edges(130, 120)
    assert re.tolist() == [0, 64, 128, 130] and ce.tolist() == [0, 50, 100, 120]
    re, ce = BlockSpec.parse("cols:4").edges(10, 10)
    assert np.diff(ce).max() - np.diff(ce).min() <= 1
    for bad in ("cols:0", "tiles:3", "strips:4", "tiles:0x4"):
        with pytest.raises(ValueError):
            BlockSpec.parse(bad)


def test_matrix_selection():
    torch.manual_seed(0)
    gru = GRUAcousticModel(40, 32, 2, 10)
    assert prunable_matrices(gru, "rnn") == ["rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.weight_ih_l1",
                                             "rnn.weight_hh_l1"]
    assert prunable_matrices(gru, "all")[-1] == "head.weight"
    assert prunable_matrices(gru, ["rnn.weight_hh_*"]) == ["rnn.weight_hh_l0", "rnn.weight_hh_l1"]
    conv = ConvGRUModel(40, 16, 16, 1, 10)
    assert prunable_matrices(conv, "conv") == ["front.0.weight"]
    with pytest.raises(ValueError):
        prunable_matrices(gru, ["nothing.*"])
    with pytest.raises(ValueError):
        prunable_matrices(gru, ["rnn.bias_ih_l0"])


@pytest.mark.parametrize("cls", [GRUAcousticModel, LSTMAcousticModel])
def test_prune_model_rates_report_and_per_layer(cls):
    torch.manual_seed(0)
    model = cls(40, 64, 2, 10)
    x = torch.randn(2, 7, 40)
    pruned = prune_block_sparse(model, rate={"rnn.weight_ih_l0": 2, "rnn.weight_*": 8}, block="cols:4",
                                layers="rnn", inplace=False)
    assert pruned is not model and not hasattr(model, "wispy_masks")
    rep = compression_report(pruned, with_blocks=True)
    rates = {m["name"]: m["rate"] for m in rep["matrices"]}
    assert rates["rnn.weight_ih_l0"] == 2 and rates["rnn.weight_hh_l1"] == 8
    for m in rep["matrices"]:
        assert m["blocks"]["dense_blocks"]
        w = dict(pruned.named_parameters())[m["name"]]
        assert int((w != 0).sum()) == m["kept"]
    assert rep["pruned"]["rate"] == rep["pruned"]["total"] / rep["pruned"]["kept"]
    assert rep["overall"]["total"] == sum(p.numel() for p in model.parameters())
    assert 1 < rep["overall"]["rate"] < rep["pruned"]["rate"]
    pruned(x)  # still runs
    # pruning again at a higher rate keeps earlier zeros
    before = {n: m.clone() for n, m in pruned.wispy_masks.items()}
    prune_block_sparse(pruned, rate=16, block="cols:4", layers="rnn")
    for n, m in pruned.wispy_masks.items():
        assert not (m & ~before[n]).any()


def test_conv1d_as_matrix():
    torch.manual_seed(0)
    conv = ConvGRUModel(40, 32, 16, 1, 10)
    prune_block_sparse(conv, rate=5, block="cols:4", prune="cols", layers="conv")
    w = conv.front[0].weight  # [32, 40, 5] -> [32, 200]
    bs = block_structure(w, "cols:4")
    assert bs["dense_blocks"] and int((w != 0).sum()) * 5 == w.numel()


def test_rates_for_target():
    torch.manual_seed(0)
    model = GRUAcousticModel(40, 64, 2, 10)
    r = rates_for_target(model, 10, "rnn", sensitivity={"rnn.weight_ih_l0": 3})
    sizes = {n: p.numel() for n, p in model.named_parameters() if n in r}
    kept = sum(sizes[n] / r[n] for n in r)
    assert abs(sum(sizes.values()) / kept - 10) < 1e-6
    assert abs(r["rnn.weight_hh_l0"] / r["rnn.weight_ih_l0"] - 3) < 1e-6


@pytest.mark.parametrize("target", [4, 10, 50, 100, 245])
def test_rates_for_target_reaches_structured_targets(target):
    """RTMobile's 4 column strips, rows pruned, uniform: 384-row matrices keep whole rows per
    strip, at least one, so a common scale overshoots 245x (299x: every matrix at one row); the
    allocation tops the most sensitive matrix up until the total is as close as it can be."""
    torch.manual_seed(0)
    model = GRUAcousticModel(40, 128, 2, 46)
    sens = {"rnn.weight_ih_l0": 3}
    r = rates_for_target(model, target, "rnn", sens, block="cols:4", prune="rows", uniform=True)
    pruned = prune_block_sparse(model, rate=r, block="cols:4", prune="rows", layers="rnn", inplace=False)
    achieved = compression_report(pruned)["pruned"]["rate"]
    assert abs(math.log(achieved / target)) <= 0.02, (target, achieved, r)
    assert r["rnn.weight_ih_l0"] < r["rnn.weight_hh_l0"]


def test_masks_survive_save_and_load(tmp_path):
    from wispy.models.registry import load_checkpoint, model_config

    torch.manual_seed(0)
    model = GRUAcousticModel(40, 64, 2, 10)
    model.wispy_config = {**model_config(model), "feature": "logmel", "n_mels": 40, "norm": None}
    prune_block_sparse(model, rate=8, block="tiles:48x16", prune="both", layers="rnn", uniform=False)
    save_pruned(model, tmp_path / "p.pt")
    back = load_pruned(tmp_path / "p.pt")
    assert back.wispy_prune == model.wispy_prune
    assert set(back.wispy_masks) == set(model.wispy_masks)
    for n, m in model.wispy_masks.items():
        assert torch.equal(back.wispy_masks[n], m)
    for (n, p), (_, q) in zip(model.named_parameters(), back.named_parameters(), strict=False):
        assert torch.equal(p, q), n
    # the plain loader reads a pruned checkpoint too (zeros in place), and the masks come back
    # from the zeros
    plain = load_checkpoint(tmp_path / "p.pt")
    again = masks_from_weights(plain, "rnn")
    for n, m in model.wispy_masks.items():
        assert torch.equal(again[n], m)
    # the state dict is the unpruned architecture's: a fresh model loads it strictly
    GRUAcousticModel(40, 64, 2, 10).load_state_dict(model.state_dict(), strict=True)


def test_masked_step_keeps_zeros():
    torch.manual_seed(0)
    model = GRUAcousticModel(40, 32, 1, 10)
    prune_block_sparse(model, rate=4, block="cols:4", layers="all")
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        loss = model(torch.randn(2, 5, 40)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        mask_gradients(model)
        opt.step()
        apply_masks(model)
    params = dict(model.named_parameters())
    for n, m in model.wispy_masks.items():
        assert (params[n][~m] == 0).all()
        assert (params[n][m] != 0).all()

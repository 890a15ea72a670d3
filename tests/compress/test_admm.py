"""ADMM block-sparse training on a tiny GRU and tiny synthetic data (no corpus): the ADMM
iterations pull W toward the block-structured set, the hard prune ends exactly block-sparse at
the requested rate, masked fine-tuning keeps the zeros zero, runs resume, and the result saves
and loads with its masks."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from wispy.compress import (
    ADMM,
    admm_prune,
    admm_train,
    block_structure,
    compression_report,
    finetune_masked,
    load_pruned,
    magnitude_prune,
    prune_block_sparse,
)
from wispy.models.acoustic import GRUAcousticModel

N_FEATS, N_CLASSES = 8, 6


def _data(n, seed):
    """Utterances whose frames carry their label in the features (learnable), 12-20 frames."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        ids = rng.integers(1, N_CLASSES, size=rng.integers(2, 5)).tolist()
        frames = []
        for p in ids:
            for _ in range(rng.integers(3, 6)):
                f = rng.standard_normal(N_FEATS).astype(np.float32) * 0.3
                f[p] += 2.0
                frames.append(f)
        out.append((np.stack(frames), ids))
    return out


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def data():
    return {"train": _data(48, 0), "valid": _data(12, 1)}


def _model(seed=0):
    torch.manual_seed(seed)
    return GRUAcousticModel(N_FEATS, 24, 1, N_CLASSES)


RNN = ["rnn.weight_ih_l0", "rnn.weight_hh_l0"]


def test_admm_pulls_weights_to_the_set(data):
    model = _model()
    admm = ADMM(model, rate=4, block="cols:4", prune="rows", layers="rnn", rho=0.1)
    d0 = admm.distance_to_set()
    r = admm_train(model, None, rate=4, block="cols:4", prune="rows", layers="rnn", epochs=4, lr=1e-2,
                   rho=(0.1, 10.0), update_every=6, batch_size=8, data=data, progress=False)
    hist = r["history"]
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4]
    assert hist[-1]["residual"] < 0.5 * hist[0]["residual"], hist
    assert hist[-1]["distance"] < 0.5 * d0, (d0, hist)
    assert r["admm"].rho == pytest.approx(10.0)
    # nothing is pruned by ADMM itself
    assert not getattr(model, "wispy_masks", None)


def test_admm_prune_ends_block_sparse_and_finetune_keeps_zeros(data, tmp_path):
    model = _model()
    info = admm_prune(model, None, rate=4, block="cols:4", prune="rows", layers="rnn", admm_epochs=2,
                      finetune_epochs=2, lr=1e-2, finetune_lr=1e-2, rho=(1e-2, 1.0), update_every=3, batch_size=8,
                      data=data, out_dir=tmp_path, progress=False)
    params = dict(model.named_parameters())
    pruned = dict(torch.load(tmp_path / "pruned.pt", weights_only=False)["model"])
    for n in RNN:
        m = model.wispy_masks[n]
        assert int(m.sum()) * 4 == m.numel()
        bs = block_structure(params[n], "cols:4", m)
        assert bs["dense_blocks"]
        assert len({k for row in bs["kept_rows"] for k in row}) == 1  # uniform
        assert (params[n][~m] == 0).all()
        # fine-tuning moved the survivors but not the zeros
        assert (pruned[n][~m] == 0).all() and not torch.equal(pruned[n], params[n].detach())
    assert compression_report(model)["pruned"]["rate"] == 4
    assert info["compression"]["pruned"]["rate"] == 4
    for f in ("admm_last.pt", "pruned.pt", "ft_last.pt", "best.pt", "final.pt", "info.json", "history.json"):
        assert (tmp_path / f).exists(), f
    back = load_pruned(tmp_path / "final.pt")
    for n in RNN:
        assert torch.equal(back.wispy_masks[n], model.wispy_masks[n])
        assert torch.equal(dict(back.named_parameters())[n], params[n])
    # a finished directory is loaded, not re-run
    again = _model(seed=5)
    info2 = admm_prune(again, None, rate=4, block="cols:4", prune="rows", layers="rnn", admm_epochs=2,
                       finetune_epochs=2, data=data, out_dir=tmp_path, progress=False)
    assert info2 == json.loads((tmp_path / "info.json").read_text())
    assert torch.equal(dict(again.named_parameters())[RNN[1]], params[RNN[1]])


def test_finetune_holds_masks_of_a_previous_pruning(data):
    model = _model()
    prune_block_sparse(model, rate=3, block="tiles:24x4", prune="both", layers="rnn", uniform=False)
    before = {n: m.clone() for n, m in model.wispy_masks.items()}
    finetune_masked(model, None, epochs=2, lr=1e-2, batch_size=8, data=data, progress=False)
    params = dict(model.named_parameters())
    for n, m in before.items():
        assert torch.equal(model.wispy_masks[n], m)
        assert (params[n][~m] == 0).all()
        assert bool((params[n][m] != 0).all())


def test_finetune_without_masks_is_plain_training(data, tmp_path):
    model = _model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    r = finetune_masked(model, None, epochs=2, lr=1e-2, batch_size=8, data=data, out_dir=tmp_path, progress=False)
    assert [h["epoch"] for h in r["history"]] == [0, 1, 2]
    assert all(not torch.equal(p, before[n]) for n, p in model.named_parameters())
    assert (tmp_path / "ft_last.pt").exists() and (tmp_path / "best.pt").exists()
    # resumes a finished run without training again
    again = finetune_masked(_model(seed=3), None, epochs=2, data=data, out_dir=tmp_path, progress=False)
    assert again["best_epoch"] == r["best_epoch"]


def test_chained_rate_keeps_earlier_zeros(data):
    model = _model()
    magnitude_prune(model, None, rate=2, block="cols:2", layers="rnn", finetune_epochs=1, batch_size=8, data=data,
                    progress=False)
    first = {n: m.clone() for n, m in model.wispy_masks.items()}
    admm_prune(model, None, rate=6, block="cols:2", layers="rnn", admm_epochs=1, finetune_epochs=1, batch_size=8,
               update_every=3, data=data, progress=False)
    for n, m in model.wispy_masks.items():
        assert not (m & ~first[n]).any()
        assert int(m.sum()) * 6 == m.numel()


def test_admm_resume_equals_uninterrupted(data, tmp_path, monkeypatch):
    import wispy.compress.admm as admm_mod

    kw = dict(rate=4, block="cols:4", prune="rows", layers="rnn", lr=1e-2, rho=(1e-2, 1.0), update_every=3,
              batch_size=8, data=data, progress=False, epochs=3)
    a = _model()
    admm_train(a, None, out_dir=tmp_path / "a", **kw)
    # interrupted during its 3rd epoch, then run again: resumes after epoch 2
    real = admm_mod.run_epoch

    def dies_in_epoch_3(*args, **k):
        if k["epoch"] == 3:
            raise KeyboardInterrupt
        return real(*args, **k)

    monkeypatch.setattr(admm_mod, "run_epoch", dies_in_epoch_3)
    b = _model()
    with pytest.raises(KeyboardInterrupt):
        admm_train(b, None, out_dir=tmp_path / "b", **kw)
    assert torch.load(tmp_path / "b" / "admm_last.pt", weights_only=False)["epoch"] == 2
    monkeypatch.setattr(admm_mod, "run_epoch", real)
    c = _model(seed=7)  # the checkpoint's weights replace these
    r = admm_train(c, None, out_dir=tmp_path / "b", **kw)
    assert [h["epoch"] for h in r["history"]] == [1, 2, 3]
    for (n, p), (_, q) in zip(a.named_parameters(), c.named_parameters(), strict=False):
        assert torch.equal(p, q), n


def test_seed_draws_other_batches_and_resume_keeps_it(data, tmp_path):
    """Another seed trains another sample of the same recipe (other batch orders); a run is
    resumed only with the seed it was started with, for ADMM and for fine-tuning."""
    kw = dict(rate=4, block="cols:4", prune="rows", layers="rnn", lr=1e-2, rho=(1e-2, 1.0), update_every=3,
              batch_size=8, data=data, progress=False, epochs=1)
    a, b, c = _model(), _model(), _model()
    admm_train(a, None, seed=0, **kw)
    admm_train(b, None, seed=0, **kw)
    admm_train(c, None, seed=1, out_dir=tmp_path / "admm", **kw)
    assert torch.equal(a.rnn.weight_hh_l0, b.rnn.weight_hh_l0)  # a seed is repeatable
    assert not torch.equal(a.rnn.weight_hh_l0, c.rnn.weight_hh_l0)
    with pytest.raises(ValueError, match=r"seed 1, not 0: give --seed 1"):
        admm_train(_model(), None, seed=0, out_dir=tmp_path / "admm", **kw)
    admm_train(_model(), None, seed=1, out_dir=tmp_path / "admm", **kw)  # the same seed resumes

    ft = dict(epochs=1, batch_size=8, data=data, progress=False)
    finetune_masked(c, None, seed=1, out_dir=tmp_path / "ft", **ft)
    with pytest.raises(ValueError, match=r"seed 1, not 2"):
        finetune_masked(c, None, seed=2, out_dir=tmp_path / "ft", **ft)

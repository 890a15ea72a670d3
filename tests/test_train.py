"""CTC training and evaluation (wispy.training) on a tiny synthesised corpus: training learns
(test PER on held-out voices far below chance), resuming continues the epoch count and
reproduces an uninterrupted run, and the compiled module decodes exactly like PyTorch."""
from __future__ import annotations

import os
import shutil
from collections import Counter

import pytest
import torch

from wispy.data.corpus import generate_corpus, load_split, read_phones
from wispy.metrics import error_rate
from wispy.models.acoustic import GRUAcousticModel
from wispy.training.evaluate import evaluate
from wispy.models.registry import load_checkpoint
from wispy.training.ctc import train_ctc

# Measured (200 train utterances, GRU 1x128, 20 epochs of batch 8 at lr 1e-2, ~27 s on 2
# cores): test PER 0.55 / 0.51 for model seeds 0 / 1 (at lr 5e-3: 0.56 / 0.71 / 0.61 for seeds
# 0 / 1 / 2, the spread being when training leaves CTC's all-blank plateau). Chance on the test
# split: the untrained model ~1.7-2.1 (insertions), the most frequent phone repeated to the
# reference length 0.93, once per utterance 0.96, all blank 1.0. A model that only learns the
# phone prior or stays on the plateau (valid PER 0.98-0.99 for the first 4-6 epochs) is >= 0.9.
MAX_TRAINED_PER = 0.75


def _gru(hidden=128, seed=0):
    torch.manual_seed(seed)
    return GRUAcousticModel(40, hidden, 1, 46)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    generate_corpus(out, n_train=200, n_valid=20, n_test=20, workers=2, progress=False)
    assert len(read_phones(out)) == 46
    return out


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    model = _gru()
    info = train_ctc(model, corpus, epochs=20, batch_size=8, lr=1e-2, out_dir=out, progress=False)
    return model, info, out


def test_trained_per_far_below_chance(corpus, trained):
    model, info, out = trained
    assert info["epoch"] == 20 and len(info["history"]) == 20
    assert (out / "best.pt").exists() and (out / "last.pt").exists() and (out / "history.json").exists()

    test = load_split(corpus, "test")
    refs = [ids for _, ids, _ in test]
    counts = Counter(p for _, ids, _ in load_split(corpus, "train") for p in ids)
    top = counts.most_common(1)[0][0]
    chance = min(error_rate(refs, [[top] * len(r) for r in refs]),  # most frequent phone
                 error_rate(refs, [[] for _ in refs]),               # all blank
                 evaluate(_gru(seed=1), corpus, "test", progress=False)["per"])  # untrained
    assert chance > 0.9, chance

    per = evaluate(model, corpus, "test", progress=False)["per"]
    assert per < MAX_TRAINED_PER < chance - 0.15, (per, chance)
    # the best checkpoint rebuilds the model (config inside) and is at least as good on valid
    best = load_checkpoint(out / "best.pt")
    assert type(best) is GRUAcousticModel
    assert evaluate(best, corpus, "valid", progress=False)["per"] == pytest.approx(info["best_valid_per"])
    assert info["best_valid_per"] == min(h["valid_per"] for h in info["history"])


# In the full default suite these trainings ran 100-200x slower than alone (287 s against
# 1.5 s), for a reason not yet found; the resume tests are slow-marked until it is.
@pytest.mark.slow
def test_resume_continues_epoch_count(corpus, trained, tmp_path):
    _, info, out = trained
    run = tmp_path / "run"
    shutil.copytree(out, run)
    again = train_ctc(_gru(seed=5), corpus, epochs=20, batch_size=8, lr=1e-2, out_dir=run, progress=False)
    assert again["epoch"] == 20 and again["history"] == info["history"]  # nothing left to do
    more = train_ctc(_gru(seed=5), corpus, epochs=21, batch_size=8, lr=1e-2, out_dir=run, progress=False)
    assert more["epoch"] == 21 and [h["epoch"] for h in more["history"]] == list(range(1, 22))
    assert more["history"][:20] == info["history"]
    assert torch.load(run / "last.pt", weights_only=False)["epoch"] == 21


@pytest.mark.slow
def test_resume_reproduces_uninterrupted_run(corpus, tmp_path):
    kw = dict(batch_size=8, lr=1e-2, progress=False)
    straight = _gru(hidden=32)
    train_ctc(straight, corpus, epochs=2, out_dir=tmp_path / "a", **kw)
    first = _gru(hidden=32)
    train_ctc(first, corpus, epochs=1, out_dir=tmp_path / "b", **kw)
    resumed = _gru(hidden=32, seed=7)  # weights come from last.pt
    info = train_ctc(resumed, corpus, epochs=2, out_dir=tmp_path / "b", **kw)
    assert [h["epoch"] for h in info["history"]] == [1, 2]
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)


def test_cli_finetune_holds_the_masks(corpus, trained, tmp_path, capsys):
    """`wispy finetune` trains a pruned checkpoint further: the zeros stay zero, the
    survivors move, final.pt carries the masks and the printed test PER is the saved
    model's; a dense checkpoint is refused with a message saying what to do."""
    import copy

    from wispy.cli.main import main
    from wispy.compress import load_pruned, prune_block_sparse
    from wispy.compress.block_sparse import save_pruned

    model, _, out = trained
    pruned = copy.deepcopy(model)
    prune_block_sparse(pruned, rate=4, block="cols:4", prune="rows", layers="rnn", uniform=True)
    save_pruned(pruned, tmp_path / "pruned.pt")
    rc = main(["finetune", str(tmp_path / "pruned.pt"), "--out", str(tmp_path / "ft"), "--epochs", "2",
               "--lr", "5e-3", "--corpus", str(corpus), "-q"])
    printed = capsys.readouterr().out
    assert rc == 0
    final = load_pruned(tmp_path / "ft" / "final.pt")
    before, after = dict(pruned.named_parameters()), dict(final.named_parameters())
    for name, mask in pruned.wispy_masks.items():
        assert torch.equal(final.wispy_masks[name], mask)
        assert (after[name][~mask] == 0).all()
        assert not torch.equal(after[name][mask], before[name][mask].detach())
    per = evaluate(final, corpus, "test", progress=False)["per"]
    assert "pruned matrices 4.0x; test PER " in printed and f"{per:.4f} after 2 epochs" in printed, printed
    assert (tmp_path / "ft" / "best.pt").exists() and (tmp_path / "ft" / "ft_last.pt").exists()
    rc = main(["finetune", str(out / "best.pt"), "--out", str(tmp_path / "ft2"), "--corpus", str(corpus), "-q"])
    assert rc == 1
    assert "has no pruned matrices" in capsys.readouterr().err
    rc = main(["finetune", str(out / "best.pt"), "--out", str(tmp_path / "ft3"), "--epochs", "1",
               "--corpus", str(corpus), "--dense-control", "-q"])
    assert rc == 0 and "dense (the control); test PER" in capsys.readouterr().out
    control = load_pruned(tmp_path / "ft3" / "final.pt")
    assert not getattr(control, "wispy_masks", None)
    assert any(not torch.equal(p, q) for p, q in zip(control.parameters(), model.parameters()))


def test_finetune_distils_from_the_teacher(corpus, trained):
    """Masked fine-tuning with a teacher: from the same start, the student ends closer to the
    teacher's outputs (per-frame KL on the valid split) than without one, its zeros still
    held; a teacher whose outputs cannot be compared is refused."""
    import copy

    from wispy.errors import ModelLoadError
    from wispy.compress import finetune_masked, prune_block_sparse
    from wispy.training.data import prepare_data
    from wispy.training.distill import kd_loss
    from wispy.models.registry import (
        is_channels_first as _channels_first,
        forward_frames as _forward,
        output_lengths,
    )
    from wispy.data.loaders import collate as _collate

    model, _, _ = trained
    start = copy.deepcopy(model)
    prune_block_sparse(start, rate=4, block="cols:4", prune="rows", layers="rnn", uniform=True)
    data = prepare_data(start, corpus)

    def kl_to_teacher(student):
        x, xlen, _, tlen = _collate(data["valid"])
        cf = _channels_first(student.wispy_config)
        with torch.no_grad():
            return kd_loss(_forward(student.eval(), x, cf), _forward(model.eval(), x, cf),
                           output_lengths(student, xlen), tlen).item()

    runs = {}
    for kd in (0.0, 10.0):
        student = copy.deepcopy(start)
        finetune_masked(student, corpus, epochs=2, lr=5e-3, progress=False, data=data, keep_best=False,
                        teacher=model if kd else None, kd_weight=kd)
        for name, mask in start.wispy_masks.items():
            assert (dict(student.named_parameters())[name][~mask] == 0).all()
        runs[kd] = kl_to_teacher(student)
    assert runs[10.0] < 0.8 * runs[0.0], runs

    other = GRUAcousticModel(40, 32, 1, 30)  # 30 classes against the student's 46
    other.wispy_config = {**model.wispy_config, "kwargs": {**model.wispy_config["kwargs"], "n_classes": 30}}
    with pytest.raises(ModelLoadError, match="'n_classes' differs"):
        finetune_masked(copy.deepcopy(start), corpus, epochs=1, progress=False, data=data, teacher=other)


def test_compiled_decodes_like_pytorch(corpus, trained):
    model, _, _ = trained
    r = evaluate(model, corpus, "test", compiled=True, target="host", progress=False)
    assert r["utterances"] == 20
    assert r["differ"] == 0, r["differ_details"]
    assert r["compiled"]["hyps"] == r["hyps"]
    assert r["compiled"]["per"] == r["per"]
    assert r["max_abs_diff"] < 1e-3
    assert 0 < r["rtf"] < 1 and 0 < r["compiled"]["rtf"] < 1


@pytest.mark.parametrize("name", ["gru-small", "lstm-small", "wav2letter-small", "convdfsmn-small"])
def test_models_config_layout_and_output_lengths(name):
    """Every trainable model rebuilds from its checkpoint config, and output_lengths() is the
    number of frames the model really returns (ConvDFSMN's explicitly padded memory included)."""
    from wispy.models.registry import (
        MODELS,
        is_channels_first as _channels_first,
        forward_frames as _forward,
        build_model,
        model_config,
        output_lengths,
    )

    cls, kw = MODELS[name]
    model = cls(**kw, n_classes=46).eval()
    again = build_model(model_config(model))
    assert type(again) is cls and model_config(again) == model_config(model)
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    cf = _channels_first(model)
    assert cf == (name in ("wav2letter-small", "convdfsmn-small"))
    for frames in (40, 57, 100):
        with torch.no_grad():
            out = _forward(model, torch.randn(1, frames, 40), cf)
        assert out.shape[2] == 46
        assert out.shape[1] == output_lengths(model, torch.tensor([frames]))[0].item(), (name, frames)


def test_atomic_save_keeps_the_old_file_when_a_save_fails(tmp_path):
    """A save that fails half-way (here an object torch cannot pickle) leaves the previous
    checkpoint as it was and no temporary file beside it."""
    import torch

    from wispy.training.checkpoints import save_checkpoint

    path = tmp_path / "last.pt"
    save_checkpoint({"epoch": 1}, path)
    with pytest.raises(Exception):
        save_checkpoint({"epoch": 2, "bad": lambda: 0}, path)
    assert torch.load(path, weights_only=False) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as a plain open() makes it, not mkstemp's 0600

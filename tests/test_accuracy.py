"""wispy accuracy (wispy.experiments.accuracy): the table's plumbing on a tiny corpus with tiny budgets,
resuming, the budget rules, and the markdown."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from wispy.experiments import accuracy as A
from wispy.data.vocab import CHARS, ids_to_text, text_to_ids

needs_espeak = pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")),
                                  reason="needs espeak-ng and sox")
TINY = {"n_train": 24, "n_valid": 4, "n_test": 4}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_letters():
    assert len(CHARS) == 29 and CHARS[0] == "<blank>"
    ids = text_to_ids("She had  your\tdark suit")
    assert ids_to_text(ids) == "she had your dark suit" and 0 not in ids


def _fake_run(path, seconds_per_epoch, epochs):
    path.mkdir(parents=True)
    hist = [{"epoch": e + 1, "seconds": seconds_per_epoch, "valid_per": 0.5} for e in range(epochs)]
    torch.save({"history": hist, "epoch": epochs}, path / "last.pt")


def test_budget_rules(tmp_path):
    # has its epochs: not trained further (returns before touching any corpus)
    _fake_run(tmp_path / "a", 30.0, 5)
    assert not A.train_run("a", "gru-small", "phones", 1e-3, 5, "no-corpus", tmp_path / "a", minutes=60)["trained_now"]
    # fewer epochs, but the wall-clock cap is used up (or less than an epoch is left)
    _fake_run(tmp_path / "b", 30.0, 3)
    assert not A.train_run("b", "gru-small", "phones", 1e-3, 9, "no-corpus", tmp_path / "b", minutes=1.9)["trained_now"]
    # --reuse copies an existing run into an empty run directory, which then counts as trained
    assert not A.train_run("c", "gru-small", "phones", 1e-3, 5, "no-corpus", tmp_path / "c", minutes=60,
                           reuse=tmp_path / "a")["trained_now"]
    assert (tmp_path / "c" / "last.pt").exists()
    with pytest.raises(FileNotFoundError):
        A.train_run("d", "gru-small", "phones", 1e-3, 5, "no-corpus", tmp_path / "d", minutes=60,
                    reuse=tmp_path / "nothing")


def test_markdown():
    row = {"units": "phones", "params": 170286, "mb": 0.68, "macs_per_second": 16.9e6, "epochs": 26,
           "train_seconds": 1297.0, "train_cpu_seconds": 2000.0, "valid": 0.18,
           "test": {"clean": {"per": 0.156, "utterances": 400,
                              "compiled": {"per": 0.156, "differ": 0, "max_abs_diff": 3e-5, "compile_seconds": 9.0}},
                    "white 10 dB": {"per": 0.4}}}
    letters = {**row, "units": "chars", "test": {"clean": {"per": 0.3, "wer": 0.8}, "white 10 dB": {"per": 0.5, "wer": 0.9}}}
    md = A.markdown({"conditions": {"clean": "c", "white 10 dB": "w"}, "models": {"gru-small": row, "w2l": letters},
                     "sizes": {"train": 4000, "valid": 400, "test": 400}, "minutes_per_model": 20,
                     "total_seconds": 600, "command": "wispy accuracy"})
    assert "| gru-small | 170k | 0.68 | 16.9 | 26 | 21.6 min (33 CPU-min) | 18.0% | 15.6% | 40.0% |" in md
    assert "| w2l | 170k | 0.68 | 16.9 | 26 | 21.6 min (33 CPU-min) | 18.0% | 30.0% / 80.0% | 50.0% / 90.0% |" in md
    assert "| gru-small | 15.6% | 15.6% | 0 of 400 | 3.0e-05 | 9.0 s |" in md


@needs_espeak
def test_accuracy_command_plumbing(tmp_path, capsys):
    """The CLI end to end on a tiny corpus: one model, one epoch, no compile (fast)."""
    from wispy.cli.main import main

    args = ["accuracy", "--out", str(tmp_path / "out"), "--corpus", str(tmp_path / "corpus"), "--docs",
            str(tmp_path / "docs"), "--train", "24", "--valid", "4", "--test", "4", "--models", "gru-small",
            "--epochs", "gru-small=1", "--no-compiled", "-q"]
    assert main(args) == 0
    res = json.loads((tmp_path / "docs" / "accuracy.json").read_text())
    assert list(res["conditions"]) == ["clean", "white 10 dB", "babble 10 dB"]
    row = res["models"]["gru-small"]
    assert row["epochs"] == 1 and row["params"] == 170286 and set(row["test"]) == set(res["conditions"])
    assert all(0 <= r["per"] for r in row["test"].values())
    md = (tmp_path / "docs" / "accuracy.md").read_text()
    assert "| gru-small | 170k |" in md and "wispy accuracy --out" in md
    assert "| gru-small | 170k |" in capsys.readouterr().out


@needs_espeak
@pytest.mark.slow
def test_accuracy_tiny_end_to_end(tmp_path):
    """Three models (one a letter model) trained two at a time, the compiled modules checked
    against PyTorch, the noisy test sets the clean one's utterances; a second run trains nothing."""
    from wispy.data.corpus import read_manifest

    kw = dict(minutes=5, models=["gru-small", "convdfsmn-small", "wav2letter-small-letters"],
              epochs={"gru-small": 2, "convdfsmn-small": 1, "wav2letter-small-letters": 1},
              docs_dir=tmp_path / "docs", progress=False, jobs=2, **TINY)
    res = A.run_accuracy(tmp_path / "out", tmp_path / "corpus", **kw)
    for cond, path in res["conditions"].items():
        if cond != "clean":
            noisy = read_manifest(path, "test")
            assert [r["text"] for r in noisy] == [r["text"] for r in read_manifest(tmp_path / "corpus", "test")]
            assert {r["noise"] for r in noisy} == {cond.split()[0]}
    rows = res["models"]
    assert [rows[n]["epochs"] for n in kw["models"]] == [2, 1, 1]
    assert rows["wav2letter-small-letters"]["units"] == "chars" and "wer" in rows["wav2letter-small-letters"]["test"]["clean"]
    for name, row in rows.items():
        c = row["test"]["clean"]["compiled"]
        assert c["differ"] == 0 and c["per"] == row["test"]["clean"]["per"] and c["max_abs_diff"] < 1e-3, name
    again = A.run_accuracy(tmp_path / "out", tmp_path / "corpus", **{**kw, "jobs": 1}, compiled=False)
    for name, row in rows.items():
        assert again["models"][name]["epochs"] == row["epochs"]
        assert again["models"][name]["test"]["clean"]["per"] == row["test"]["clean"]["per"]

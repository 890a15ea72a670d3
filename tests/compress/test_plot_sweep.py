"""Pictures of pruned matrices, the Pareto plot and the sweep's report; an end-to-end sweep on
a tiny corpus (slow)."""
from __future__ import annotations

import json

import pytest
import torch

from wispy.compress import prune_block_sparse
from wispy.experiments.plot import pareto_front, plot_matrix, plot_model_masks, plot_pareto
from wispy.experiments.sweep import find_speed_function, sweep_markdown
from wispy.models.acoustic import GRUAcousticModel, LSTMAcousticModel


def _png(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    return data


@pytest.mark.parametrize("cls", [GRUAcousticModel, LSTMAcousticModel])
def test_matrix_pictures(cls, tmp_path):
    torch.manual_seed(0)
    model = cls(40, 64, 1, 10)
    prune_block_sparse(model, rate=6, block="cols:4", prune="rows", layers="rnn")
    paths = plot_model_masks(model, tmp_path)
    assert sorted(p.name for p in paths) == sorted(f"{n}.png" for n in model.wispy_masks)
    for p in paths:
        _png(p)


def test_matrix_picture_of_tiles_and_conv(tmp_path):
    w = torch.randn(96, 8, 5)  # a Conv1d weight: drawn as [96, 40]
    from wispy.compress import block_sparse_mask

    m = block_sparse_mask(w, 5, "tiles:32x10", "both", False)
    _png(plot_matrix(w * m, m, "tiles:32x10", tmp_path / "c.png", title="conv"))


ROWS = [
    {"label": "dense", "target_rate": 1.0, "rate": 1.0, "overall_rate": 1.0, "kept": 1000, "valid_per": 0.18,
     "test_per": 0.156, "per": 0.156, "ms": 10.0, "speed_by": "timing"},
    {"label": "4x", "target_rate": 4.0, "rate": 4.0, "overall_rate": 3.5, "kept": 250, "valid_per": 0.19,
     "test_per": 0.16, "per": 0.16, "ms": 6.0, "per_layer": [
         {"name": "rnn.weight_hh_l0", "shape": [48, 16], "total": 768, "kept": 192, "rate": 4.0,
          "kept_rows_per_block": [[12, 12, 12, 12]], "kept_cols_per_block": [[4, 4, 4, 4]], "dense_blocks": True}]},
    {"label": "10x", "target_rate": 10.0, "rate": 10.1, "overall_rate": 7.0, "kept": 99, "valid_per": 0.25,
     "test_per": 0.24, "per": 0.24, "ms": 7.0},
]


def test_pareto_front_and_plot(tmp_path):
    front = pareto_front(ROWS)
    assert [r["label"] for r in front] == ["4x", "dense"]  # 10x: slower and worse than 4x
    _png(plot_pareto(ROWS, tmp_path / "p.png"))
    no_speed = [{k: v for k, v in r.items() if k != "ms"} for r in ROWS]
    _png(plot_pareto(no_speed, tmp_path / "q.png"))


def test_markdown_states_the_bars():
    res = {"settings": {"checkpoint": "gru_small.pt", "layers": "rnn", "block": "cols:4", "prune": "rows",
                        "uniform": True, "method": "admm", "admm_epochs": 3, "rho": [1e-3, 1e-1],
                        "update_every": 50, "finetune_epochs": 3, "finetune_lr": 1e-3, "chain": True,
                        "sensitivity": {"rnn.weight_ih_l0": 3}},
           "rows": ROWS, "rtmobile_gru_timit": [[9.95, 18.8]], "command": "wispy prune-sweep --out x"}
    md = sweep_markdown(res)
    assert "| 10x | 10.0x | 10.1x |" in md
    assert "10x: PER +8.40 points against dense (bar: at most +0.5): NOT met" in md
    assert "| 4x | 4.0x | 4.0x | 3.5x | 250 | 19.0% | 16.0% | +0.4 | 6.00 | 1.67x |" in md
    assert "`weight_hh_l0` 4.0x (12 rows per block)" in md
    assert "`rnn.weight_ih_l0` keeping 3x the others' fraction" in md


def test_markdown_bars_against_the_control_and_rounds():
    ctrl = {"label": "dense +26 ep", "target_rate": 1.0, "rate": 1.0, "overall_rate": 1.0, "kept": 1000,
            "valid_per": 0.15, "test_per": 0.15, "per": 0.15, "control": True}
    ten = {**ROWS[2], "test_per": 0.16, "per": 0.16}
    res = {"settings": {"checkpoint": "gru_small.pt", "layers": "rnn", "block": "cols:4", "prune": "rows",
                        "uniform": True, "method": "admm", "admm_epochs": 3, "rho": [1e-3, 1e-1],
                        "update_every": 50, "finetune_epochs": 3, "finetune_lr": 1e-3, "chain": True,
                        "sensitivity": {}, "rounds": 2, "round_epochs": 12},
           "rows": [ROWS[0], ctrl, ten], "rtmobile_gru_timit": [[9.95, 18.8]], "command": "wispy prune-sweep"}
    md = sweep_markdown(res)
    # 16.0% against dense 15.6% (+0.40) and against the control 15.0% (+1.00)
    assert ("10x: PER +0.40 points against dense (bar: at most +0.5): met; +1.00 against the dense control "
            "`dense +26 ep`: NOT met.") in md
    assert "then 2 more rounds of 12 epochs, each restarting the cosine at 0.001" in md


def test_speed_function_lookup():
    assert find_speed_function("wispy.experiments.sweep:measure_all") is not None
    assert find_speed_function("no.such.module:f") is None


@pytest.mark.slow
def test_sweep_end_to_end(tmp_path):
    """A tiny corpus and model: the sweep writes its table, JSON, plot and per-rate results,
    every pruned model is block-sparse at its rate, and a second run resumes (no retraining)."""
    from wispy.experiments.sweep import run_sweep
    from wispy.data.corpus import generate_corpus
    from wispy.training.ctc import train_ctc

    torch.set_num_threads(2)
    corpus = tmp_path / "corpus"
    generate_corpus(corpus, n_train=60, n_valid=10, n_test=10, workers=2, progress=False)
    torch.manual_seed(0)
    model = GRUAcousticModel(40, 32, 1, 46)
    train_ctc(model, corpus, epochs=2, batch_size=8, lr=1e-2, out_dir=tmp_path / "dense", progress=False)
    docs = tmp_path / "docs" / "sweep"
    kw = dict(checkpoint=tmp_path / "dense" / "last.pt", corpus_dir=corpus, rates=(2, 4), admm_epochs=1,
              finetune_epochs=1, update_every=4, speed=False, docs=str(docs), progress=False)
    res = run_sweep(tmp_path / "out", **kw)
    assert [r["label"] for r in res["rows"]] == ["dense", "2x", "4x"]
    assert [round(r["rate"]) for r in res["rows"]] == [1, 2, 4]
    for r in res["rows"][1:]:
        assert all(m["dense_blocks"] for m in r["per_layer"])
        assert r["pictures"]
    for suffix in (".md", ".json", ".png"):
        assert docs.with_suffix(suffix).exists()
    assert json.loads(docs.with_suffix(".json").read_text())["rows"][2]["label"] == "4x"
    mtime = (tmp_path / "out" / "4x" / "final.pt").stat().st_mtime
    again = run_sweep(tmp_path / "out", **kw)
    assert (tmp_path / "out" / "4x" / "final.pt").stat().st_mtime == mtime
    assert [r["test_per"] for r in again["rows"]] == [r["test_per"] for r in res["rows"]]
    # An earlier rate's model gone (only its result kept): the chain resumes from the
    # last saved model and does not train the earlier rate again.
    (tmp_path / "out" / "2x" / "final.pt").unlink()
    third = run_sweep(tmp_path / "out", **kw)
    assert not (tmp_path / "out" / "2x" / "final.pt").exists()
    assert [r["test_per"] for r in third["rows"]] == [r["test_per"] for r in res["rows"]]
    with pytest.raises(ValueError, match="other settings"):
        run_sweep(tmp_path / "out", **{**kw, "block": "cols:2"})


def test_sweep_rounds_chain_control_and_resume(tmp_path, monkeypatch, one_thread):
    """--rounds: every rate and the dense control get their rounds (saved as `wispy finetune`
    saves them), the next rate starts from the model after the rounds, the row reports the
    last round, a second run trains nothing, and a round run by hand with `wispy finetune`
    counts as the sweep's own."""
    import wispy.compress.admm as admm
    from wispy.cli.main import main
    from wispy.compress.block_sparse import load_pruned
    from wispy.experiments.sweep import run_sweep
    from wispy.data.corpus import generate_corpus
    from wispy.training.ctc import train_ctc

    corpus = tmp_path / "corpus"
    generate_corpus(corpus, n_train=16, n_valid=4, n_test=4, workers=1, progress=False)
    torch.manual_seed(0)
    train_ctc(GRUAcousticModel(40, 16, 1, 46), corpus, epochs=1, batch_size=8, lr=1e-2,
              out_dir=tmp_path / "dense", progress=False)
    starts = []
    real = admm.admm_prune

    def spy(model, *args, **kw):
        starts.append({k: v.clone() for k, v in model.state_dict().items()})
        return real(model, *args, **kw)

    monkeypatch.setattr(admm, "admm_prune", spy)
    out = tmp_path / "out"
    kw = dict(checkpoint=tmp_path / "dense" / "last.pt", corpus_dir=corpus, rates=(2, 4), admm_epochs=1,
              finetune_epochs=1, update_every=2, speed=False, docs=None, progress=False,
              dense_control_epochs=1, rounds=2, round_epochs=1)
    res = run_sweep(out, **kw)
    labels = [r["label"] for r in res["rows"]]
    assert labels == ["dense", "dense +3 ep", "2x", "4x"]
    for r in res["rows"][1:]:
        stage = out / ("dense_control" if r.get("control") else r["label"])
        assert [x["round"] for x in r["rounds"]] == [1, 2]
        last = torch.load(stage / "round2" / "final.pt", map_location="cpu", weights_only=False)
        assert r["test_per"] == r["rounds"][-1]["test_per"] == last["test_per"]
        assert r["valid_per"] == last["finetune"]["best_valid_per"]
        assert "stage_test_per" in r
    # 4x started from 2x's model after its second round
    after = load_pruned(out / "2x" / "round2" / "final.pt").state_dict()
    assert len(starts) == 2 and all(torch.equal(starts[1][k], after[k]) for k in after)
    assert res["settings"]["rounds"] == 2
    # resumed: nothing trains again, same rows
    stamp = (out / "4x" / "round2" / "final.pt").stat().st_mtime
    again = run_sweep(out, **kw)
    assert (out / "4x" / "round2" / "final.pt").stat().st_mtime == stamp and len(starts) == 2
    assert [r["test_per"] for r in again["rows"]] == [r["test_per"] for r in res["rows"]]
    # a round run by hand: `wispy finetune` into the round's directory is picked up as it is
    import shutil

    shutil.rmtree(out / "4x" / "round2")
    assert main(["finetune", str(out / "4x" / "round1" / "final.pt"), "--out", str(out / "4x" / "round2"),
                 "--epochs", "1", "--corpus", str(corpus), "-q"]) == 0
    by_hand = torch.load(out / "4x" / "round2" / "final.pt", map_location="cpu", weights_only=False)
    third = run_sweep(out, **kw)
    assert third["rows"][-1]["test_per"] == by_hand["test_per"] and len(starts) == 2
    # other rounds are another sweep (the chain starts each rate from the model after them)
    with pytest.raises(ValueError, match="other settings"):
        run_sweep(out, **{**kw, "rounds": 1})


@pytest.mark.slow
def test_compile_and_time_dense_and_pruned():
    from wispy.experiments.sweep import measure_all
    from wispy.models.registry import model_config

    torch.manual_seed(0)
    dense = GRUAcousticModel(40, 64, 1, 10).eval()
    pruned = GRUAcousticModel(40, 64, 1, 10).eval()
    pruned.load_state_dict(dense.state_dict())
    prune_block_sparse(pruned, rate=8, block="cols:4", layers="rnn")
    res = measure_all({"dense": dense, "8x": pruned}, True, frames=50)
    assert set(res) == {"dense", "8x"}
    for r in res.values():
        assert r["ms"] > 0, r
    assert model_config(dense)["kwargs"]["hidden"] == 64


def test_cli_parses_prune_commands():
    from wispy.cli.compression import _prune_layers, cmd_prune, cmd_prune_sweep
    from wispy.cli.main import build_parser

    p = build_parser()
    a = p.parse_args(["prune-sweep", "--out", "o", "--rates", "4,10", "--sensitivity", ""])
    assert a.fn is cmd_prune_sweep and a.block == "cols:4" and a.prune == "rows" and a.threads == 1
    assert a.seed == 0 and p.parse_args(["prune-sweep", "--seed", "3"]).seed == 3
    assert p.parse_args(["finetune", "ck.pt", "--out", "o", "--seed", "2"]).seed == 2
    a = p.parse_args(["prune", "ck.pt", "--out", "o", "--rate", "8", "--block", "tiles:64x32", "--prune", "both",
                      "--method", "magnitude", "--layers", "rnn.weight_hh_*"])
    assert a.fn is cmd_prune and a.rate == 8.0
    assert _prune_layers("rnn") == "rnn" and _prune_layers("rnn.weight_hh_*") == ["rnn.weight_hh_*"]
    assert _prune_layers("a.weight,b.weight") == ["a.weight", "b.weight"]


def test_cli_train_dense_rejects_bad_input(tmp_path, capsys):
    """--train-dense wants MODEL:EPOCHS, and not together with --checkpoint."""
    from wispy.cli.main import build_parser

    p = build_parser()
    for args, msg in ((["--train-dense", "gru-huge:10"], "--train-dense wants MODEL:EPOCHS"),
                      (["--train-dense", "gru-medium"], "--train-dense wants MODEL:EPOCHS"),
                      (["--train-dense", "gru-medium:0"], "--train-dense wants MODEL:EPOCHS"),
                      (["--train-dense", "gru-medium:5", "--checkpoint", "x.pt"], "not both"),
                      (["--rounds", "-1"], "--rounds wants 0 or more"),
                      (["--rounds", "2", "--round-epochs", "0"], "--round-epochs 1 or more")):
        a = p.parse_args(["prune-sweep", "--out", str(tmp_path / "o"), "--no-speed", *args])
        assert a.fn(a) == 2
        assert msg in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing trained, nothing written


def test_cli_train_dense_then_sweep(tmp_path):
    """One command from nothing: the dense model is trained in OUT/dense, then pruned."""
    from wispy.cli.main import build_parser
    from wispy.data.corpus import generate_corpus

    torch.set_num_threads(2)
    corpus = tmp_path / "corpus"
    generate_corpus(corpus, n_train=40, n_valid=8, n_test=8, workers=2, progress=False)
    out = tmp_path / "out"
    a = build_parser().parse_args(["prune-sweep", "--out", str(out), "--corpus", str(corpus), "--rates", "2",
                                   "--train-dense", "gru-small:1", "--admm-epochs", "1", "--finetune-epochs", "1",
                                   "--no-speed", "--docs", "", "--seed", "1", "-q"])
    assert a.fn(a) == 0
    assert (out / "dense" / "best.pt").exists() and (out / "2x" / "final.pt").exists()
    res = json.loads((out / "sweep.json").read_text())
    assert res["settings"]["checkpoint"].endswith("dense/best.pt") and res["settings"]["seed"] == 1

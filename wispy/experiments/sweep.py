"""PER against compression (and speed) for block-sparse GRU models: one command.

    wispy prune-sweep --out out/prune          # -> docs/results/data/prune_sweep.md, .json, .png

From a trained dense checkpoint (default: the shipped gru-small), for every rate in order
(default dense, 4, 10, 20, 50, 100, 245) the GRU matrices are pruned block-sparse with ADMM
and fine-tuned with their masks (`admm_prune`). The rates form a chain: each rate starts from
the previous rate's fine-tuned model (its zeros kept), which is both how gradual pruning works
best and what makes the sweep affordable on a CPU. Each rate is scored on the corpus' held-out
test voices (PER, batch 1, PyTorch). At the end every model is timed: by
`measure_speed(model) -> ms` when the compiler side provides one (looked up in
`SPEED_FUNCTIONS`, or given), otherwise by compiling it with `wispy.compile_model` for the host
(which applies the block-sparse lowering where it pays) and timing the compiled modules
round-robin, so a busy machine slows them all alike. Every rate's directory keeps its checkpoints
(final.pt loads with `load_pruned`), the matrix pictures and a result.json, so an interrupted
sweep resumes where it stopped. With `rounds`, every rate (and the dense control) then gets
that many more rounds of fine-tuning, each restarting the learning rate, and the chain goes on
from the model after them: the whole recipe behind the README's gru-medium table in one
command.

The per-layer rates add up to the requested overall rate over the pruned matrices
(`rates_for_target`); `sensitivity` {name or pattern: s} makes a matrix keep s times the
others' fraction (default `SENSITIVITY`: the first layer's input matrix 3x; {} or None for one
rate everywhere).
"""
from __future__ import annotations

import importlib
import json
import math
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import torch

from wispy.models.loading import load_torch_file

DEFAULT_RATES = (4, 10, 20, 50, 100, 245)
# where a compiler-side `measure_speed(model) -> ms` may live, tried in order
SPEED_FUNCTIONS = ("wispy.compiler.block_sparse:measure_speed", "wispy.bench.harness:measure_speed",
                   "wispy.compiler:measure_speed", "wispy:measure_speed")
# The sweep's per-layer allocation: the first layer's input matrix (40 log-mel features wide, 9%
# of a 2x128 GRU's weights) is by far the most sensitive (one-shot 4x on it alone: valid PER
# 18% -> 77%; on weight_hh_l1 alone: 25%), so it keeps 3x the others' fraction. At 10x with
# ADMM (3 + 3 epochs, straight from dense) this gave test PER 25.8% against 27.3% with one rate.
SENSITIVITY = {"rnn.weight_ih_l0": 3.0}
# RTMobile's GRU on TIMIT (Dong et al., DAC 2020): (compression rate, PER %)
RTMOBILE_GRU_TIMIT = ((9.95, 18.8), (28.9, 19.6), (79.5, 21.5), (245.6, 24.2))


def find_speed_function(spec: Optional[str] = None) -> Optional[Callable]:
    """The first importable `measure_speed` among `spec` ("module:function") or SPEED_FUNCTIONS."""
    for s in ([spec] if spec else SPEED_FUNCTIONS):
        mod, _, fn = s.partition(":")
        try:
            f = getattr(importlib.import_module(mod), fn, None)
        except ImportError:
            f = None
        if callable(f):
            return f
    return None


def _example(model, frames: int) -> torch.Tensor:
    from wispy.models.registry import model_config

    n_feats = model_config(model)["kwargs"]["n_feats"]
    return torch.randn(1, frames, n_feats, generator=torch.Generator().manual_seed(0))


def compile_and_time(models: dict, frames: int = 300, repeat: int = 50, warmup: int = 3,
                     progress: bool = False) -> dict:
    """The fallback timing: every model compiled with `wispy.compile_model(model, (x,))` for the
    host, x [1, frames, n_feats], then timed round-robin (one call of each model in turn,
    `repeat` rounds, so that a busy machine slows all of them alike); the median wall time per
    call. Returns {label: {"ms", "compile_s", "block_sparse_remarks"} or {"speed_error"}}."""
    import wispy

    out, compiled = {}, {}
    for label, model in models.items():
        x = _example(model, frames)
        t0 = time.perf_counter()
        try:
            try:
                cm = wispy.compile_model(model.eval(), (x,), progress=False, explain=True)
            except TypeError:  # a compile_model without `explain`
                cm = wispy.compile_model(model.eval(), (x,), progress=False)
        except Exception as e:  # speed is a column, not the sweep: keep going without it
            out[label] = {"ms": None, "speed_error": f"{type(e).__name__}: {e}"[:300]}
            continue
        remarks = [r.split(": ", 1)[-1] for r in getattr(cm, "remarks", []) if "block-sparse" in r and "lowered" in r]
        out[label] = {"compile_s": time.perf_counter() - t0, "block_sparse_remarks": remarks}
        compiled[label] = (cm, x.numpy())
        if progress:
            print(f"compiled {label} ({out[label]['compile_s']:.1f} s)", flush=True)
    for cm, x in compiled.values():
        for _ in range(warmup):
            cm(x)
    times = {label: [] for label in compiled}
    for _ in range(repeat):
        for label, (cm, x) in compiled.items():
            t = time.perf_counter()
            cm(x)
            times[label].append(time.perf_counter() - t)
    for label, ts in times.items():
        out[label]["ms"] = 1e3 * statistics.median(ts)
    return out


def measure_all(models: dict, speed: Union[bool, str, Callable], frames: int = 300, progress: bool = False) -> dict:
    """{label: {"ms", "speed_by", ...}}: by a compiler-side measure_speed(model) -> ms when one is
    found (or given), else by `compile_and_time`. Empty when speed is False."""
    if speed is False or speed is None:
        return {}
    fn = speed if callable(speed) else find_speed_function(speed if isinstance(speed, str) else None)
    if fn is not None:
        out = {}
        for label, model in models.items():
            try:
                out[label] = {"ms": float(fn(model)), "speed_by": f"{fn.__module__}.{fn.__name__}"}
            except Exception as e:
                out[label] = {"ms": None, "speed_error": f"{type(e).__name__}: {e}"[:300]}
        return out
    res = compile_and_time(models, frames=frames, progress=progress)
    by = (f"wispy.compile_model for the host, input 1x{frames} frames (3 s of audio), median of 50 calls "
          "taken round-robin over the models")
    return {k: {**v, "speed_by": by} for k, v in res.items()}


def _evaluate(model, corpus_dir) -> dict:
    from wispy.training.evaluate import evaluate

    r = evaluate(model, corpus_dir, "test", progress=False)
    return {"test_per": r["per"], "test_utterances": r["utterances"]}


def _valid(model, corpus_dir, data) -> float:
    from wispy.training.validate import valid_per

    per = valid_per(model, data["valid"])
    model.eval()
    return per


def _stage_done(stage: Path, rounds: int) -> bool:
    """A rate's stage and all its rounds are saved (its model and its result)."""
    return (stage / "result.json").exists() and (stage / "final.pt").exists() and _rounds_saved(stage, rounds)


def _rounds_saved(stage: Path, rounds: int) -> bool:
    return all((stage / f"round{k}" / "final.pt").exists() for k in range(1, rounds + 1))


def _rounds(start, row: dict, stage: Path, rounds: int, epochs: int, lr: float, seed: int, corpus_dir,
            data: dict, progress: bool, load: Callable, need_model: bool = True):
    """`rounds` more rounds of `epochs` fine-tuning epochs after a rate's (or the dense
    control's) own, each a cosine from `lr` again (a restart: the pruned GRUs' validation PER
    was still falling at the end of each round). Round k lives in stage/round{k}: final.pt
    holds the model of its best validation epoch, its test PER and its history, as `wispy
    finetune CHECKPOINT --out stage/round{k} --epochs E --lr LR` writes it, so a round run by
    hand counts. `start`: the model before the rounds, or a callable that loads it (called only
    if round 1 must train); `load(path)` loads a saved round. Returns (the model after the last
    round, or None unless `need_model`; the row with the last round's test and valid PER, the
    rate's own in `stage_test_per` / `stage_valid_per`, every round's in `rounds`)."""
    from wispy.compress.admm import finetune_masked
    from wispy.compress.block_sparse import save_pruned

    def model_after(m, k: int):
        """The model after round k: `m` itself, `m()` (the start, loaded), or round k's saved one."""
        if m is None:
            return load(stage / f"round{k}" / "final.pt")
        return m if isinstance(m, torch.nn.Module) else m()

    row, model, per_round = dict(row), start, []
    row.setdefault("stage_test_per", row["test_per"])
    row.setdefault("stage_valid_per", row["valid_per"])
    for k in range(1, rounds + 1):
        final = stage / f"round{k}" / "final.pt"
        if final.exists():
            ck = load_torch_file(final)
            info, test_per, model = ck.get("finetune") or {}, ck["test_per"], None
        else:
            model = model_after(model, k - 1)
            info = finetune_masked(model, corpus_dir, epochs=epochs, lr=lr, seed=seed, out_dir=final.parent,
                                   progress=progress, data=data)
            test_per = _evaluate(model, corpus_dir)["test_per"]
            save_pruned(model, final, finetune=info, test_per=test_per)
        per_round.append({"round": k, "epochs": epochs, "valid_per": info.get("best_valid_per"),
                          "test_per": test_per})
        if progress:
            from tqdm import tqdm

            tqdm.write(f"{stage.name}, fine-tuning round {k} of {rounds}: test PER {test_per:.4f}")
    if per_round:
        row.update(test_per=per_round[-1]["test_per"], rounds=per_round)
        if per_round[-1]["valid_per"] is not None:
            row["valid_per"] = per_round[-1]["valid_per"]
    return (model_after(model, rounds) if need_model else None), row


def run_sweep(out_dir="out/prune", *, checkpoint=None, corpus_dir="out/corpus",
              rates: Sequence[float] = DEFAULT_RATES, block: str = "cols:4", prune: str = "rows",
              uniform: bool = True, layers="rnn", sensitivity: Optional[dict] = SENSITIVITY,
              admm_epochs: int = 3, finetune_epochs: int = 3, lr: float = 1e-3, finetune_lr: float = 1e-3,
              rho: tuple = (1e-3, 1e-1), update_every: int = 50, method: str = "admm", chain: bool = True,
              speed: Union[bool, str, Callable] = True, speed_frames: int = 300,
              docs: Optional[str] = "docs/results/data/prune_sweep", threads: Optional[int] = None, seed: int = 0,
              dense_control_epochs: int = 0, rounds: int = 0, round_epochs: int = 12,
              progress: bool = True, command: Optional[str] = None) -> dict:
    """Runs the sweep (resumable) and writes `docs`.md/.json/.png (and out_dir/sweep.json).
    method: "admm" (ADMM then masked fine-tuning) or "magnitude" (one-shot, then fine-tuning).
    chain: start every rate from the previous rate's model (else from the dense one).
    speed: True (measure_speed if importable, else compile + time), False, a "module:function"
    or a callable. dense_control_epochs: also train the dense model that many more epochs with
    the fine-tuning schedule (a row that shows what extra training alone gives: the starting
    checkpoint may not have converged). rounds: after its fine-tuning, every rate (and the
    dense control) is given that many more rounds of `round_epochs` fine-tuning epochs, each
    restarting the cosine at `finetune_lr` (see `_rounds`); with the chain, the next rate
    starts from the model after its rounds. Returns the results dict written to the .json."""
    from wispy.models.acoustic import DATA_DIR
    from wispy.models.registry import load_checkpoint
    from wispy.training.data import prepare_data

    if threads:
        torch.set_num_threads(threads)
    checkpoint = Path(checkpoint or DATA_DIR / "gru_small.pt")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    try:
        shown = str(checkpoint.resolve().relative_to(Path.cwd()))
    except ValueError:
        shown = str(checkpoint)
    settings = {"checkpoint": shown, "corpus": str(corpus_dir), "rates": [float(r) for r in rates],
                "block": block, "prune": prune, "uniform": uniform, "layers": layers, "sensitivity": sensitivity,
                "method": method, "chain": chain, "admm_epochs": admm_epochs if method == "admm" else 0,
                "finetune_epochs": finetune_epochs, "lr": lr, "finetune_lr": finetune_lr, "rho": list(rho),
                "update_every": update_every, "seed": seed, "threads": torch.get_num_threads()}
    if rounds > 0:  # absent otherwise, so that a sweep made before rounds existed still resumes
        settings.update(rounds=rounds, round_epochs=round_epochs)
    _check_same_sweep(out, settings)

    dense = load_checkpoint(checkpoint)
    data = prepare_data(dense, corpus_dir)
    sw = _Sweep(out=out, checkpoint=checkpoint, corpus_dir=corpus_dir, data=data, block=block, prune=prune,
                uniform=uniform, layers=layers, sensitivity=sensitivity, admm_epochs=settings["admm_epochs"],
                finetune_epochs=finetune_epochs, lr=lr, finetune_lr=finetune_lr, rho=rho,
                update_every=update_every, seed=seed, rounds=rounds, round_epochs=round_epochs, progress=progress)
    drow = _dense_row(sw, dense)
    rows = [drow]
    if dense_control_epochs > 0:
        rows.append(_dense_control_row(sw, drow, dense_control_epochs))
    models = _rate_rows(sw, dense, sorted(float(r) for r in rates), chain, bool(speed), rows, drow)
    _add_timing(sw, models, rows, speed, speed_frames)

    result = {"settings": settings, "rows": rows, "rtmobile_gru_timit": [list(x) for x in RTMOBILE_GRU_TIMIT],
              "machine": {"platform": platform.platform(), "python": platform.python_version(),
                          "torch": torch.__version__},
              "seconds_this_run": time.perf_counter() - t_start,
              "command": command or f"wispy prune-sweep --out {out_dir}"}
    _write_results(sw, result, docs)
    return result


@dataclass
class _Sweep:
    """What the steps of one sweep share: where it lives, its data and its recipe."""

    out: Path
    checkpoint: Path
    corpus_dir: object
    data: dict
    block: str
    prune: str
    uniform: bool
    layers: object
    sensitivity: Optional[dict]
    admm_epochs: int  # 0 for one-shot magnitude pruning
    finetune_epochs: int
    lr: float
    finetune_lr: float
    rho: tuple
    update_every: int
    seed: int
    rounds: int
    round_epochs: int
    progress: bool

    def more_rounds(self, start, row: dict, stage: Path, load: Callable, need_model: bool = True):
        """`_rounds` with this sweep's settings."""
        return _rounds(start, row, stage, self.rounds, self.round_epochs, self.finetune_lr, self.seed,
                       self.corpus_dir, self.data, self.progress, load=load, need_model=need_model)

    def say(self, line: str) -> None:
        if self.progress:
            from tqdm import tqdm

            tqdm.write(line)


def _check_same_sweep(out: Path, settings: dict) -> None:
    """A resumed sweep must be the same sweep: stale per-rate results would be mixed in
    otherwise. The first run writes out/settings.json (all but the rates and threads)."""
    same = {k: v for k, v in settings.items() if k not in ("rates", "threads")}
    sfile = out / "settings.json"
    if sfile.exists():
        before = json.loads(sfile.read_text())
        diff = {k: (before.get(k), v) for k, v in json.loads(json.dumps(same)).items() if before.get(k) != v}
        if diff:
            raise ValueError(f"{out} holds a sweep made with other settings ({diff}); use another output "
                             "directory or delete it")
    else:
        sfile.write_text(json.dumps(same, indent=1) + "\n")


def _dense_row(sw: _Sweep, dense) -> dict:
    """The dense model's row (out/dense.json, measured once)."""
    from wispy.compress.block_sparse import prunable_matrices

    dense_file = sw.out / "dense.json"
    if dense_file.exists():
        drow = json.loads(dense_file.read_text())
    else:
        params = dict(dense.named_parameters())
        drow = {"label": "dense", "target_rate": 1.0, "rate": 1.0, "overall_rate": 1.0,
                "kept": sum(params[n].numel() for n in prunable_matrices(dense, sw.layers)),
                "valid_per": _valid(dense, sw.corpus_dir, sw.data), **_evaluate(dense, sw.corpus_dir)}
        dense_file.write_text(json.dumps(drow, indent=1) + "\n")
    drow["per"] = drow["test_per"]
    sw.say(f"dense: test PER {drow['test_per']:.4f}")
    return drow


def _dense_control_row(sw: _Sweep, drow: dict, epochs: int) -> dict:
    """The dense control: the dense model fine-tuned `epochs` more epochs (and its rounds)
    with the fine-tuning schedule, in out/dense_control."""
    from wispy.compress.admm import finetune_masked
    from wispy.compress.block_sparse import save_pruned
    from wispy.models.registry import load_checkpoint

    cdir = sw.out / "dense_control"
    ctrl_file = cdir / "result.json"
    if ctrl_file.exists():
        crow = json.loads(ctrl_file.read_text())
    else:
        ctrl = load_checkpoint(sw.checkpoint)
        t0 = time.perf_counter()
        ft = finetune_masked(ctrl, sw.corpus_dir, epochs=epochs, lr=sw.finetune_lr, seed=sw.seed,
                             out_dir=cdir, progress=sw.progress, data=sw.data)
        crow = {"label": f"dense +{epochs} ep", "target_rate": 1.0, "rate": 1.0,
                "overall_rate": 1.0, "kept": drow["kept"], "valid_per": ft["best_valid_per"],
                "train_seconds": time.perf_counter() - t0, "control": True, **_evaluate(ctrl, sw.corpus_dir)}
        save_pruned(ctrl, cdir / "final.pt", finetune=ft, test_per=crow["test_per"])
        ctrl_file.write_text(json.dumps(crow, indent=1) + "\n")
    if sw.rounds > 0:
        ctrl_start = cdir / "final.pt" if (cdir / "final.pt").exists() else cdir / "best.pt"
        _, crow = sw.more_rounds(lambda: load_checkpoint(ctrl_start), crow, cdir, load=load_checkpoint,
                                 need_model=False)
        crow["label"] = f"dense +{epochs + sw.rounds * sw.round_epochs} ep"
    crow["per"] = crow["test_per"]
    crow.update(control=True, kept=drow["kept"])
    sw.say(f"dense control ({crow['label']}): test PER {crow['test_per']:.4f}")
    return crow


def _rate_rows(sw: _Sweep, dense, ordered: list, chain: bool, timed: bool, rows: list, drow: dict) -> dict:
    """Appends every rate's row to `rows` (pruning, fine-tuning and rounds as needed: a saved
    stage is read back); returns {label: model} of the models to time."""
    from wispy.compress.block_sparse import attach_masks, load_pruned
    from wispy.models.registry import load_checkpoint

    models = {"dense": dense}
    prev = dense
    # With the chain, a rate whose result and model are both saved is where a resumed
    # sweep starts; the rates before it need their results only (their models may be gone).
    done = [i for i, r in enumerate(ordered) if _stage_done(sw.out / f"{r:g}x", sw.rounds)]
    skip_to = done[-1] if chain and done else -1
    for i, rate in enumerate(ordered):
        label = f"{rate:g}x"
        stage = sw.out / label
        res_file = stage / "result.json"
        if i < skip_to and res_file.exists() and not timed and _rounds_saved(stage, sw.rounds):
            _, row = sw.more_rounds(None, json.loads(res_file.read_text()), stage, load=load_pruned,
                                    need_model=False)
            row["per"] = row["test_per"]
            rows.append(row)
            sw.say(f"{label}: test PER {row['test_per']:.4f} (saved result; its model is not needed)")
            continue
        start = prev if chain else dense
        model = load_checkpoint(sw.checkpoint)
        model.load_state_dict(start.state_dict())
        model.wispy_config = start.wispy_config
        if getattr(start, "wispy_masks", None):
            attach_masks(model, start.wispy_masks, start.wispy_prune)
        if res_file.exists() and (stage / "final.pt").exists():
            row = json.loads(res_file.read_text())
            model = load_pruned(stage / "final.pt")
        else:
            row = _prune_rate(sw, model, rate, label, stage)
        if sw.rounds > 0:
            model, row = sw.more_rounds(model, row, stage, load=load_pruned)
        row["per"] = row["test_per"]
        rows.append(row)
        sw.say(f"{label}: achieved {row['rate']:.1f}x, test PER {row['test_per']:.4f} "
               f"(dense {drow['test_per']:.4f})")
        prev = model
        models[label] = model
    return models


def _prune_rate(sw: _Sweep, model, rate: float, label: str, stage: Path) -> dict:
    """Prunes `model` in place to `rate` (per-layer rates from `rates_for_target`) with
    `admm_prune` into `stage`; its row, with pictures of the masks, saved as stage/result.json."""
    from wispy.compress.admm import admm_prune
    from wispy.compress.block_sparse import compression_report, rates_for_target
    from wispy.experiments.plot import plot_model_masks

    per_layer = rates_for_target(model, rate, sw.layers, sw.sensitivity, block=sw.block, prune=sw.prune,
                                 uniform=sw.uniform)
    sw.say(f"--- {label}: per-layer rates " + ", ".join(f"{n} {r:.1f}" for n, r in per_layer.items()))
    t0 = time.perf_counter()
    info = admm_prune(model, sw.corpus_dir, rate=per_layer, block=sw.block, prune=sw.prune, uniform=sw.uniform,
                      layers=sw.layers, admm_epochs=sw.admm_epochs, finetune_epochs=sw.finetune_epochs, lr=sw.lr,
                      finetune_lr=sw.finetune_lr, rho=sw.rho, update_every=sw.update_every, seed=sw.seed,
                      out_dir=stage, progress=sw.progress, data=sw.data)
    rep = compression_report(model, with_blocks=True)
    row = {"label": label, "target_rate": rate, "rate": rep["pruned"]["rate"],
           "overall_rate": rep["overall"]["rate"], "kept": rep["pruned"]["kept"],
           "total": rep["pruned"]["total"], "valid_per": info["finetune"]["best_valid_per"],
           "valid_per_before_finetune": info["finetune"]["history"][0]["valid_per"],
           "per_layer": [{k: m[k] for k in ("name", "shape", "total", "kept", "rate")} |
                         {"kept_rows_per_block": m["blocks"]["kept_rows"],
                          "kept_cols_per_block": m["blocks"]["kept_cols"],
                          "dense_blocks": m["blocks"]["dense_blocks"]} for m in rep["matrices"]],
           "train_seconds": time.perf_counter() - t0, **_evaluate(model, sw.corpus_dir)}
    row["pictures"] = [str(p) for p in plot_model_masks(model, stage / "matrices")]
    (stage / "result.json").write_text(json.dumps(row, indent=1, default=float) + "\n")
    return row


def _add_timing(sw: _Sweep, models: dict, rows: list, speed, speed_frames: int) -> None:
    """Times the models (out/speed.json, measured again when a model is new) into the rows."""
    speed_file = sw.out / "speed.json"
    timing = json.loads(speed_file.read_text()) if speed_file.exists() else {}
    if speed and set(models) - set(timing):
        sw.say(f"timing {len(models)} models ...")
        timing = measure_all(models, speed, speed_frames, progress=sw.progress)
        speed_file.write_text(json.dumps(timing, indent=1) + "\n")
    for r in rows:
        r.update(timing.get(r["label"], {}) if speed else {})
        if r.get("ms"):
            sw.say(f"{r['label']}: {r['ms']:.2f} ms")


def _write_results(sw: _Sweep, result: dict, docs: Optional[str]) -> None:
    """out/sweep.json and pareto.png; with `docs`, docs.json, .png and .md."""
    from wispy.experiments.plot import plot_pareto

    rows = result["rows"]
    title = f"{sw.checkpoint.stem}: block-sparse ({sw.block}, {sw.prune})"
    (sw.out / "sweep.json").write_text(json.dumps(result, indent=1, default=float) + "\n")
    plot_pareto(rows, sw.out / "pareto.png", title=title)
    if docs:
        docs = Path(docs)
        docs.parent.mkdir(parents=True, exist_ok=True)
        docs.with_suffix(".json").write_text(json.dumps(result, indent=1, default=float) + "\n")
        plot_pareto(rows, docs.with_suffix(".png"), title=title)
        docs.with_suffix(".md").write_text(sweep_markdown(result, png=docs.with_suffix(".png").name))


def _fmt_rate(r) -> str:
    return "inf" if r is None or r == math.inf else f"{r:.1f}x"


def sweep_markdown(result: dict, png: str = "prune_sweep.png") -> str:
    """The sweep's table and settings as Markdown."""
    s, rows = result["settings"], result["rows"]
    dense = rows[0]
    have_ms = any(r.get("ms") for r in rows)
    same = "the same count in every block" if s["uniform"] else "counts free per block"
    if s["method"] == "admm":
        method = (f"ADMM ({s['admm_epochs']} epochs, rho {s['rho'][0]:g} -> {s['rho'][1]:g} geometric, Z and U "
                  f"updated every {s['update_every']} batches)")
    else:
        method = "one-shot magnitude pruning"
    start = "the previous rate's model" if s["chain"] else "the dense model"
    sens = s.get("sensitivity")
    alloc = ("every pruned matrix at the same rate" if not sens else
             "per-layer rates adding up to the target, " + ", ".join(f"`{k}` keeping {v:g}x the others' fraction"
                                                                     for k, v in sens.items()))
    lines = [
        "# PER against block-sparse compression",
        "",
        (f"Produced by `{result['command']}` (resumable; every rate's checkpoints, matrix pictures and "
        "results are kept under the output directory)."),
        "",
        (f"- Model: `{s['checkpoint']}`; pruned: `{s['layers']}` matrices (every GRU `weight_ih_l*` and "
        "`weight_hh_l*`); the output layer and the biases stay dense."),
        f"- Blocks `{s['block']}`, whole {s['prune']} removed inside each block, {same}; {alloc}.",
        (f"- Training: {method}, then {s['finetune_epochs']} epochs of masked fine-tuning (cosine learning rate "
        f"from {s['finetune_lr']:g})" + (f", then {s['rounds']} more rounds of {s['round_epochs']} epochs, each "
                                         f"restarting the cosine at {s['finetune_lr']:g}" if s.get("rounds") else "")
         + f"; each rate starts from {start}; the fine-tuning epoch with the best validation PER is kept"
         + (" (in each round)." if s.get("rounds") else ".")),
        "- PER: greedy CTC decoding of the corpus' test split (held-out voices), PyTorch, batch 1.",
        "- Rate: total / surviving weights of the pruned matrices; overall: of all parameters.",
        "",
    ]
    head = "| model | target | rate achieved | overall | kept weights | valid PER | test PER | vs dense |"
    sep = "|---|---|---|---|---|---|---|---|"
    if have_ms:
        head += " ms | speed-up |"
        sep += "---|---|"
    lines += [head, sep]
    for r in rows:
        d = 100 * (r["test_per"] - dense["test_per"])
        line = (f"| {r['label']} | {_fmt_rate(r['target_rate'])} | {_fmt_rate(r['rate'])} | "
                f"{_fmt_rate(r['overall_rate'])} | {r.get('kept', '')} | {100 * r['valid_per']:.1f}% | "
                f"{100 * r['test_per']:.1f}% | {'' if r is dense else f'{d:+.1f}'} |")
        if have_ms:
            ms = r.get("ms")
            line += (f" {ms:.2f} | {dense['ms'] / ms:.2f}x |" if ms and dense.get("ms") else " | |")
        lines.append(line)
    lines += ["", f"![PER against speed and compression]({png})", ""]
    by = {r.get("speed_by") for r in rows if r.get("speed_by")}
    if have_ms:
        lines += [f"Speed: {', '.join(sorted(by))}.", ""]
        errs = [f"{r['label']}: {r['speed_error']}" for r in rows if r.get("speed_error")]
        if errs:
            lines += ["Speed not measured for " + "; ".join(errs), ""]
    bars = []
    ctrl = [r for r in rows if r.get("control")]
    for target, limit in ((10.0, 0.5), (20.0, 1.0)):
        r = next((r for r in rows if r["target_rate"] == target and not r.get("control")), None)
        if r is not None:
            d = 100 * (r["test_per"] - dense["test_per"])
            line = (f"- {target:g}x: PER {d:+.2f} points against dense (bar: at most +{limit}): "
                    f"{'met' if d <= limit else 'NOT met'}")
            if ctrl:  # the fair comparison: a dense model given extra training too
                dc = 100 * (r["test_per"] - ctrl[0]["test_per"])
                line += (f"; {dc:+.2f} against the dense control `{ctrl[0]['label']}`: "
                         f"{'met' if dc <= limit else 'NOT met'}")
            bars.append(line + ".")
    if bars:
        lines += ["Bars:", "", *bars, ""]
    ref = ", ".join(f"{p:.1f}% at {c:g}x" for c, p in result["rtmobile_gru_timit"])
    big = 3 * 1024 * (153 + 1024) + 3 * 1024 * 2048  # RTMobile's GRU matrices (wispy.models.gru_rtmobile)
    lines += [(f"RTMobile's own GRU (2x1024) on TIMIT, for reference: {ref}. Its GRU matrices hold "
              f"{big / 1e6:.1f}M weights, so even at 245.6x it keeps about {big / 245.6 / 1e3:.0f}k of them; "
              f"this model has {rows[0]['kept'] / 1e3:.0f}k to begin with."), ""]
    if ctrl:
        lines += [(f"The `{ctrl[0]['label']}` row is a control: the dense model trained that many more epochs "
                   "with the fine-tuning schedule, to show how much of a pruned row's accuracy comes from extra "
                   "training alone."), ""]
    lines += ["Per-layer rates and survivors (rows kept per block) at each rate:", ""]
    for r in rows[1:]:
        if r.get("control"):
            continue
        parts = []
        for m in r.get("per_layer", []):
            flat = sorted({k for row in m["kept_rows_per_block"] for k in row})
            parts.append(f"`{m['name'].split('.')[-1]}` {m['rate']:.1f}x ({'/'.join(map(str, flat))} rows per block)")
        lines.append(f"- {r['label']}: " + ", ".join(parts))
    lines.append("")
    return "\n".join(lines)

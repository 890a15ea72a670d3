"""The int8 accuracy table: float32 against int8 direct, int8 Winograd without RSQ and int8
Winograd with RSQ, on the corpus' held-out test voices, for the small convolutional models.

    wispy quant-table --out out/quant                 # writes docs/quant_table.md and .json

For each model (default wav2letter-small and convdfsmn-small):

1. the float checkpoint: `--checkpoint NAME=PATH`, else the accuracy table's run
   (out/accuracy/runs/NAME/best.pt) once that run is finished (its epochs done, or the model
   listed in docs/results/data/accuracy.json), else a run of our own in OUT/runs/NAME trained like the
   accuracy table's (`wispy.experiments.accuracy.RUNS`: same epochs, learning rate and seed), capped at
   `--train-minutes`;
2. a calibration set: the first `--calib` utterances of the train split, one batch each;
3. the rows, each a quantized copy of the float model evaluated at batch 1 on the test split
   (greedy CTC decoding; the int8 layers run the exact integer arithmetic of the `wispy::` ops):
       float32
       int8 direct, PTQ                      every Conv1d/Linear direct int8 (`winograd="off"`)
       int8 direct, QAT                      + CTC fine-tuning with fake-quant (`--qat-batches`)
       int8 Winograd F(2,3), PTQ             every stride-1 conv of >= 3 taps in F(2,3), plain
                                             calibrated Winograd-domain ranges, no overflow rule
       int8 Winograd F(4,3), PTQ, worst case  F(4,3) with v_scale[j] = x_scale * ||B^T row j||_1:
                                             the range that can never overflow (no calibration)
       int8 Winograd F(4,3), PTQ             F(4,3) with calibrated Winograd-domain ranges
       int8 Winograd auto, PTQ               `winograd="auto"`: F(4,3)/F(2,3)/direct per layer
                                             by the overflow rule
       int8 Winograd F(4,3), QAT (no RSQ)    Winograd-domain QAT, CTC only, ranges held
                                             (`--wqat-batches`, 0 to skip)
       int8 Winograd F(4,3), RSQ             Winograd-domain QAT with trained ranges and
                                             distillation from the float model
       int8 Winograd F(4,3), RSQ without KD  the ablation: RSQ's trained ranges, no distillation
       float32, fine-tuned like RSQ          the control: the same batches, schedule and
                                             distillation on the float model (how much of a
                                             fine-tuned row's change is the extra training)
       float32, fine-tuned like QAT          the same without distillation (the QAT rows' control)
   QAT, Winograd QAT and RSQ train for the same number of batches (`--rsq-batches` for RSQ,
   the others default to it), learning rate and seed, so their differences are the methods';
4. docs/quant_table.md (the table) and docs/quant_table.json (everything: per-layer modes,
   calibration errors, training histories, timings). Each quantized model is saved in
   OUT/NAME/<row>.pt (`load_quantized`), and a finished row is read back, not recomputed, on a
   second run with the same float checkpoint (its md5 is recorded; delete OUT to start afresh).
"""
from __future__ import annotations

import hashlib
import json
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from wispy.models.loading import load_torch_file

MODELS = ["wav2letter-small", "convdfsmn-small"]

# (row key, label, method, winograd, options)
ROWS = [
    ("float32", "float32", None, None, {}),
    ("direct-ptq", "int8 direct, PTQ", "ptq", "off", {}),
    ("direct-qat", "int8 direct, QAT", "qat", "off", {}),
    ("f23-ptq", "int8 Winograd F(2,3), PTQ (no RSQ)", "ptq", "f23", {"overflow_ratio": None}),
    ("f43-ptq-bound", "int8 Winograd F(4,3), PTQ, worst-case range (no RSQ)", "ptq", "f43",
     {"overflow_ratio": None, "v_calib": "bound"}),
    ("f43-ptq", "int8 Winograd F(4,3), PTQ (no RSQ)", "ptq", "f43", {"overflow_ratio": None}),
    ("auto-ptq", "int8 Winograd auto (overflow rule), PTQ", "ptq", "auto", {}),
    ("f43-qat", "int8 Winograd F(4,3), QAT (no RSQ)", "qat", "f43", {"overflow_ratio": None}),
    ("f43-rsq", "int8 Winograd F(4,3), RSQ", "rsq", "f43", {"overflow_ratio": None}),
    ("f43-rsq-nokd", "int8 Winograd F(4,3), RSQ ranges without distillation (ablation)", "rsq", "f43",
     {"overflow_ratio": None, "kd_weight": 0.0}),
    ("float32-ft", "float32, fine-tuned like RSQ (control)", "float-ft", None, {}),
    ("float32-ft-nokd", "float32, fine-tuned like QAT (control, CTC only)", "float-ft", None, {"kd_weight": 0.0}),
]


# The float row each row is held against: PTQ rows against the float model, fine-tuned rows against
# the float model fine-tuned the same way (with or without distillation).
REFERENCE = {"float32": "float32", "float32-ft": "float32", "float32-ft-nokd": "float32",
             "direct-qat": "float32-ft-nokd", "f43-qat": "float32-ft-nokd", "f43-rsq-nokd": "float32-ft-nokd",
             "f43-rsq": "float32-ft"}


def float_checkpoint(name: str, out_dir: Path, corpus_dir, *, checkpoint=None, accuracy_dir="out/accuracy",
                     docs_dir="docs/results/data", train_minutes: float = 20.0, progress: bool = True) -> tuple[Path, str]:
    """(best.pt path, where it came from): see step 1 of the module docstring."""

    from wispy.experiments.accuracy import RUNS, train_run

    if checkpoint:
        return Path(checkpoint), "given"
    run = next((r for r in RUNS if r[0] == name), None)
    if run is None:
        raise ValueError(f"unknown model {name!r}: one of {', '.join(r[0] for r in RUNS)}")
    _, key, units, lr, epochs = run
    acc = Path(accuracy_dir) / "runs" / name
    if (acc / "best.pt").exists() and (acc / "last.pt").exists():
        done = load_torch_file(acc / "last.pt")["epoch"] >= epochs
        listed = False
        aj = Path(docs_dir) / "accuracy.json"
        if aj.exists():
            try:
                listed = name in json.loads(aj.read_text()).get("models", {})
            except (ValueError, AttributeError):
                listed = False
        if done or listed:
            return acc / "best.pt", "the accuracy table's run"
    own = out_dir / "runs" / name
    train_run(name, key, units, lr, epochs, corpus_dir, own, minutes=train_minutes, progress=progress)
    return own / "best.pt", f"trained here ({own}, the accuracy table's settings)"


def calibration_batches(model, corpus_dir, n: int) -> list:
    """The first `n` utterances of the train split, normalised, one [1, F, T] batch each (the
    model's layout)."""
    import torch

    from wispy.data.loaders import apply_norm as _apply_norm, load_examples as _load
    from wispy.models.registry import is_channels_first as _channels_first

    cfg = model.wispy_config
    data = _load(corpus_dir, "train", cfg.get("feature", "logmel"), cfg.get("n_mels", 40),
                 cfg.get("units", "phones"))[:n]
    cf = _channels_first(cfg)
    out = []
    for x, _ in data:
        t = torch.from_numpy(_apply_norm(x, cfg["norm"]))
        out.append((t.T if cf else t).unsqueeze(0).contiguous())
    return out


def _layer_table(q) -> list:
    from wispy.compress.quant import QuantConv1d, quant_layers

    rows = []
    for n, mod in quant_layers(q).items():
        rec = q.wispy_quant["layers"].get(n, {})
        row = {"name": n, "mode": mod.mode, "why": rec.get("why")}
        if isinstance(mod, QuantConv1d):
            row.update(shape=[mod.in_channels, mod.out_channels, mod.kernel_size[0]], stride=mod.stride[0],
                       dilation=mod.dilation[0], groups=mod.groups)
        else:
            row.update(shape=[mod.in_features, mod.out_features])
        row["calib"] = rec.get("calib", {})
        rows.append(row)
    return rows


def run_quant_table(out_dir="out/quant", corpus_dir="out/corpus", *, models=None, docs_dir="docs/results/data",
                    checkpoints: Optional[dict] = None, calib: int = 32, rsq_batches: int = 150,
                    qat_batches: Optional[int] = None, wqat_batches: Optional[int] = None, lr: float = 3e-4,
                    range_lr: float = 1e-2, kd_weight: float = 1.0, rows: Optional[list] = None,
                    limit: Optional[int] = None, train_minutes: float = 20.0, accuracy_dir="out/accuracy",
                    progress: bool = True, command: Optional[str] = None) -> dict:
    """Steps 1-4 of the module docstring; returns the results (also written as JSON)."""
    out_dir, docs_dir = Path(out_dir), Path(docs_dir) if docs_dir else None
    out_dir.mkdir(parents=True, exist_ok=True)
    models = models or MODELS
    qat_batches = rsq_batches if qat_batches is None else qat_batches
    wqat_batches = rsq_batches if wqat_batches is None else wqat_batches
    budget = {"direct-qat": qat_batches, "f43-qat": wqat_batches, "f43-rsq": rsq_batches, "f43-rsq-nokd": rsq_batches,
              "float32-ft": rsq_batches, "float32-ft-nokd": qat_batches}
    wanted = [r for r in ROWS if (rows is None or r[0] in rows) and budget.get(r[0], 1) > 0]
    t_all = time.perf_counter()
    result = {"command": command, "corpus": str(corpus_dir), "models": {}, "host": platform.node(),
              "settings": {"calib_utterances": calib, "rsq_batches": rsq_batches, "qat_batches": qat_batches,
                           "wqat_batches": wqat_batches, "lr": lr, "range_lr": range_lr, "kd_weight": kd_weight,
                           "limit": limit, "batch_size": 16}}
    table = _Table(corpus_dir=corpus_dir, lr=lr, range_lr=range_lr, kd_weight=kd_weight, budget=budget,
                   limit=limit, calib=calib, progress=progress)
    for name in models:
        t0 = time.perf_counter()
        ck, source = float_checkpoint(name, out_dir, corpus_dir, checkpoint=(checkpoints or {}).get(name),
                                      accuracy_dir=accuracy_dir, docs_dir=docs_dir or "docs/results/data",
                                      train_minutes=train_minutes, progress=progress)
        mres = _model_rows(table, name, ck, source, out_dir / name, wanted)
        mres["seconds"] = time.perf_counter() - t0
        result["models"][name] = mres
    result["seconds"] = time.perf_counter() - t_all
    if docs_dir is not None:
        docs_dir.mkdir(parents=True, exist_ok=True)
        (docs_dir / "quant_table.json").write_text(json.dumps(result, indent=1, default=float) + "\n")
        (docs_dir / "quant_table.md").write_text(markdown(result))
    return result


@dataclass
class _Table:
    """What the rows of the table share: the corpus and the training settings."""

    corpus_dir: object
    lr: float
    range_lr: float
    kd_weight: float
    budget: dict  # row key -> training batches
    limit: Optional[int]
    calib: int
    progress: bool

    def say(self, line: str) -> None:
        if self.progress:
            print(line, flush=True)


def _model_rows(table: _Table, name: str, ck, source: str, mdir: Path, wanted: list) -> dict:
    """One model's rows (each saved as mdir/KEY.json; a finished row of the same float
    checkpoint and test limit is read back), with their differences to float32 and to their
    reference rows."""
    from wispy.models.registry import load_checkpoint
    from wispy.training.data import prepare_data
    from wispy.training.evaluate import evaluate

    fmodel = load_checkpoint(ck)
    md5 = hashlib.md5(Path(ck).read_bytes()).hexdigest()  # a finished row is reused only for this checkpoint
    cfg = fmodel.wispy_config
    table.say(f"[{name}] float checkpoint: {ck} ({source})")
    calib_data = calibration_batches(fmodel, table.corpus_dir, table.calib)
    cache = {}

    def data():  # the training data, prepared once for the rows that train
        if "data" not in cache:
            cache["data"] = prepare_data(fmodel, table.corpus_dir)
        return cache["data"]

    mres = {"checkpoint": str(ck), "checkpoint_md5": md5, "source": source, "units": cfg.get("units", "phones"),
            "rows": {}}
    mdir.mkdir(parents=True, exist_ok=True)
    for key, label, method, winograd, opts in wanted:
        t1 = time.perf_counter()
        saved = mdir / f"{key}.json"
        row = _saved_row(saved, mdir, key, md5, table.limit)
        if row is not None:
            mres["rows"][key] = row
            table.say(f"[{name}] {label}: {_pct(row['test']['per'])} (done before)")
            continue
        model, extra = _row_model(table, fmodel, cfg, calib_data, data, mdir, key, method, winograd, opts)
        r = evaluate(model, table.corpus_dir, "test", config=cfg, limit=table.limit, progress=table.progress)
        row = {"label": label, "method": method, "winograd": winograd, "limit": table.limit, "checkpoint_md5": md5,
               "test": {k: r[k] for k in ("per", "wer", "utterances", "rtf") if k in r},
               "seconds": time.perf_counter() - t1, **extra}
        if "layers" in extra:
            row["modes"] = {m: sum(ly["mode"] == m for ly in extra["layers"]) for m in ("direct", "f23", "f43")}
        saved.write_text(json.dumps(row, indent=1, default=float) + "\n")
        mres["rows"][key] = row
        table.say(f"[{name}] {label}: {_pct(row['test']['per'])}"
                  + (f", WER {_pct(row['test']['wer'])}" if "wer" in row["test"] else "")
                  + f"  ({row['seconds']:.0f} s)")
    _add_deltas(mres["rows"])
    return mres


def _saved_row(saved: Path, mdir: Path, key: str, md5: str, limit: Optional[int]) -> Optional[dict]:
    """The row saved in `saved` when it was made from the float checkpoint `md5` with this test
    limit; else None, and the models of a stale row (another checkpoint or limit) are deleted."""
    if not saved.exists():
        return None
    row = json.loads(saved.read_text())
    if row.get("limit") == limit and row.get("checkpoint_md5", md5) == md5:
        if "checkpoint_md5" not in row:  # a row from before md5s were recorded
            row["checkpoint_md5"] = md5
            saved.write_text(json.dumps(row, indent=1, default=float) + "\n")
        return row
    for stale in (mdir / f"{key}.pt", mdir / f"{key}-train", mdir / f"{key}-train.json"):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    return None


def _row_model(table: _Table, fmodel, cfg: dict, calib_data: list, data: Callable, mdir: Path, key: str, method,
               winograd, opts: dict):
    """(the model of row `key`, the row's extra fields): the float model itself, its
    fine-tuned control (given the float config `cfg`), or a quantized copy (trained for QAT and RSQ); a trained model saved
    in mdir/KEY.pt is loaded instead of trained again."""
    import torch

    from wispy.compress.calibrate import quantize
    from wispy.compress.quant import load_quantized, prepare, save_quantized
    from wispy.compress.rsq import qat_train

    if method is None:
        return fmodel, {}
    if method == "float-ft":
        # the control: the same fine-tuning as RSQ (batches, schedule, distillation from the
        # original) on the float model, BatchNorm folded as in the quantized ones
        train_data = data()
        model = prepare(fmodel, "off", layers=[])
        if (mdir / f"{key}.pt").exists():
            model.load_state_dict(load_torch_file(mdir / f"{key}.pt")["model"])
            info = json.loads((mdir / f"{key}-train.json").read_text())
        else:
            kd = opts.get("kd_weight", table.kd_weight)
            info = qat_train(model, table.corpus_dir, epochs=1, max_batches=table.budget[key], lr=table.lr,
                             teacher=fmodel if kd > 0 else None, kd_weight=kd,
                             out_dir=mdir / f"{key}-train", data=train_data, progress=table.progress)
            torch.save({"model": model.state_dict()}, mdir / f"{key}.pt")
            (mdir / f"{key}-train.json").write_text(json.dumps(info, indent=1, default=float) + "\n")
        model.wispy_config = cfg
        return model, {"training": info}
    train_kw = {}
    if method in ("qat", "rsq"):
        train_kw = dict(corpus_dir=table.corpus_dir, epochs=1, max_batches=table.budget[key], lr=table.lr,
                        range_lr=table.range_lr, out_dir=mdir / f"{key}-train", data=data(),
                        kd_weight=table.kd_weight if method == "rsq" else 0.0)
    if (mdir / f"{key}.pt").exists() and method in ("qat", "rsq"):
        model = load_quantized(mdir / f"{key}.pt")
    else:
        model = quantize(fmodel, calib_data, method, winograd, progress=table.progress, **{**train_kw, **opts})
        save_quantized(model, mdir / f"{key}.pt")
    return model, {"layers": _layer_table(model), "training": model.wispy_quant.get("training")}


def _add_deltas(rows: dict) -> None:
    """Each row's difference to float32 and to its reference row (REFERENCE), in points."""
    f = rows.get("float32", {}).get("test", {}).get("per")
    for key, row in rows.items():
        if f is not None:
            row["delta_points"] = 100 * (row["test"]["per"] - f)
        ref = REFERENCE.get(key, "float32")
        if ref != key and ref in rows:
            row["reference"] = ref
            row["delta_reference_points"] = 100 * (row["test"]["per"] - rows[ref]["test"]["per"])


def _label(m: dict, key: str) -> str:
    return {"float32": "float32", "float32-ft": "fine-tuned with KD", "float32-ft-nokd": "fine-tuned, CTC only"}.get(key, key)


def _compute_minutes(result: dict) -> float:
    return sum(r.get("seconds", 0.0) for m in result["models"].values() for r in m["rows"].values()) / 60


def _pct(x) -> str:
    return "" if x is None else f"{100 * x:.2f}%"


def markdown(result: dict) -> str:
    s = result["settings"]
    lines = ["# int8 quantization: accuracy on held-out voices", "",
             f"Produced by `{result.get('command') or 'wispy quant-table'}` "
             f"({_compute_minutes(result):.1f} min of compute in all, rows finished by an earlier run "
             f"included; on {result.get('host', '?')}). Test split of "
             f"`{result['corpus']}`: speakers never heard in training; greedy CTC decoding at batch 1. "
             "The int8 rows run the exact integer arithmetic the compiled code must reproduce "
             "(`wispy/compress/winograd.py`). Calibration: the first "
             f"{s['calib_utterances']} training utterances (max-abs ranges). QAT, Winograd QAT and RSQ fine-tune "
             f"for {s['qat_batches']}, {s['wqat_batches']} and {s['rsq_batches']} batches of 16 "
             f"(Adam, lr {s['lr']:g} with a cosine decay; RSQ's ranges at lr {s['range_lr']:g}, distillation "
             f"weight {s['kd_weight']:g}); the best of the calibrated model and the fine-tuned one on the "
             "valid split is kept.", "",
             "The rows: *PTQ* is calibration only (per-output-channel int8 weights, per-tensor activation "
             "scales). *Winograd F(m,3)* rows put every stride-1 dense Conv1d of 3 or more taps in int8 "
             "Winograd form (kernels cut into 3-tap pieces; input tiles transformed, requantized to int8 with "
             "one scale per Winograd position, int8 products summed in int32 over channels and pieces, float "
             "output transform); the other layers stay direct int8. *No RSQ* means the Winograd-domain scales "
             "come from calibration (or the worst case, which never overflows). *QAT* fine-tunes the float "
             "weights through the fake-quant arithmetic with CTC, ranges held. *RSQ* (Range-Scaled "
             "Quantization) fine-tunes through the Winograd-domain arithmetic with the transformed values' "
             "ranges trained too and distillation from the float model (KL per frame). The control row gives "
             "the float model the same fine-tuning, separating what training adds from what quantization "
             "loses. *auto* is `quantize(winograd=\"auto\")`: per layer F(4,3), else F(2,3), else direct, by "
             "the overflow rule.", ""]
    for name, m in result["models"].items():
        unit = "CER" if m["units"] == "chars" else "PER"
        wer = m["units"] == "chars"
        lines += [f"## {name}", "", f"Float checkpoint: `{m['checkpoint']}` ({m['source']}).", ""]
        head = f"| model | test {unit} | vs float32 (points) | vs same-training float (points) |" + \
            (" test WER |" if wer else "") + " layers direct / F(2,3) / F(4,3) |"
        lines += [head, "|" + "---|" * (head.count("|") - 1)]
        for key, row in m["rows"].items():
            modes = row.get("modes")
            mcol = f"{modes['direct']} / {modes['f23']} / {modes['f43']}" if modes else "(float)"
            d = row.get("delta_points")
            dcol = "" if key == "float32" or d is None else f"{d:+.2f}"
            r = row.get("delta_reference_points")
            rcol = "" if r is None or row.get("reference") == "float32" else f"{r:+.2f} ({_label(m, row['reference'])})"
            if row.get("reference") == "float32" and key != "float32" and not key.startswith("float32"):
                rcol = dcol
            cells = [row["label"], _pct(row["test"]["per"]), dcol, rcol]
            if wer:
                cells.append(_pct(row["test"].get("wer")))
            cells.append(mcol)
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        auto = m["rows"].get("auto-ptq")
        if auto and auto.get("layers"):
            lines += ["Per-layer calibration (relative output MSE against float on the calibration set; the "
                      "overflow rule sends a Winograd mode whose error exceeds 4x direct int8's to the next "
                      "choice):", "",
                      "| layer | shape (in, out, taps) | stride | direct | F(2,3) | F(4,3) | auto's mode |",
                      "|---|---|---|---|---|---|---|"]
            for ly in auto["layers"]:
                c = ly.get("calib", {})
                e = lambda k: f"{c[k]:.2e}" if k in c and c[k] is not None else ""  # noqa: E731
                lines.append(f"| {ly['name']} | {tuple(ly['shape'])} | {ly.get('stride', '')} | {e('err_direct')} | "
                             f"{e('err_f23')} | {e('err_f43')} | {ly['mode']} |")
            lines.append("")
        rsq = m["rows"].get("f43-rsq")
        if rsq and rsq.get("delta_points") is not None:
            r = rsq.get("delta_reference_points")
            worst = max(rsq["delta_points"], r if r is not None else -1e9)
            lines += [f"The bar (the RSQ model's {unit} within 0.1 points of float32): RSQ is "
                      f"{rsq['delta_points']:+.2f} points from the float32 checkpoint"
                      + (f" and {r:+.2f} from the float model fine-tuned the same way" if r is not None else "")
                      + (": met." if worst <= 0.1 else ": NOT met."), ""]
        if rsq and rsq.get("training"):
            tr = rsq["training"]
            lines += [f"RSQ training: valid {unit} {_pct(tr['valid_per_before'])} after calibration, "
                      f"{_pct(tr['best_valid_per'])} after training (epoch {tr['best_epoch']} kept); "
                      f"{sum(h['seconds'] for h in tr['history']) / 60:.1f} min.", ""]
    return "\n".join(lines) + "\n"

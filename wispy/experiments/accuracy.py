"""The dense accuracy table: every small model trained here, tested on held-out voices, clean
and noisy. It is the baseline that pruning and quantization are held against.

    wispy accuracy --out out/accuracy            # or: make accuracy

What it does, each step skipped when its result is already there (so it resumes):

1. the clean corpus (`generate_corpus`: 4000/400/400 utterances, seed 0) unless it exists;
2. noisy copies of the test split: the same 400 utterances, the same held-out voices, with
   white noise and with babble (6 other test talkers) at 10 dB SNR (`NOISE`);
3. trains each model of `RUNS` with CTC on the clean train split for its number of epochs
   (chosen so that each takes about 10 minutes on one thread here), with a wall-clock cap per
   model (`--minutes`, default 60) for a pathologically busy machine. The
   epochs are the budget, not the clock, so the table does not depend on what else ran: a run
   is a function of its seed (the batch order of each epoch included), up to floating-point
   reduction order. A run directory that
   already holds a checkpoint is resumed; one that has its epochs, or whose recorded time
   reaches the cap, is not trained further (`--reuse NAME=DIR` starts a run from an existing
   one, e.g. the shipped gru-small's);
4. evaluates each model's best checkpoint (best valid PER) with PyTorch on the clean and
   noisy test sets (greedy CTC decoding at batch 1), and compiles it with wispy for the host
   (one module for every length) to check that the compiled module decodes the clean test set
   exactly as PyTorch does;
5. writes `docs/results/data/accuracy.md` (the table) and `accuracy.json` (everything, per model).

Each training runs on one torch thread, and `jobs` (default 2) trainings run at once, in
processes of their own: on a shared 2-core machine two OpenMP threads that spin while the
other is descheduled slow a training step several times over, while two single-threaded
trainings use both cores fully (docs/design/host-runtime.md#openmp-threads-wait-passively).

Training is on clean speech only, so the noisy columns measure robustness to a condition the
models never saw; features are normalised with the clean training set's statistics.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Optional, Sequence

from wispy.models.loading import load_torch_file

# (row name, train.MODELS key, units, learning rate, epochs). lr 3e-3 and 26 epochs are the
# shipped gru-small's run; the other epoch counts take ~10 minutes each on one thread of this
# machine (CPU time per epoch with validation, measured in the docs/results/data/accuracy.md run:
# lstm-small 22 s, wav2letter-small 62 s, convdfsmn-small 77 s, the letter model 64 s).
RUNS = [
    ("gru-small", "gru-small", "phones", 3e-3, 26),
    ("lstm-small", "lstm-small", "phones", 3e-3, 24),
    ("wav2letter-small", "wav2letter-small", "phones", 3e-3, 11),
    ("convdfsmn-small", "convdfsmn-small", "phones", 3e-3, 11),
    ("wav2letter-small-letters", "wav2letter-small", "chars", 3e-3, 11),
]
NOISE = [("white", 10.0), ("babble", 10.0)]  # (kind, SNR dB) of the noisy test sets

SOURCES = {
    "GRUAcousticModel": "RTMobile (Dong et al., DAC 2020)",
    "LSTMAcousticModel": "LSTM acoustic model",
    "Wav2Letter": "Wav2letter (Collobert et al., 2016)",
    "ConvDFSMN": "ConvDFSMN (Zhang et al., 2018; Lv et al., arXiv 2010.14841)",
}


def noisy_test_dir(out_dir, kind: str, snr_db: float) -> Path:
    return Path(out_dir) / "corpora" / f"test-{kind}-{snr_db:g}dB"


def make_noisy_test(clean_dir, out_dir, kind: str, snr_db: float, *, n_test: int, seed: int,
                    progress: bool = True) -> Path:
    """The clean corpus' test split with `kind` noise at `snr_db`: a corpus with only a test
    split, of the same seed (so the same utterances and voices); checked against the clean one."""
    from wispy.data.corpus import generate_corpus, read_manifest

    d = generate_corpus(out_dir, n_train=0, n_valid=0, n_test=n_test, seed=seed, snr_db=snr_db, noise=kind,
                        progress=progress)
    clean = [(r["id"], r["speaker"], r["text"], r["phones"]) for r in read_manifest(clean_dir, "test")]
    noisy = [(r["id"], r["speaker"], r["text"], r["phones"]) for r in read_manifest(d, "test")]
    if clean != noisy:
        raise RuntimeError(f"{d}'s test split is not {clean_dir}'s (a different seed, size or espeak-ng?)")
    return d


def _trained_seconds(run_dir: Path) -> tuple[float, Optional[float], int]:
    """(wall seconds trained so far, the last epoch's seconds, epochs) from a run's last.pt."""

    last = run_dir / "last.pt"
    if not last.exists():
        return 0.0, None, 0
    hist = load_torch_file(last)["history"]
    return sum(h["seconds"] for h in hist), (hist[-1]["seconds"] if hist else None), len(hist)


def train_run(name: str, model_key: str, units: str, lr: float, epochs: int, corpus_dir, run_dir, *,
              minutes: float, seed: int = 0, reuse=None, progress: bool = True) -> dict:
    """Trains (or resumes) one model up to `epochs`, or until `minutes` of recorded training
    time in all (whichever comes first)."""
    import torch

    from wispy.models.registry import MODELS
    from wispy.training.ctc import train_ctc
    from wispy.data.vocab import vocabulary

    run_dir = Path(run_dir)
    if reuse and not (run_dir / "last.pt").exists():
        reuse = Path(reuse)
        if not (reuse / "last.pt").exists():
            raise FileNotFoundError(f"--reuse {name}={reuse}: no last.pt there")
        run_dir.mkdir(parents=True, exist_ok=True)
        for f in ("last.pt", "best.pt", "history.json"):
            if (reuse / f).exists():
                shutil.copy2(reuse / f, run_dir / f)
    done, last_epoch, have = _trained_seconds(run_dir)
    remaining = minutes * 60 - done
    if have and (have >= epochs or remaining <= 0 or (last_epoch is not None and remaining < last_epoch)):
        if progress:
            print(f"{name}: already trained ({have} epochs, {done / 60:.1f} min), not training further")
        return {"trained_now": False}
    cls, kw = MODELS[model_key]
    torch.manual_seed(seed)
    model = cls(**{**kw, "n_classes": len(vocabulary(corpus_dir, units))})
    if progress:
        print(f"{name}: training to epoch {epochs}, for at most {remaining / 60:.1f} min"
              + (f" (resuming after epoch {have})" if have else ""))
    info = train_ctc(model, corpus_dir, epochs=epochs, lr=lr, out_dir=run_dir, seed=seed,
                     max_minutes=remaining / 60, progress=progress, name=name, units=units)
    return {"trained_now": True, "stopped": info["stopped"]}


def _train_worker(threads: int, *args, **kw) -> dict:
    import sys

    import torch

    sys.stdout.reconfigure(line_buffering=True)
    torch.set_num_threads(threads)
    return train_run(*args, **kw)


def evaluate_run(run_dir, conditions: dict, *, compiled: bool, progress: bool = True) -> dict:
    """PyTorch error rates of a run's best.pt on each condition's test split; with
    `compiled`, also the wispy host module's on the first (clean) condition."""

    from wispy.models.counting import summary
    from wispy.training.evaluate import evaluate
    from wispy.models.registry import load_checkpoint

    run_dir = Path(run_dir)
    model = load_checkpoint(run_dir / "best.pt")
    last = load_torch_file(run_dir / "last.pt")
    hist = last["history"]
    cfg = model.wispy_config
    s = summary(model)
    row = {"class": cfg["class"], "kwargs": cfg["kwargs"], "units": cfg.get("units", "phones"),
           "params": s["params"], "mb": s["mb"], "macs_per_second": s["macs_per_second"],
           "epochs": len(hist), "best_epoch": last["best_epoch"], "valid": last["best_valid_per"],
           "train_seconds": sum(h["seconds"] for h in hist),
           "train_cpu_seconds": (sum(h["cpu_seconds"] for h in hist)  # None: a run recorded before wispy did
                                 if all("cpu_seconds" in h for h in hist) else None), "lr": cfg.get("lr"),
           "test": {}}
    for i, (cond, corpus) in enumerate(conditions.items()):
        r = evaluate(model, corpus, "test", compiled=compiled and i == 0, progress=progress)
        res = {k: r[k] for k in ("per", "wer", "rtf", "utterances") if k in r}
        if "compiled" in r:
            c = r["compiled"]
            res["compiled"] = {"per": c["per"], "rtf": c["rtf"], "compile_seconds": c["compile_seconds"],
                               "target": c["target"], "differ": r["differ"],
                               "differ_near_ties": r["differ_near_ties"], "max_abs_diff": r["max_abs_diff"],
                               **({"wer": c["wer"]} if "wer" in c else {})}
        row["test"][cond] = res
    return row


def run_accuracy(out_dir="out/accuracy", corpus_dir="out/corpus", *, minutes: float = 60.0,
                 models: Optional[Sequence[str]] = None, n_train: int = 4000, n_valid: int = 400,
                 n_test: int = 400, seed: int = 0, noise=NOISE, reuse: Optional[dict] = None,
                 compiled: bool = True, docs_dir="docs/results/data", epochs: Optional[dict] = None, progress: bool = True,
                 threads: Optional[int] = 1, jobs: int = 2, command: Optional[str] = None) -> dict:
    """Runs steps 1-5 of the module doc and returns the results (also in docs_dir/accuracy.json).

    models   row names of `RUNS` to include (default all)
    minutes  wall-clock cap per model's training
    epochs   {row name: epochs} overriding `RUNS`'s
    threads  torch threads per training and for the evaluation (None: leave torch's setting)
    jobs     trainings run at once, each in a process of its own
    reuse    {row name: run directory} to start a run from (copied when the run has none)
    compiled also check the compiled host module against PyTorch on the clean test set"""
    import torch

    from wispy.data.corpus import generate_corpus

    if threads:
        torch.set_num_threads(threads)
    t_all = time.perf_counter()
    out_dir = Path(out_dir)
    runs = [r for r in RUNS if models is None or r[0] in models]
    unknown = set(models or ()) - {r[0] for r in RUNS}
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(sorted(unknown))}; known: {', '.join(r[0] for r in RUNS)}")
    if progress:
        print(f"[1/4] clean corpus in {corpus_dir}")
    generate_corpus(corpus_dir, n_train=n_train, n_valid=n_valid, n_test=n_test, seed=seed, progress=progress)
    conditions = {"clean": Path(corpus_dir)}
    for kind, snr in noise:
        if progress:
            print(f"[2/4] test split with {kind} noise at {snr:g} dB SNR")
        conditions[f"{kind} {snr:g} dB"] = make_noisy_test(corpus_dir, noisy_test_dir(out_dir, kind, snr), kind, snr,
                                                           n_test=n_test, seed=seed, progress=progress)
    def job(name, key, units, lr, n_epochs):
        return ((name, key, units, lr, (epochs or {}).get(name, n_epochs), corpus_dir, out_dir / "runs" / name),
                {"minutes": minutes, "seed": seed, "reuse": (reuse or {}).get(name)})

    if jobs > 1 and len(runs) > 1:
        import multiprocessing

        from concurrent.futures import ProcessPoolExecutor, as_completed

        from wispy.data.loaders import load_examples as _load

        # fill the feature caches once, before processes could race to write them
        for split in ("train", "valid"):
            _load(corpus_dir, split, "logmel", 40)
        if progress:
            print(f"[3/4] training {', '.join(r[0] for r in runs)}, {jobs} at a time")
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {}
            for r in runs:
                args, kw = job(*r)
                futures[pool.submit(_train_worker, threads or torch.get_num_threads(), *args, **kw,
                                    progress="epochs" if progress else False)] = r[0]
            for f in as_completed(futures):
                f.result()
                if progress:
                    print(f"[3/4] {futures[f]}: trained")
    else:
        for k, r in enumerate(runs):
            if progress:
                print(f"[3/4] training {k + 1}/{len(runs)}: {r[0]}")
            args, kw = job(*r)
            train_run(*args, **kw, progress=progress)
    rows = {}
    for k, (name, *_rest, n_epochs) in enumerate(runs):
        if progress:
            print(f"[4/4] evaluating {k + 1}/{len(runs)}: {name}")
        rows[name] = evaluate_run(out_dir / "runs" / name, conditions, compiled=compiled, progress=progress)
        rows[name]["target_epochs"] = (epochs or {}).get(name, n_epochs)

    result = {"command": command, "corpus": str(corpus_dir), "seed": seed,
              "sizes": {"train": n_train, "valid": n_valid, "test": n_test},
              "conditions": {c: str(p) for c, p in conditions.items()}, "minutes_per_model": minutes,
              "machine": f"{platform.machine()} with {os.cpu_count()} CPUs, {jobs} training(s) at a time, "
                         f"{threads or torch.get_num_threads()} torch thread(s) each",
              "total_seconds": time.perf_counter() - t_all, "models": rows}
    if docs_dir is not None:
        docs_dir = Path(docs_dir)
        docs_dir.mkdir(parents=True, exist_ok=True)
        (docs_dir / "accuracy.json").write_text(json.dumps(result, indent=1) + "\n")
        (docs_dir / "accuracy.md").write_text(markdown(result))
    return result


def _pct(x) -> str:
    return "" if x is None else f"{100 * x:.1f}%"


def _minutes(s: float) -> str:
    return f"{s / 60:.1f} min"


def markdown(result: dict) -> str:
    """The table(s) of `run_accuracy`'s result as markdown."""
    conds = list(result["conditions"])
    rows = result["models"]
    phone = {n: r for n, r in rows.items() if r["units"] == "phones"}
    letter = {n: r for n, r in rows.items() if r["units"] == "chars"}
    sz = result["sizes"]
    out = ["# Dense accuracy on held-out voices", "",
           f"{sz['train']} training utterances (clean); test: {sz['test']} utterances of voices never heard in "
           f"training, clean and with noise added at the SNR given. Greedy CTC decoding, no language model. "
           f"Each model trained for its epochs (\"7 of 11\": stopped by the {result['minutes_per_model']:g}-minute "
           f"cap); the best validation checkpoint is tested. Made by:", "",
           f"    {result.get('command') or 'wispy accuracy'}", ""]

    def size_cols(r):
        cpu = r.get("train_cpu_seconds")
        cpu = "" if cpu is None else f" ({cpu / 60:.0f} CPU-min)"
        target = r.get("target_epochs")
        epochs = f"{r['epochs']} of {target}" if target and r["epochs"] < target else str(r["epochs"])
        return [f"{r['params'] / 1e3:,.0f}k", f"{r['mb']:.2f}", f"{r['macs_per_second'] / 1e6:,.1f}",
                epochs, _minutes(r["train_seconds"]) + cpu]

    if phone:
        out += ["Phone error rate (PER, 45 phones):", "",
                ("| model | params | MB | MMAC/s of audio | epochs | training | valid PER | "
                 + " | ".join(f"test PER {c}" for c in conds) + " |"),
                "|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(conds)]
        for n, r in phone.items():
            out.append("| " + " | ".join([n, *size_cols(r), _pct(r["valid"]),
                                          *(_pct(r["test"][c]["per"]) for c in conds)]) + " |")
        out.append("")
    if letter:
        out += ["Letter model (26 letters, space; CER and WER, words = the decoded letters split at spaces):", "",
                ("| model | params | MB | MMAC/s of audio | epochs | training | valid CER | "
                 + " | ".join(f"test CER / WER {c}" for c in conds) + " |"),
                "|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(conds)]
        for n, r in letter.items():
            out.append("| " + " | ".join([n, *size_cols(r), _pct(r["valid"]),
                                          *(f"{_pct(r['test'][c]['per'])} / {_pct(r['test'][c].get('wer'))}"
                                            for c in conds)]) + " |")
        out.append("")
    checked = {n: r["test"][conds[0]]["compiled"] for n, r in rows.items() if "compiled" in r["test"][conds[0]]}
    if checked:
        out += [f"Compiled with wispy for the host (one module for every length), on the {conds[0]} test set:", "",
                "| model | PyTorch | compiled | utterances decoded differently | max abs log-prob diff | compile |",
                "|---|---:|---:|---:|---:|---:|"]
        for n, c in checked.items():
            r = rows[n]["test"][conds[0]]
            out.append(f"| {n} | {_pct(r['per'])} | {_pct(c['per'])} | {c['differ']} of {r['utterances']} | "
                       f"{c['max_abs_diff']:.1e} | {c['compile_seconds']:.1f} s |")
        out.append("")
    out += [f"MB: parameters at float32. MMAC/s: millions of multiply-accumulates per second of audio "
            f"(100 frames), counted by `wispy.models.summary`. Training time is the sum of the epochs' "
            f"wall times (training and validation), and in brackets the CPU time they used, on "
            f"{result.get('machine', 'this machine')}; a busy machine stretches the wall time, not the CPU "
            f"time. This invocation of the command took {_minutes(result['total_seconds'])}.", ""]
    return "\n".join(out)

"""The `wispy` commands corpus, train, eval, accuracy: the speech corpus and the acoustic models."""
from __future__ import annotations

import sys
from pathlib import Path


from wispy.cli.common import count, name_values, new_model


def cmd_corpus(a) -> int:
    from wispy.data import generate_corpus

    out = generate_corpus(a.out_dir, n_train=a.train, n_valid=a.valid, n_test=a.test, seed=a.seed,
                          snr_db=a.snr_db, noise=a.noise, workers=a.workers, progress=not a.quiet)
    print(f"corpus in {out} ({a.train}/{a.valid}/{a.test} utterances, seed {a.seed}"
          f"{'' if a.snr_db is None else f', {a.noise} noise at {a.snr_db:g} dB SNR'})")
    return 0



def cmd_train(a) -> int:
    import torch

    from wispy.models.registry import MODELS
    from wispy.training.ctc import train_ctc

    if a.threads:
        torch.set_num_threads(a.threads)
    if a.model not in MODELS:
        print(f"wispy train: error: unknown model {a.model!r}: {', '.join(MODELS)}", file=sys.stderr)
        return 2
    model = new_model(a.model, a.corpus, n_mels=a.n_mels, units=a.units, seed=a.seed)
    info = train_ctc(model, a.corpus, feature=a.feature, n_mels=a.n_mels, epochs=a.epochs,
                     batch_size=a.batch_size, lr=a.lr, out_dir=a.out, resume=not a.no_resume, seed=a.seed,
                     max_minutes=a.max_minutes, progress=not a.quiet, name=a.model, units=a.units)
    print(f"{a.model}: {info['parameters']:,} parameters, epoch {info['epoch']}, best valid "
          f"{'CER' if a.units == 'chars' else 'PER'} "
          f"{info['best_valid_per']:.4f} (epoch {info['best_epoch']}), {info['train_seconds']:.0f} s; "
          f"checkpoints in {a.out}")
    return 0


def cmd_eval(a) -> int:
    import json

    import torch

    from wispy.training.evaluate import evaluate
    from wispy.models.registry import load_checkpoint

    if a.threads:
        torch.set_num_threads(a.threads)
    model = load_checkpoint(a.checkpoint)
    r = evaluate(model, a.corpus, a.split, target=a.target, compiled=a.compiled, limit=a.limit,
                 progress=not a.quiet)
    unit = "CER" if r["units"] == "chars" else "PER"
    wer = lambda d: f", WER {d['wer']:.4f}" if "wer" in d else ""  # noqa: E731
    print(f"{a.split}: {r['utterances']} utterances, PyTorch {unit} {r['per']:.4f}{wer(r)}, RTF {r['rtf']:.4f}")
    if "compiled" in r:
        c = r["compiled"]
        print(f"compiled ({c['target']}): {unit} {c['per']:.4f}{wer(c)}, RTF {c['rtf']:.4f} (compile {c['compile_seconds']:.1f} s); "
              f"{r['differ']} utterance(s) decode differently from PyTorch "
              f"({r['differ_near_ties']} at near-ties), max |log-prob diff| {r['max_abs_diff']:.2e}")
    if a.json:
        out = {k: v for k, v in r.items() if k != "hyps"}
        if "compiled" in out:
            out["compiled"] = {k: v for k, v in out["compiled"].items() if k != "hyps"}
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


def cmd_accuracy(a) -> int:
    import shlex

    from wispy.experiments.accuracy import run_accuracy

    reuse = name_values(a.reuse, "accuracy", "--reuse", "NAME=DIR")
    epochs = name_values(a.epochs, "accuracy", "--epochs", "NAME=N", count)
    if reuse is None or epochs is None:
        return 2
    r = run_accuracy(a.out, a.corpus, minutes=a.minutes, models=a.models.split(",") if a.models else None,
                     n_train=a.train, n_valid=a.valid, n_test=a.test, seed=a.seed, reuse=reuse,
                     compiled=not a.no_compiled, docs_dir=a.docs, epochs=epochs, progress=not a.quiet,
                     threads=a.threads or None, jobs=a.jobs,
                     command="wispy " + shlex.join(a.argv))
    from wispy.experiments.accuracy import markdown

    print(markdown(r))
    if a.docs:
        print(f"wrote {Path(a.docs) / 'accuracy.md'} and {Path(a.docs) / 'accuracy.json'}")
    return 0


def add_corpus(sub) -> None:
    cp = sub.add_parser("corpus", help="synthesise a speaker-disjoint phone-recognition corpus with espeak-ng")
    cp.add_argument("out_dir", metavar="OUT_DIR")
    cp.add_argument("--train", type=int, default=4000, help="training utterances (default 4000)")
    cp.add_argument("--valid", type=int, default=400, help="validation utterances (default 400)")
    cp.add_argument("--test", type=int, default=400, help="test utterances (default 400)")
    cp.add_argument("--seed", type=int, default=0)
    cp.add_argument("--snr-db", type=float, default=None, help="add noise at this SNR (default: clean)")
    cp.add_argument("--noise", default="white", choices=["white", "babble"])
    cp.add_argument("--workers", type=int, default=2)
    cp.add_argument("-q", "--quiet", action="store_true")
    cp.set_defaults(fn=cmd_corpus)


def add_train(sub) -> None:
    tr = sub.add_parser("train", help="train an acoustic model with CTC on a corpus (wispy corpus)")
    tr.add_argument("model", help="gru-small, gru-medium, lstm-small, wav2letter-small or convdfsmn-small")
    tr.add_argument("--corpus", required=True)
    tr.add_argument("--out", required=True, help="checkpoint directory (last.pt, best.pt, history.json)")
    tr.add_argument("--epochs", type=int, required=True, help="total epochs (a resumed run continues to it)")
    tr.add_argument("--batch-size", type=int, default=16)
    tr.add_argument("--lr", type=float, default=1e-3)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--feature", default="logmel", choices=["logmel", "mfcc"])
    tr.add_argument("--n-mels", type=int, default=40)
    tr.add_argument("--units", default="phones", choices=["phones", "chars"],
                    help="CTC targets: phones (PER) or the sentence's letters (CER/WER)")
    tr.add_argument("--max-minutes", type=float, default=None, help="stop before exceeding this budget")
    tr.add_argument("--no-resume", action="store_true", help="start afresh even if OUT/last.pt exists")
    tr.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    tr.add_argument("-q", "--quiet", action="store_true")
    tr.set_defaults(fn=cmd_train)


def add_eval(sub) -> None:
    ev = sub.add_parser("eval", help="phone error rate and real-time factor of a checkpoint on a corpus split")
    ev.add_argument("checkpoint")
    ev.add_argument("--corpus", required=True)
    ev.add_argument("--split", default="test", choices=["train", "valid", "test"])
    ev.add_argument("--compiled", action="store_true", help="also compile it and evaluate the compiled module")
    ev.add_argument("--target", default="host", choices=["host", "arm64", "vulkan"])
    ev.add_argument("--limit", type=int, default=None, help="first N utterances only")
    ev.add_argument("--json", default=None, help="also write the results as JSON there")
    ev.add_argument("--threads", type=int, default=0)
    ev.add_argument("-q", "--quiet", action="store_true")
    ev.set_defaults(fn=cmd_eval)


def add_accuracy(sub) -> None:
    ac = sub.add_parser("accuracy", help="train the small models and write the dense accuracy table "
                                         "(clean and noisy held-out voices) to docs/results/data/accuracy.{md,json}")
    ac.add_argument("--out", default="out/accuracy", help="runs and noisy test sets (default out/accuracy)")
    ac.add_argument("--corpus", default="out/corpus", help="the clean corpus, made if missing (default out/corpus)")
    ac.add_argument("--minutes", type=float, default=60.0,
                    help="wall-clock cap on each model's training (default 60; the budget is its epochs)")
    ac.add_argument("--models", default=None, help="comma list of rows (default all: gru-small, lstm-small, "
                                                   "wav2letter-small, convdfsmn-small, wav2letter-small-letters)")
    ac.add_argument("--reuse", action="append", default=[], metavar="NAME=DIR",
                    help="start NAME's run from an existing run directory, e.g. gru-small=out/gru_small")
    ac.add_argument("--no-compiled", action="store_true", help="skip the compiled-module check")
    ac.add_argument("--docs", default="docs/results/data", help="where accuracy.md/json go (default docs/results/data)")
    ac.add_argument("--train", type=int, default=4000)
    ac.add_argument("--valid", type=int, default=400)
    ac.add_argument("--test", type=int, default=400)
    ac.add_argument("--seed", type=int, default=0)
    ac.add_argument("--epochs", action="append", default=[], metavar="NAME=N",
                    help="train NAME for N epochs instead of its default (repeat)")
    ac.add_argument("--threads", type=int, default=1, help="torch threads per training (default 1; 0: torch's)")
    ac.add_argument("--jobs", type=int, default=2, help="trainings at once, one process each (default 2)")
    ac.add_argument("-q", "--quiet", action="store_true")
    ac.set_defaults(fn=cmd_accuracy)


def register(sub) -> None:
    add_corpus(sub)
    add_train(sub)
    add_eval(sub)
    add_accuracy(sub)

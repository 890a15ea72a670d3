"""The `wispy` commands prune, finetune, prune-sweep, quant-table: block-sparse pruning and int8 tables."""
from __future__ import annotations

import sys
from pathlib import Path


from wispy.cli.common import name_values, new_model, seed_arg



def _prune_common_args(p):
    p.add_argument("--corpus", default="out/corpus", help="corpus directory (wispy corpus; default out/corpus)")
    p.add_argument("--block", default="cols:4", help="blocks: cols:N (column strips, RTMobile's), rows:N, "
                                                     "tiles:RxC (sizes), grid:NxM (counts), whole")
    p.add_argument("--prune", default="rows", choices=["rows", "cols", "both"], help="removed inside each block")
    p.add_argument("--layers", default="rnn", help="rnn, linear, conv, all, or comma-separated parameter names/patterns")
    p.add_argument("--non-uniform", action="store_true", help="let the survivor count differ between blocks")
    p.add_argument("--method", default="admm", choices=["admm", "magnitude"],
                   help="admm: ADMM then masked fine-tuning; magnitude: one-shot then fine-tuning")
    p.add_argument("--admm-epochs", type=int, default=3)
    p.add_argument("--finetune-epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-3, help="ADMM learning rate (Adam)")
    p.add_argument("--finetune-lr", type=float, default=1e-3, help="fine-tuning learning rate (cosine to 5e-5)")
    p.add_argument("--rho", default="1e-3,1e-1", help="ADMM rho: first,last (geometric over the Z updates)")
    p.add_argument("--update-every", type=int, default=50, help="batches between ADMM Z/U updates")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: steadier on a shared machine)")
    seed_arg(p)
    p.add_argument("-q", "--quiet", action="store_true")


def _prune_layers(text):
    return text.split(",") if "," in text or text not in ("rnn", "linear", "conv", "all") else text


def cmd_prune(a) -> int:
    import torch

    from wispy.compress import admm_prune, compression_report
    from wispy.experiments.plot import plot_model_masks
    from wispy.training.evaluate import evaluate
    from wispy.models.registry import load_checkpoint

    torch.set_num_threads(a.threads)
    model = load_checkpoint(a.checkpoint)
    rho = tuple(float(v) for v in a.rho.split(","))
    info = admm_prune(model, a.corpus, rate=a.rate, block=a.block, prune=a.prune, uniform=not a.non_uniform,
                      layers=_prune_layers(a.layers), admm_epochs=a.admm_epochs if a.method == "admm" else 0,
                      finetune_epochs=a.finetune_epochs, lr=a.lr, finetune_lr=a.finetune_lr, rho=rho,
                      update_every=a.update_every, seed=a.seed, out_dir=a.out, progress=not a.quiet)
    rep = compression_report(model)
    pics = plot_model_masks(model, Path(a.out) / "matrices")
    for m in rep["matrices"]:
        print(f"{m['name']:<24} {str(tuple(m['shape'])):<12} kept {m['kept']:>8}/{m['total']:<8} {m['rate']:.1f}x")
    print(f"pruned matrices {rep['pruned']['rate']:.1f}x, all parameters {rep['overall']['rate']:.1f}x; "
          f"best valid PER {info['finetune']['best_valid_per']:.4f}")
    r = evaluate(model, a.corpus, "test", progress=not a.quiet)
    print(f"test PER {r['per']:.4f}; model in {Path(a.out) / 'final.pt'} (wispy.compress.load_pruned), "
          f"pictures in {pics[0].parent if pics else a.out}")
    return 0


def cmd_finetune(a) -> int:
    """More masked fine-tuning of a pruned checkpoint: the zeros stay zeros."""
    import torch

    from wispy.compress import compression_report, finetune_masked, load_pruned
    from wispy.compress.block_sparse import save_pruned
    from wispy.training.evaluate import evaluate
    from wispy.errors import ModelLoadError

    torch.set_num_threads(a.threads)
    try:
        model = load_pruned(a.checkpoint)
    except (OSError, RuntimeError, KeyError, ValueError) as e:
        raise ModelLoadError(f"cannot load the pruned checkpoint {a.checkpoint}: {e}") from e
    rate = compression_report(model)["pruned"]["rate"] if getattr(model, "wispy_masks", None) else 1.0
    if rate <= 1.0 and not a.dense_control:
        raise ModelLoadError(f"{a.checkpoint} has no pruned matrices (no masks, no zeros): "
                             "prune it first with `wispy prune` (or pass --dense-control to train it as "
                             "the dense control)")
    teacher = None
    if a.teacher:
        from wispy.models.registry import load_checkpoint

        try:
            teacher = load_checkpoint(a.teacher)
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as e:
            raise ModelLoadError(f"cannot load the distillation teacher {a.teacher} (a dense checkpoint from "
                                 f"wispy train): {e}") from e
    before = evaluate(model, a.corpus, "test", progress=False)["per"]
    info = finetune_masked(model, a.corpus, epochs=a.epochs, lr=a.lr, seed=a.seed, out_dir=a.out,
                           progress=not a.quiet, teacher=teacher, kd_weight=a.kd_weight)
    after = evaluate(model, a.corpus, "test", progress=not a.quiet)["per"]
    final = Path(a.out) / "final.pt"
    save_pruned(model, final, finetune=info, test_per_before=before, test_per=after)
    what = f"pruned matrices {rate:.1f}x" if rate > 1.0 else "dense (the control)"
    print(f"{what}; test PER {before:.4f} before, {after:.4f} after {a.epochs} epochs "
          f"(best valid PER {info['best_valid_per']:.4f} at epoch {info['best_epoch']}); model in {final}")
    return 0


def _train_dense_start(a):
    """--train-dense MODEL:EPOCHS: train the sweep's dense starting point first, in
    OUT/dense (resumable like `wispy train`); its best-validation checkpoint is returned.
    Pruning a converged model is what made 10x hold its accuracy (README, RTMobile)."""
    import torch

    from wispy.models.registry import MODELS
    from wispy.training.ctc import train_ctc

    name, _, epochs = a.train_dense.partition(":")
    if name not in MODELS or not epochs.isdigit() or int(epochs) < 1:
        print(f"wispy prune-sweep: error: --train-dense wants MODEL:EPOCHS with MODEL one of "
              f"{', '.join(MODELS)} (got {a.train_dense!r})", file=sys.stderr)
        return None
    if a.threads:
        torch.set_num_threads(a.threads)
    model = new_model(name, a.corpus)
    out = Path(a.out) / "dense"
    info = train_ctc(model, a.corpus, epochs=int(epochs), out_dir=out, progress=not a.quiet, name=name)
    print(f"dense {name}: best valid PER {info['best_valid_per']:.4f} at epoch {info['best_epoch']} of "
          f"{info['epoch']}; the sweep starts from {out / 'best.pt'}")
    return out / "best.pt"


def cmd_prune_sweep(a) -> int:
    import shlex

    from wispy.experiments.sweep import run_sweep

    rho = tuple(float(v) for v in a.rho.split(","))
    if a.rounds < 0 or a.round_epochs < 1:
        print(f"wispy prune-sweep: error: --rounds wants 0 or more and --round-epochs 1 or more (got "
              f"{a.rounds} and {a.round_epochs})", file=sys.stderr)
        return 2
    speed = False if a.no_speed else (a.speed_fn or True)
    checkpoint = a.checkpoint
    if a.train_dense:
        if a.checkpoint:
            print("wispy prune-sweep: error: give --checkpoint or --train-dense, not both", file=sys.stderr)
            return 2
        checkpoint = _train_dense_start(a)
        if checkpoint is None:
            return 2
    res = run_sweep(a.out, checkpoint=checkpoint, corpus_dir=a.corpus,
                    rates=[float(r) for r in a.rates.split(",")], block=a.block, prune=a.prune,
                    uniform=not a.non_uniform, layers=_prune_layers(a.layers), admm_epochs=a.admm_epochs,
                    finetune_epochs=a.finetune_epochs, lr=a.lr, finetune_lr=a.finetune_lr, rho=rho,
                    update_every=a.update_every, method=a.method, chain=not a.no_chain, speed=speed,
                    sensitivity={k: float(v) for k, v in (kv.split("=") for kv in a.sensitivity.split(",") if kv)},
                    docs=a.docs or None, threads=a.threads, dense_control_epochs=a.dense_control_epochs,
                    rounds=a.rounds, round_epochs=a.round_epochs, seed=a.seed, progress=not a.quiet,
                    command="wispy " + " ".join(shlex.quote(x) for x in sys.argv[1:]))
    for r in res["rows"]:
        ms = f"  {r['ms']:.2f} ms" if r.get("ms") else ""
        print(f"{r['label']:>6}  rate {r['rate']:6.1f}x  test PER {100 * r['test_per']:5.1f}%{ms}")
    if a.docs:
        print(f"wrote {a.docs}.md, {a.docs}.json, {a.docs}.png")
    return 0


def cmd_quant_table(a) -> int:
    import shlex

    import torch

    from wispy.experiments.quant_table import markdown, run_quant_table

    if a.threads:
        torch.set_num_threads(a.threads)
    checkpoints = name_values(a.checkpoint, "quant-table", "--checkpoint", "NAME=PATH")
    if checkpoints is None:
        return 2
    r = run_quant_table(a.out, a.corpus, models=a.models.split(",") if a.models else None, docs_dir=a.docs,
                        checkpoints=checkpoints, calib=a.calib, rsq_batches=a.rsq_batches,
                        qat_batches=a.qat_batches, wqat_batches=a.wqat_batches, lr=a.lr, kd_weight=a.kd_weight,
                        rows=a.rows.split(",") if a.rows else None, limit=a.limit,
                        train_minutes=a.train_minutes, progress=not a.quiet,
                        command="wispy " + shlex.join(a.argv))
    print(markdown(r))
    if a.docs:
        print(f"wrote {Path(a.docs) / 'quant_table.md'} and {Path(a.docs) / 'quant_table.json'}")
    return 0


def add_prune(sub) -> None:
    pr = sub.add_parser("prune", help="block-sparse pruning of a checkpoint (RTMobile's BSP: ADMM, fine-tuning)")
    pr.add_argument("checkpoint", help="a trained checkpoint (wispy train's best.pt)")
    pr.add_argument("--out", required=True, help="output directory (final.pt, checkpoints, matrices/*.png)")
    pr.add_argument("--rate", type=float, required=True, help="compression rate of each pruned matrix")
    _prune_common_args(pr)
    pr.set_defaults(fn=cmd_prune)


def add_finetune(sub) -> None:
    ft = sub.add_parser("finetune", help="more masked fine-tuning of a pruned checkpoint (its zeros held)")
    ft.add_argument("checkpoint", help="a pruned checkpoint (wispy prune's final.pt or best.pt)")
    ft.add_argument("--out", required=True, help="output directory (final.pt, best.pt, resumable ft_last.pt)")
    ft.add_argument("--epochs", type=int, default=10)
    ft.add_argument("--lr", type=float, default=1e-3, help="learning rate (Adam, cosine to 5e-5)")
    ft.add_argument("--teacher", default=None,
                    help="distil from this dense checkpoint (the model the pruned one came from): the per-frame "
                         "KL to its outputs is added to the CTC loss")
    ft.add_argument("--dense-control", action="store_true",
                    help="accept a dense checkpoint and train it the same way: what the extra epochs alone give")
    ft.add_argument("--kd-weight", type=float, default=1.0, help="weight of the distillation term (default 1)")
    ft.add_argument("--corpus", default="out/corpus", help="corpus directory (wispy corpus; default out/corpus)")
    ft.add_argument("--threads", type=int, default=1, help="torch threads (default 1: steadier on a shared machine)")
    seed_arg(ft)
    ft.add_argument("-q", "--quiet", action="store_true")
    ft.set_defaults(fn=cmd_finetune)


def add_prune_sweep(sub) -> None:
    sw = sub.add_parser("prune-sweep", help="PER against block-sparse compression (and speed) for a GRU: "
                                            "table, JSON and Pareto plot")
    sw.add_argument("--out", default="out/prune", help="work directory (one subdirectory per rate; resumable)")
    sw.add_argument("--checkpoint", default=None, help="dense starting point (default: the shipped gru-small)")
    sw.add_argument("--train-dense", default=None, metavar="MODEL:EPOCHS",
                    help="train the dense starting point first (e.g. gru-medium:70), in OUT/dense, resumable")
    sw.add_argument("--rates", default="4,10,20,50,100,245")
    sw.add_argument("--docs", default="docs/results/data/prune_sweep", help="write DOCS.md/.json/.png ('' for none)")
    sw.add_argument("--no-chain", action="store_true", help="start every rate from the dense model")
    sw.add_argument("--no-speed", action="store_true", help="leave the speed column out")
    sw.add_argument("--speed-fn", default=None, help="MODULE:FUNCTION measure_speed(model) -> ms")
    sw.add_argument("--sensitivity", default="rnn.weight_ih_l0=3",
                    help="per-layer rates: NAME_OR_PATTERN=S,... (that matrix keeps S times the others' fraction; "
                         "default: the 40-wide input matrix pruned 3x less hard; '' for one rate everywhere)")
    sw.add_argument("--dense-control-epochs", type=int, default=0,
                    help="also train the dense model N more epochs (what extra training alone gives)")
    sw.add_argument("--rounds", type=int, default=0,
                    help="after its fine-tuning, give every rate (and the dense control) N more rounds of "
                         "--round-epochs epochs, each restarting the learning rate; the next rate starts "
                         "from the model after them")
    sw.add_argument("--round-epochs", type=int, default=12, help="epochs per round (default 12)")
    _prune_common_args(sw)
    sw.set_defaults(fn=cmd_prune_sweep)


def add_quant_table(sub) -> None:
    qt = sub.add_parser("quant-table", help="int8 accuracy table: float32, int8 direct, int8 Winograd without "
                                            "and with RSQ, on held-out voices (docs/quant_table.{md,json})")
    qt.add_argument("--out", default="out/quant", help="quantized models and training runs (default out/quant)")
    qt.add_argument("--corpus", default="out/corpus")
    qt.add_argument("--models", default=None, help="comma list (default wav2letter-small,convdfsmn-small)")
    qt.add_argument("--checkpoint", action="append", default=[], metavar="NAME=PATH",
                    help="float checkpoint of NAME (default: the accuracy table's run, else train one)")
    qt.add_argument("--rows", default=None, help="comma list of row keys (default all: float32, direct-ptq, "
                                                 "direct-qat, f23-ptq, f43-ptq-bound, f43-ptq, auto-ptq, "
                                                 "f43-qat, f43-rsq, f43-rsq-nokd, float32-ft, "
                                                 "float32-ft-nokd)")
    qt.add_argument("--calib", type=int, default=32, help="calibration utterances (default 32)")
    qt.add_argument("--rsq-batches", type=int, default=150, help="RSQ training batches of 16 (default 150)")
    qt.add_argument("--qat-batches", type=int, default=None, help="direct QAT batches (default: as RSQ; 0 skips)")
    qt.add_argument("--wqat-batches", type=int, default=None,
                    help="Winograd QAT (no RSQ) batches (default: as RSQ; 0 skips)")
    qt.add_argument("--lr", type=float, default=3e-4)
    qt.add_argument("--kd-weight", type=float, default=1.0)
    qt.add_argument("--limit", type=int, default=None, help="first N test utterances only")
    qt.add_argument("--train-minutes", type=float, default=20.0, help="cap on training a missing float model")
    qt.add_argument("--docs", default="docs/results/data")
    qt.add_argument("--threads", type=int, default=0)
    qt.add_argument("-q", "--quiet", action="store_true")
    qt.set_defaults(fn=cmd_quant_table)


def register(sub) -> None:
    add_prune(sub)
    add_finetune(sub)
    add_prune_sweep(sub)
    add_quant_table(sub)

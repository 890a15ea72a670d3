"""The `wispy` command line: compile, run, bench, opt, passes, corpus, train, eval, accuracy."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def _workers(text: str):
    """--recurrent-workers: 'auto' or a count."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto or a whole number, not {text!r}") from None


def _add_target_args(p):
    p.add_argument("--target", default="host", help="host, arm64, armv7 or vulkan (default host)")
    p.add_argument("--cpu-features", default="", help="CPU features, e.g. +dotprod,+i8mm on arm64")
    p.add_argument("--vulkan-target", default=None, help="vulkan: valhall (default), adreno, ...")


def _add_model_args(p):
    p.add_argument("model", help="PATH.py:FACTORY, a saved torch.export program PATH.pt2, or zoo:NAME "
                                 "(zoo: gru, lstm, wav2letter, wav2letter-small, convdfsmn, convdfsmn-small)")
    p.add_argument("--input", action="append", default=[], help="example input .npy (repeat per input)")
    p.add_argument("--input-shape", action="append", default=[],
                   help="example input shape instead of a file, e.g. 1x100x153[:float32]")


def cmd_compile(a) -> int:
    from wispy.api import compile_model
    from wispy.models.loading import example_args, load_model

    model, default_args = load_model(a.model)
    args = example_args(a.input, a.input_shape, default_args)
    cm = compile_model(model, args, target=a.target, cpu_features=a.cpu_features,
                       vulkan_target=a.vulkan_target, external_weights=a.external_weights,
                       dump_dir=a.dump_dir, explain=a.explain, block_sparse=not a.no_block_sparse,
                       recurrent_kernel=a.recurrent_kernel, recurrent_workers=a.recurrent_workers,
                       winograd=a.winograd, int8_kernel=a.int8_kernel, host_driver=a.host_driver,
                       progress=not a.quiet)
    out = cm.save(a.output)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, target {cm.target})")
    if a.external_weights:
        print(f"wrote {out.with_suffix('.irpa')} (weights; run with --parameters=model={out.with_suffix('.irpa')})")
    for r in cm.remarks:
        print("remark:", r)
    # A bare @file: with a shape prefix iree-run-module reads the .npy header as data.
    shapes = " ".join(f"--input=@in{i}.npy" for i in range(len(cm.input_specs)))
    device = f" --device={cm.host_driver}" if cm.target.runs_here == "host" and a.host_driver != "local-task" else ""
    print(f"run it: iree-run-module --module={out}{device} --function=main {shapes}")
    return 0


def cmd_run(a) -> int:
    from wispy.runtime import run_vmfb

    inputs = [np.load(p) for p in a.input]
    outs = run_vmfb(a.module, inputs, device=a.device, function=a.function, parameters=a.parameters)
    for i, o in enumerate(outs):
        if a.output and i < len(a.output):
            np.save(a.output[i], o)
            print(f"output {i}: {o.dtype}{list(o.shape)} -> {a.output[i]}")
        else:
            flat = o.reshape(-1)
            print(f"output {i}: {o.dtype}{list(o.shape)} {np.array2string(flat[:8], precision=4)}"
                  f"{' ...' if flat.size > 8 else ''}")
    return 0


def cmd_bench(a) -> int:
    from wispy.bench.harness.harness import run_benchmark
    from wispy.models.loading import example_args, load_model

    model, default_args = load_model(a.model)
    args = example_args(a.input, a.input_shape, default_args)
    if a.stream_chunk:
        from wispy.bench.harness.harness import run_streaming_benchmark

        run_streaming_benchmark(model, args[0], chunk=a.stream_chunk, target=a.target, repeat=a.repeat,
                                name=a.model)
        return 0
    precompiled = None
    if a.prune:
        # Prune one-shot (RTMobile's pattern by default) and time the block-sparse build
        # against the same pruned model compiled dense ("wispy-dense").
        from wispy.compress import prune_block_sparse
        from wispy.compiler.api import compile_model

        prune_block_sparse(model, rate=a.prune, block=a.prune_block, prune=a.prune_mode,
                           layers=a.prune_layers.split(",") if "," in a.prune_layers else a.prune_layers)
        print(f"bench: pruned {a.prune_layers} matrices {a.prune:g}x ({a.prune_block}, {a.prune_mode})", flush=True)
        precompiled = {"wispy-dense": compile_model(model, args, target=a.target, cpu_features=a.cpu_features,
                                                    block_sparse=False, progress=False)}
    run_benchmark(model, args, target=a.target, cpu_features=a.cpu_features, repeat=a.repeat,
                  peers=a.peers.split(",") if a.peers else None, name=a.model, json_out=a.json,
                  precompiled=precompiled, blocks=a.blocks, warm=a.warm)
    return 0


def cmd_opt(a) -> int:
    from wispy._mlir import ir, new_context
    from wispy.passes.base import PassContext
    from wispy.passes.pipeline import PassPipeline
    from wispy.ir.weights import WeightStore

    text = sys.stdin.read() if a.file in (None, "-") else Path(a.file).read_text()
    ctx = new_context()
    try:
        module = ir.Module.parse(text, ctx)
    except ir.MLIRError as e:
        print(f"error: cannot parse {a.file or '<stdin>'}: {e}", file=sys.stderr)
        return 1
    weights = WeightStore.load_npz(a.weights) if a.weights else None
    pctx = PassContext(weights=weights, explain=a.explain)
    PassPipeline(a.pipeline).run(module, pctx, print_ir_after_all=a.print_ir_after_all)
    for r in pctx.remarks:
        print("remark:", r, file=sys.stderr)
    print(module.operation.get_asm(enable_debug_info=a.mlir_print_debuginfo))
    return 0


def cmd_passes(a) -> int:
    from wispy.passes.registry import get_all_passes

    for name, cls in get_all_passes().items():
        opts = " ".join(f"{o}" for o in cls.option_names())
        print(f"{name}" + (f"  {{{opts}}}" if opts else ""))
        if a.verbose:
            print("    " + (cls.__doc__ or "").strip().replace("\n", "\n    ") + "\n")
        else:
            print("    " + (cls.__doc__ or "").strip().splitlines()[0])
    return 0


def cmd_demo(a) -> int:
    from wispy.cli.demo import run_demo

    return run_demo(a.out, repeat=a.repeat)


def cmd_corpus(a) -> int:
    from wispy.data import generate_corpus

    out = generate_corpus(a.out_dir, n_train=a.train, n_valid=a.valid, n_test=a.test, seed=a.seed,
                          snr_db=a.snr_db, noise=a.noise, workers=a.workers, progress=not a.quiet)
    print(f"corpus in {out} ({a.train}/{a.valid}/{a.test} utterances, seed {a.seed}"
          f"{'' if a.snr_db is None else f', {a.noise} noise at {a.snr_db:g} dB SNR'})")
    return 0


def _new_model(name: str, corpus, *, n_mels: int = 40, units: str = "phones", seed: int = 0):
    """A fresh model of the training zoo (`wispy.models.registry.MODELS`) sized for the corpus."""
    import torch

    from wispy.models.registry import MODELS
    from wispy.data.vocab import vocabulary

    cls, kw = MODELS[name]
    torch.manual_seed(seed)
    return cls(**{**kw, "n_feats": n_mels, "n_classes": len(vocabulary(corpus, units))})


def cmd_train(a) -> int:
    import torch

    from wispy.models.registry import MODELS
    from wispy.training.ctc import train_ctc

    if a.threads:
        torch.set_num_threads(a.threads)
    if a.model not in MODELS:
        print(f"wispy train: error: unknown model {a.model!r}: {', '.join(MODELS)}", file=sys.stderr)
        return 2
    model = _new_model(a.model, a.corpus, n_mels=a.n_mels, units=a.units, seed=a.seed)
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


def _count(text: str) -> int:
    if not text.isdigit():
        raise ValueError(text)
    return int(text)


def _name_values(items, command: str, flag: str, form: str, convert=str):
    """{NAME: VALUE} from repeated `flag NAME=VALUE` options, or None after printing what
    is wrong (the caller exits with 2)."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[name] = convert(value)
        except ValueError:
            print(f"wispy {command}: error: {flag} wants {form}, not {item!r}", file=sys.stderr)
            return None
    return out


def cmd_accuracy(a) -> int:
    import shlex

    from wispy.experiments.accuracy import run_accuracy

    reuse = _name_values(a.reuse, "accuracy", "--reuse", "NAME=DIR")
    epochs = _name_values(a.epochs, "accuracy", "--epochs", "NAME=N", _count)
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
    _seed_arg(p)
    p.add_argument("-q", "--quiet", action="store_true")


def _seed_arg(p):
    p.add_argument("--seed", type=int, default=0,
                   help="order of the training batches (default 0); another seed trains another sample of "
                        "the same recipe, to see how much of a PER difference is chance")


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
    model = _new_model(name, a.corpus)
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
    checkpoints = _name_values(a.checkpoint, "quant-table", "--checkpoint", "NAME=PATH")
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wispy", description="Compile PyTorch speech models with IREE for "
                                "host, arm64, armv7 and Vulkan.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("compile", help="compile a model to a .vmfb")
    _add_model_args(c)
    _add_target_args(c)
    c.add_argument("-o", "--output", default="model.vmfb")
    c.add_argument("--external-weights", action="store_true", help="weights in a .irpa beside the .vmfb")
    c.add_argument("--dump-dir", default=None, help="write the IR after every phase there")
    c.add_argument("--explain", action="store_true", help="say why passes declined")
    c.add_argument("--no-block-sparse", action="store_true",
                   help="keep block-structured sparse weights dense (no wispy-block-sparse)")
    c.add_argument("--recurrent-kernel", default="auto", choices=["auto", "on", "off"],
                   help="CPU targets: GRU and LSTM layers with a block-sparse or small dense recurrent "
                        "matrix run their whole recurrence in one hand-written dispatch (auto); on: "
                        "every such layer; off: never")
    c.add_argument("--recurrent-workers", type=_workers, default="auto",
                   help="that kernel's workgroups (cores) per sequence, each step's parts claimed by "
                        "whichever is free: a count, or auto (default: on a host with two cores or "
                        "more, two, or more for a recurrent matrix larger than a core's L2)")
    c.add_argument("--winograd", default="auto", choices=["auto", "off", "f23", "f43", "measure"],
                   help="int8 Conv1d layers of a quantized model: as quantized (auto), all direct (off), "
                        "Winograd F(2,3)/F(4,3) where legal, or the cheapest per layer measured on the target")
    c.add_argument("--int8-kernel", default="auto", choices=["auto", "off"],
                   help="int8 products of a quantized model on hosts with AVX-512 VNNI: wispy's own "
                        "vpdpbusd kernel (auto) or IREE's int8 matmul (off)")
    c.add_argument("--host-driver", default="local-task", choices=["local-task", "local-sync", "auto"],
                   help="host modules: the IREE driver to run with; auto times both on the example "
                        "input and prints the faster in the iree-run-module command")
    c.add_argument("-q", "--quiet", action="store_true")
    c.set_defaults(fn=cmd_compile)

    r = sub.add_parser("run", help="run a .vmfb on .npy inputs (host, arm64 under qemu, or vulkan)")
    r.add_argument("module")
    r.add_argument("--input", action="append", default=[], required=True, help="input .npy (repeat)")
    r.add_argument("--output", action="append", default=[], help="write output i to this .npy (repeat)")
    r.add_argument("--device", default="host", choices=["host", "local-sync", "arm64", "vulkan"],
                   help="host (IREE's local-task: a worker per core), local-sync (the calling thread), "
                        "arm64 (qemu here) or vulkan")
    r.add_argument("--function", default="main")
    r.add_argument("--parameters", default=None, help=".irpa of a module compiled with external weights")
    r.set_defaults(fn=cmd_run)

    b = sub.add_parser("bench", help="time wispy against IREE defaults, PyTorch and ONNX Runtime")
    _add_model_args(b)
    _add_target_args(b)
    b.add_argument("--repeat", type=int, default=20)
    b.add_argument("--blocks", action="store_true",
                   help="time each runtime's calls together, not interleaved round-robin")
    b.add_argument("--warm", action="store_true",
                   help="time each call right after an untimed call of the same runtime (a stream of "
                        "calls), not after 0.1 s idle alone (one call now and then)")
    b.add_argument("--peers", default=None, help="comma list among wispy,iree,torch,onnxruntime")
    b.add_argument("--json", default=None, help="also write the results as JSON there")
    b.add_argument("--stream-chunk", type=int, default=0, metavar="FRAMES",
                   help="stream the input through a compiled step function FRAMES at a time and "
                        "report latency per chunk and the real-time factor")
    b.add_argument("--prune", type=float, default=0.0, metavar="RATE",
                   help="prune the model block-sparse RATE x first (one-shot by magnitude) and also time "
                        "it compiled dense (wispy-dense)")
    b.add_argument("--prune-block", default="cols:4", help="block shape: cols:N, rows:N, tiles:RxC (default cols:4)")
    b.add_argument("--prune-mode", default="rows", choices=("rows", "cols", "both"),
                   help="what is removed inside each block (default rows)")
    b.add_argument("--prune-layers", default="rnn", help="all, rnn, linear, conv or parameter names (default rnn)")
    b.set_defaults(fn=cmd_bench)

    o = sub.add_parser("opt", help="run a textual pass pipeline on MLIR and print it (like mlir-opt)")
    o.add_argument("file", nargs="?", help="input .mlir (default stdin)")
    o.add_argument("-p", "--pipeline", required=True,
                   help="e.g. 'builtin.module(wispy-conv1d-im2col, canonicalize)'")
    o.add_argument("--weights", default=None, help=".npz of named parameters the IR refers to")
    o.add_argument("--explain", action="store_true")
    o.add_argument("--print-ir-after-all", action="store_true")
    o.add_argument("--mlir-print-debuginfo", action="store_true")
    o.set_defaults(fn=cmd_opt)

    d = sub.add_parser("demo", help="compile the shipped speech model for host, arm64 and vulkan, "
                                    "run the shipped utterance and time it")
    d.add_argument("--out", default="out/demo")
    d.add_argument("--repeat", type=int, default=20)
    d.set_defaults(fn=cmd_demo)

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

    ac = sub.add_parser("accuracy", help="train the small models and write the dense accuracy table "
                                         "(clean and noisy held-out voices) to docs/accuracy.{md,json}")
    ac.add_argument("--out", default="out/accuracy", help="runs and noisy test sets (default out/accuracy)")
    ac.add_argument("--corpus", default="out/corpus", help="the clean corpus, made if missing (default out/corpus)")
    ac.add_argument("--minutes", type=float, default=60.0,
                    help="wall-clock cap on each model's training (default 60; the budget is its epochs)")
    ac.add_argument("--models", default=None, help="comma list of rows (default all: gru-small, lstm-small, "
                                                   "wav2letter-small, convdfsmn-small, wav2letter-small-letters)")
    ac.add_argument("--reuse", action="append", default=[], metavar="NAME=DIR",
                    help="start NAME's run from an existing run directory, e.g. gru-small=out/gru_small")
    ac.add_argument("--no-compiled", action="store_true", help="skip the compiled-module check")
    ac.add_argument("--docs", default="docs", help="where accuracy.md/json go (default docs)")
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

    pr = sub.add_parser("prune", help="block-sparse pruning of a checkpoint (RTMobile's BSP: ADMM, fine-tuning)")
    pr.add_argument("checkpoint", help="a trained checkpoint (wispy train's best.pt)")
    pr.add_argument("--out", required=True, help="output directory (final.pt, checkpoints, matrices/*.png)")
    pr.add_argument("--rate", type=float, required=True, help="compression rate of each pruned matrix")
    _prune_common_args(pr)
    pr.set_defaults(fn=cmd_prune)

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
    _seed_arg(ft)
    ft.add_argument("-q", "--quiet", action="store_true")
    ft.set_defaults(fn=cmd_finetune)

    sw = sub.add_parser("prune-sweep", help="PER against block-sparse compression (and speed) for a GRU: "
                                            "table, JSON and Pareto plot")
    sw.add_argument("--out", default="out/prune", help="work directory (one subdirectory per rate; resumable)")
    sw.add_argument("--checkpoint", default=None, help="dense starting point (default: the shipped gru-small)")
    sw.add_argument("--train-dense", default=None, metavar="MODEL:EPOCHS",
                    help="train the dense starting point first (e.g. gru-medium:70), in OUT/dense, resumable")
    sw.add_argument("--rates", default="4,10,20,50,100,245")
    sw.add_argument("--docs", default="docs/prune_sweep", help="write DOCS.md/.json/.png ('' for none)")
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
    qt.add_argument("--docs", default="docs")
    qt.add_argument("--threads", type=int, default=0)
    qt.add_argument("-q", "--quiet", action="store_true")
    qt.set_defaults(fn=cmd_quant_table)

    ps = sub.add_parser("passes", help="list wispy's passes and their options")
    ps.add_argument("-v", "--verbose", action="store_true")
    ps.set_defaults(fn=cmd_passes)
    return p


def main(argv=None) -> int:
    import warnings

    from wispy.errors import WispyError

    # torch.export's internals warn about their own deprecations; not the user's concern.
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category, module=r"(torch|copyreg|onnx)")

    parser = build_parser()
    a = parser.parse_args(argv)
    a.argv = list(sys.argv[1:] if argv is None else argv)
    if not getattr(a, "fn", None):
        parser.print_help()
        return 2
    if a.command in ("bench", "demo"):
        from wispy._timing import passive_openmp_waits

        passive_openmp_waits()  # these time PyTorch beside IREE and ONNX Runtime in one process
    try:
        return a.fn(a)
    except WispyError as e:
        print(f"wispy {a.command}: error: {e}", file=sys.stderr)
        return 1
    except FileNotFoundError as e:
        print(f"wispy {a.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""The `wispy` command line: compile, run, bench, opt, passes, train, eval."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def _add_target_args(p):
    p.add_argument("--target", default="host", help="host, arm64, armv7 or vulkan (default host)")
    p.add_argument("--cpu-features", default="", help="CPU features, e.g. +dotprod,+i8mm on arm64")
    p.add_argument("--vulkan-target", default=None, help="vulkan: valhall (default), adreno, ...")


def _add_model_args(p):
    p.add_argument("model", help="PATH.py:FACTORY, a saved torch.export program PATH.pt2, or zoo:NAME "
                                 "(zoo: gru, lstm, wav2letter, wav2letter-small)")
    p.add_argument("--input", action="append", default=[], help="example input .npy (repeat per input)")
    p.add_argument("--input-shape", action="append", default=[],
                   help="example input shape instead of a file, e.g. 1x100x153[:float32]")


def cmd_compile(a) -> int:
    from .api import compile_model
    from .loading import example_args, load_model

    model, default_args = load_model(a.model)
    args = example_args(a.input, a.input_shape, default_args)
    cm = compile_model(model, args, target=a.target, cpu_features=a.cpu_features,
                       vulkan_target=a.vulkan_target, external_weights=a.external_weights,
                       dump_dir=a.dump_dir, explain=a.explain, progress=not a.quiet)
    out = cm.save(a.output)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, target {cm.target})")
    if a.external_weights:
        print(f"wrote {out.with_suffix('.irpa')} (weights; run with --parameters=model={out.with_suffix('.irpa')})")
    for r in cm.remarks:
        print("remark:", r)
    # A bare @file: with a shape prefix iree-run-module reads the .npy header as data.
    shapes = " ".join(f"--input=@in{i}.npy" for i in range(len(cm.input_specs)))
    print(f"run it: iree-run-module --module={out} --function=main {shapes}")
    return 0


def cmd_run(a) -> int:
    from ..runtime import run_vmfb

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
    from ..bench import run_benchmark
    from .loading import example_args, load_model

    model, default_args = load_model(a.model)
    args = example_args(a.input, a.input_shape, default_args)
    if a.stream_chunk:
        from ..bench import run_streaming_benchmark

        run_streaming_benchmark(model, args[0], chunk=a.stream_chunk, target=a.target, repeat=a.repeat,
                                name=a.model)
        return 0
    run_benchmark(model, args, target=a.target, cpu_features=a.cpu_features, repeat=a.repeat,
                  peers=a.peers.split(",") if a.peers else None, name=a.model, json_out=a.json)
    return 0


def cmd_opt(a) -> int:
    from .._mlir import ir, new_context
    from ..passes.base import PassContext
    from ..passes.pipeline import PassPipeline
    from .weights import WeightStore

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
    from ..passes.registry import get_all_passes

    for name, cls in get_all_passes().items():
        opts = " ".join(f"{o}" for o in cls.option_names())
        print(f"{name}" + (f"  {{{opts}}}" if opts else ""))
        if a.verbose:
            print("    " + (cls.__doc__ or "").strip().replace("\n", "\n    ") + "\n")
        else:
            print("    " + (cls.__doc__ or "").strip().splitlines()[0])
    return 0


def cmd_demo(a) -> int:
    from ..demo import run_demo

    return run_demo(a.out, repeat=a.repeat)


def cmd_corpus(a) -> int:
    from ..data import generate_corpus

    out = generate_corpus(a.out_dir, n_train=a.train, n_valid=a.valid, n_test=a.test, seed=a.seed,
                          snr_db=a.snr_db, noise=a.noise, workers=a.workers, progress=not a.quiet)
    print(f"corpus in {out} ({a.train}/{a.valid}/{a.test} utterances, seed {a.seed}"
          f"{'' if a.snr_db is None else f', {a.noise} noise at {a.snr_db:g} dB SNR'})")
    return 0


def cmd_train(a) -> int:
    import torch

    from ..data.corpus import read_phones
    from ..train import MODELS, train_ctc

    if a.threads:
        torch.set_num_threads(a.threads)
    if a.model not in MODELS:
        print(f"wispy train: error: unknown model {a.model!r}: {', '.join(MODELS)}", file=sys.stderr)
        return 2
    cls, kw = MODELS[a.model]
    torch.manual_seed(a.seed)
    model = cls(**{**kw, "n_feats": a.n_mels, "n_classes": len(read_phones(a.corpus))})
    info = train_ctc(model, a.corpus, feature=a.feature, n_mels=a.n_mels, epochs=a.epochs,
                     batch_size=a.batch_size, lr=a.lr, out_dir=a.out, resume=not a.no_resume, seed=a.seed,
                     max_minutes=a.max_minutes, progress=not a.quiet, name=a.model)
    print(f"{a.model}: {info['parameters']:,} parameters, epoch {info['epoch']}, best valid PER "
          f"{info['best_valid_per']:.4f} (epoch {info['best_epoch']}), {info['train_seconds']:.0f} s; "
          f"checkpoints in {a.out}")
    return 0


def cmd_eval(a) -> int:
    import json

    import torch

    from ..train import evaluate, load_checkpoint

    if a.threads:
        torch.set_num_threads(a.threads)
    model = load_checkpoint(a.checkpoint)
    r = evaluate(model, a.corpus, a.split, target=a.target, compiled=a.compiled, limit=a.limit,
                 progress=not a.quiet)
    print(f"{a.split}: {r['utterances']} utterances, PyTorch PER {r['per']:.4f}, RTF {r['rtf']:.4f}")
    if "compiled" in r:
        c = r["compiled"]
        print(f"compiled ({c['target']}): PER {c['per']:.4f}, RTF {c['rtf']:.4f} (compile {c['compile_seconds']:.1f} s); "
              f"{r['differ']} utterance(s) decode differently from PyTorch "
              f"({r['differ_near_ties']} at near-ties), max |log-prob diff| {r['max_abs_diff']:.2e}")
    if a.json:
        out = {k: v for k, v in r.items() if k != "hyps"}
        if "compiled" in out:
            out["compiled"] = {k: v for k, v in out["compiled"].items() if k != "hyps"}
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n")
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
    c.add_argument("-q", "--quiet", action="store_true")
    c.set_defaults(fn=cmd_compile)

    r = sub.add_parser("run", help="run a .vmfb on .npy inputs (host, arm64 under qemu, or vulkan)")
    r.add_argument("module")
    r.add_argument("--input", action="append", default=[], required=True, help="input .npy (repeat)")
    r.add_argument("--output", action="append", default=[], help="write output i to this .npy (repeat)")
    r.add_argument("--device", default="host", choices=["host", "arm64", "vulkan"])
    r.add_argument("--function", default="main")
    r.add_argument("--parameters", default=None, help=".irpa of a module compiled with external weights")
    r.set_defaults(fn=cmd_run)

    b = sub.add_parser("bench", help="time wispy against IREE defaults, PyTorch and ONNX Runtime")
    _add_model_args(b)
    _add_target_args(b)
    b.add_argument("--repeat", type=int, default=20)
    b.add_argument("--peers", default=None, help="comma list among wispy,iree,torch,onnxruntime")
    b.add_argument("--json", default=None, help="also write the results as JSON there")
    b.add_argument("--stream-chunk", type=int, default=0, metavar="FRAMES",
                   help="stream the input through a compiled step function FRAMES at a time and "
                        "report latency per chunk and the real-time factor")
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
    tr.add_argument("model", help="gru-small, lstm-small or wav2letter-small")
    tr.add_argument("--corpus", required=True)
    tr.add_argument("--out", required=True, help="checkpoint directory (last.pt, best.pt, history.json)")
    tr.add_argument("--epochs", type=int, required=True, help="total epochs (a resumed run continues to it)")
    tr.add_argument("--batch-size", type=int, default=16)
    tr.add_argument("--lr", type=float, default=1e-3)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--feature", default="logmel", choices=["logmel", "mfcc"])
    tr.add_argument("--n-mels", type=int, default=40)
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

    ps = sub.add_parser("passes", help="list wispy's passes and their options")
    ps.add_argument("-v", "--verbose", action="store_true")
    ps.set_defaults(fn=cmd_passes)
    return p


def main(argv=None) -> int:
    import warnings

    from .errors import WispyError

    # torch.export's internals warn about their own deprecations; not the user's concern.
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category, module=r"(torch|copyreg|onnx)")

    parser = build_parser()
    a = parser.parse_args(argv)
    if not getattr(a, "fn", None):
        parser.print_help()
        return 2
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

"""The `wispy` commands compile, run, bench, opt, passes, demo: models in, modules out."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from wispy.cli.common import add_model_args, add_target_args, workers


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


def load_arrays(paths) -> list:
    """The .npy files given with --input, or a WispyError naming the one that cannot be read."""
    from wispy.errors import ModelLoadError

    out = []
    for p in paths:
        try:
            with open(p, "rb") as f:
                if f.read(6) != b"\x93NUMPY":
                    raise ModelLoadError(f"input {p} is not a .npy file (save arrays with numpy.save)")
            out.append(np.load(p, allow_pickle=False))
        except FileNotFoundError:
            raise ModelLoadError(f"input file not found: {p}") from None
        except (OSError, ValueError, EOFError) as e:
            raise ModelLoadError(f"cannot read input {p} as a .npy array: {e}") from e
    return out


def cmd_run(a) -> int:
    from wispy.runtime import run_vmfb

    inputs = load_arrays(a.input)
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
    from wispy.bench.harness import run_benchmark
    from wispy.models.loading import example_args, load_model

    model, default_args = load_model(a.model)
    args = example_args(a.input, a.input_shape, default_args)
    if a.stream_chunk:
        from wispy.bench.harness import run_streaming_benchmark

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

    try:
        text = sys.stdin.read() if a.file in (None, "-") else Path(a.file).read_text()
    except UnicodeDecodeError:
        print(f"wispy opt: error: {a.file} is not MLIR text (a binary file? MLIR bytecode: "
              "turn it to text with iree-ir-tool or mlir-opt first)", file=sys.stderr)
        return 1
    ctx = new_context()
    try:
        module = ir.Module.parse(text, ctx)
    except ir.MLIRError as e:
        print(f"wispy opt: error: cannot parse {a.file or '<stdin>'}: {e}", file=sys.stderr)
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


def add_compile(sub) -> None:
    c = sub.add_parser("compile", help="compile a model to a .vmfb")
    add_model_args(c)
    add_target_args(c)
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
    c.add_argument("--recurrent-workers", type=workers, default="auto",
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


def add_run(sub) -> None:
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


def add_bench(sub) -> None:
    b = sub.add_parser("bench", help="time wispy against IREE defaults, PyTorch and ONNX Runtime")
    add_model_args(b)
    add_target_args(b)
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


def add_opt(sub) -> None:
    o = sub.add_parser("opt", help="run a textual pass pipeline on MLIR and print it (like mlir-opt)")
    o.add_argument("file", nargs="?", help="input .mlir (default stdin)")
    o.add_argument("-p", "--pipeline", required=True,
                   help="e.g. 'builtin.module(wispy-conv1d-im2col, canonicalize)'")
    o.add_argument("--weights", default=None, help=".npz of named parameters the IR refers to")
    o.add_argument("--explain", action="store_true")
    o.add_argument("--print-ir-after-all", action="store_true")
    o.add_argument("--mlir-print-debuginfo", action="store_true")
    o.set_defaults(fn=cmd_opt)


def add_passes(sub) -> None:
    ps = sub.add_parser("passes", help="list wispy's passes and their options")
    ps.add_argument("-v", "--verbose", action="store_true")
    ps.set_defaults(fn=cmd_passes)


def add_demo(sub) -> None:
    d = sub.add_parser("demo", help="compile the shipped speech model for host, arm64 and vulkan, "
                                    "run the shipped utterance and time it")
    d.add_argument("--out", default="out/demo")
    d.add_argument("--repeat", type=int, default=20)
    d.set_defaults(fn=cmd_demo)


def register(sub) -> None:
    add_compile(sub)
    add_run(sub)
    add_bench(sub)
    add_opt(sub)
    add_passes(sub)
    add_demo(sub)

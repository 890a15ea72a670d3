"""One zoo model compiled two ways, each run back to back by `iree-benchmark-module`
(host, local-task) or counted under qemu (arm64): what one pass or option is worth, apart
from the side-by-side benchmarks' idle gaps between calls.

    .venv/bin/python benchmarks/back_to_back.py --model lstm --without wispy-recurrent-matvec
    .venv/bin/python benchmarks/back_to_back.py --model gru --prune 10 --without wispy-block-sparse
    .venv/bin/python benchmarks/back_to_back.py --model gru --prune 10 --target arm64 \\
        --option "wispy-block-sparse{split-combine=true}"
    .venv/bin/python benchmarks/back_to_back.py --model gru --prune 10 \\
        --iree-flag=--iree-llvmcpu-distribution-size=64    # IREE's own tiles (wispy's host: 1024)
    .venv/bin/python benchmarks/back_to_back.py --model gru --prune 10 --device local-sync \\
        --option "wispy-recurrent-kernel{snake=false}"     # a torch-phase pass works the same
    .venv/bin/python benchmarks/back_to_back.py --model demo --target arm64 --recurrent-kernel off
    .venv/bin/python benchmarks/back_to_back.py --model gru --prune 245 \\
        --option "wispy-recurrent-kernel{chains=1}" --dispatches wispy_gru_sequence

The second build leaves a pass out (--without), gives it options (--option), adds an
IREE flag after wispy's own (--iree-flag; the last occurrence wins) or takes another
recurrent_kernel mode (--recurrent-kernel); the first is the default.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

import wispy
from wispy.compiler.pipeline import DEFAULT_TORCH_PIPELINE, DEFAULT_WISPY_PIPELINE
from wispy.passes.pipeline import PassPipeline
from wispy.models import ZOO, example_input
from wispy.runtime.host import iree_tool


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gru", help="a zoo name")
    ap.add_argument("--prune", type=float, default=None, help="prune RTMobile's way RATE x first")
    ap.add_argument("--target", default="host", choices=["host", "arm64"])
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--without", help="a wispy pass the second build leaves out")
    group.add_argument("--option", help="PASS{OPTIONS}: the second build's form of that pass")
    group.add_argument("--iree-flag", help="an iree-compile flag for the second build only")
    group.add_argument("--recurrent-kernel", choices=["auto", "on", "off"],
                       help="compile_model(recurrent_kernel=...) for the second build (the default: auto)")
    ap.add_argument("--repeat", type=int, default=5, help="medians of this many runs of 20 calls")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (min-max of their medians)")
    ap.add_argument("--keep", help="also save both modules and the input here (for iree-profile)")
    ap.add_argument("--dispatches", metavar="REGEX",
                    help="also the time of the dispatches whose names match (IREE's profiler, one "
                         "profiled run of 100 calls per round): steadier than the wall time on this "
                         "shared machine, e.g. wispy_gru_sequence for the recurrent kernels")
    ap.add_argument("--device", default="local-task", choices=["local-task", "local-sync"],
                    help="the IREE driver both builds run on (host)")
    a = ap.parse_args()
    model, x = ZOO[a.model][0]().eval(), example_input(a.model)
    if a.prune:
        from wispy.compress import prune_block_sparse

        prune_block_sparse(model, rate=a.prune, block="cols:4", prune="rows", layers="rnn", uniform=True)
    flags = {"default": []}
    # (torch-phase pipeline, wispy-phase pipeline) of the second build
    name = (a.without or (a.option or "").split("{")[0])
    phase = 0 if name and name in DEFAULT_TORCH_PIPELINE else 1
    pipes = [DEFAULT_TORCH_PIPELINE, DEFAULT_WISPY_PIPELINE]
    if a.without:
        pipes[phase], label = str(PassPipeline(pipes[phase]).without(a.without)), f"without {a.without}"
    elif a.iree_flag:
        label = a.iree_flag
        flags[label] = [a.iree_flag]
    elif a.recurrent_kernel:
        label = f"recurrent_kernel={a.recurrent_kernel}"
    else:
        pipes[phase], label = pipes[phase].replace(name, a.option, 1), a.option
    other = tuple(pipes)
    with tempfile.TemporaryDirectory(prefix="wispy-b2b-") as tmp:
        np.save(Path(tmp) / "x.npy", x.numpy())
        vmfbs = {}
        for what, (torch_pipe, pipe) in (("default", (DEFAULT_TORCH_PIPELINE, DEFAULT_WISPY_PIPELINE)),
                                         (label, other)):
            kernel = a.recurrent_kernel if what != "default" and a.recurrent_kernel else "auto"
            cm = wispy.compile_model(model, (x,), target=a.target, torch_pipeline=torch_pipe, wispy_pipeline=pipe,
                                     progress=False, iree_flags=flags.get(what, []), recurrent_kernel=kernel)
            vmfbs[what] = vmfb = cm.save(Path(tmp) / ("default.vmfb" if what == "default" else "other.vmfb"))
            if a.keep:
                Path(a.keep).mkdir(parents=True, exist_ok=True)
                cm.save(Path(a.keep) / vmfb.name)
                np.save(Path(a.keep) / "x.npy", x.numpy())
            if a.target == "arm64":
                from wispy.runtime.arm64 import count_instructions_arm64

                print(f"{what:40s} {count_instructions_arm64(vmfb, [x.numpy()], iterations=1, warmup=1):>15,} "
                      "arm64 instructions per inference", flush=True)
        if a.target == "arm64":
            return 0
        # The two builds take turns, round after round, so a slow spell of this shared
        # machine falls on both; each round gives one median per build.
        medians = {what: [] for what in vmfbs}
        picked = {what: [] for what in vmfbs}
        for _ in range(a.rounds):
            for what, vmfb in vmfbs.items():
                if a.dispatches:
                    from gru_time_breakdown import profile

                    r = profile(vmfb, Path(tmp) / "x.npy", 100, Path(tmp), a.device,
                                group=lambda n: "picked" if re.search(a.dispatches, n) else "other")
                    picked[what].append(r["groups_ms"].get("picked", 0.0))
                out = subprocess.run([iree_tool("iree-benchmark-module"), f"--device={a.device}", f"--module={vmfb}",
                                      "--function=main", f"--input=@{Path(tmp) / 'x.npy'}",
                                      f"--benchmark_repetitions={a.repeat}", "--benchmark_min_time=20x"],
                                     capture_output=True, text=True, check=True).stdout
                # one repetition prints no median row: its one time is the median
                median = re.search(r"_median\s+([\d.]+) ms", out) or re.search(r"real_time\s+([\d.]+) ms", out)
                if median:
                    medians[what].append(float(median.group(1)))
        for what, ms in medians.items():
            shown = f"{min(ms):.2f}" if len(ms) == 1 else f"{min(ms):.2f}-{max(ms):.2f}"
            print(f"{what:40s} {shown:>11s} ms median, back to back"
                  + (f" (min-max of {len(ms)} alternating rounds)" if len(ms) > 1 else ""), flush=True)
        for what, ms in picked.items():
            if ms:
                print(f"{what:40s} {min(ms):.3f}-{max(ms):.3f} ms in dispatches matching {a.dispatches!r} "
                      "per call (IREE's profiler)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

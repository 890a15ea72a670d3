"""The pruned GRU 2x1024 (or another GRU or LSTM) with its recurrence kernel on one worker
and on several (the units cut into parts that each step's workers claim), on both IREE
CPU drivers: per-call times, interleaved, with and without idle time before each call.

    .venv/bin/python benchmarks/recurrent_workers.py [--prune 10] [--workers 1,2] [--rounds 10] [--idle-ms 10,100]
    .venv/bin/python benchmarks/recurrent_workers.py --cell lstm --hidden 512 --prune 0 \
        --steal-spins 64,1024 --drivers local-task     # dense LSTM 2x512, two steal waits
    .venv/bin/python benchmarks/recurrent_workers.py --prune 0 --workers 2 --loop --drivers local-task
        # the dense GRU 2x1024 in the kernel against IREE's loop

Prints, per build and driver, the median and quartiles of all calls: back to back (no
idle, IREE's workers stay awake) and after `--idle-ms` of idle (as an application calling
once per utterance sees it). The spread matters as much as the median: a second worker
that wakes late, or a core the OS lends elsewhere, holds the dispatch until it is back.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import wispy
from wispy.compiler.pipeline import DEFAULT_TORCH_PIPELINE
from wispy.compress import prune_block_sparse
from wispy.models.acoustic import GRUAcousticModel, LSTMAcousticModel
from wispy.runtime.host import LoadedModule


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prune", type=float, default=10.0, help="compression rate; 0: dense")
    ap.add_argument("--cell", choices=("gru", "lstm"), default="gru")
    ap.add_argument("--hidden", type=int, default=None, help="units a layer (default: the zoo model's)")
    ap.add_argument("--workers", default="1,2", help="worker counts to build")
    ap.add_argument("--steal-spins", default="", help="builds of several workers per value (the pass's "
                                                      "steal-spins); default: its own")
    ap.add_argument("--drivers", default="local-sync,local-task")
    ap.add_argument("--loop", action="store_true",
                    help="also time the recurrence as IREE's loop (recurrent_kernel='off')")
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=10, help="alternating rounds")
    ap.add_argument("--calls", type=int, default=12, help="calls per build and round")
    ap.add_argument("--idle-ms", default="10", help="idle before each call, ms; a list: 10,100")
    a = ap.parse_args()
    torch.manual_seed(0)
    cls = LSTMAcousticModel if a.cell == "lstm" else GRUAcousticModel
    model = (cls(hidden=a.hidden) if a.hidden else cls()).eval()
    if a.prune:
        prune_block_sparse(model, rate=a.prune, block="cols:4", prune="rows", layers="rnn", uniform=True)
    n_in = model.rnn.input_size
    x = torch.randn(1, a.frames, n_in, generator=torch.Generator().manual_seed(1))
    want = model(x).detach().numpy()
    what = f"{a.cell.upper()} {model.rnn.num_layers}x{model.rnn.hidden_size} " + \
        (f"pruned {a.prune:g}x" if a.prune else "dense")
    runners = {}
    builds = []
    for w in [int(v) for v in a.workers.split(",")]:
        spins = [int(v) for v in a.steal_spins.split(",")] if a.steal_spins and w > 1 else [None]
        builds += [(w, sp) for sp in spins]
    if a.loop:
        builds.append(("loop", None))
    for w, sp in builds:
        if w == "loop":
            opts = "loop"
            cm = wispy.compile_model(model, (x,), progress=False, recurrent_kernel="off")
        else:
            opts = f"workers={w}" + (f" steal-spins={sp}" if sp is not None else "")
            pipe = DEFAULT_TORCH_PIPELINE.replace("wispy-recurrent-kernel", f"wispy-recurrent-kernel{{{opts}}}", 1)
            cm = wispy.compile_model(model, (x,), progress=False, torch_pipeline=pipe, recurrent_kernel="on")
        for driver in a.drivers.split(","):
            mod = LoadedModule(cm.vmfb, driver=driver, parameters=cm.parameters_path)
            err = float(np.abs(mod(x.numpy())[0] - want).max())
            runners[f"{opts} {driver}"] = mod
            print(f"{opts} on {driver}: max |err| against PyTorch {err:.1e}", flush=True)
    xn = x.numpy()
    for idle_ms in [0.0] + [float(v) for v in a.idle_ms.split(",")]:
        idle = idle_ms / 1e3
        times = {k: [] for k in runners}
        for r in range(a.rounds):
            names = list(runners)
            for k in names[r % len(names):] + names[:r % len(names)]:
                runners[k](xn)  # a call to settle this build's caches and threads
                for _ in range(a.calls):
                    if idle:
                        time.sleep(idle)
                    t = time.perf_counter()
                    runners[k](xn)
                    times[k].append((time.perf_counter() - t) * 1e3)
        label = "back to back" if not idle else f"after {idle_ms:g} ms idle"
        print(f"\n{what}, T={a.frames}, {label} ({a.rounds} rounds x {a.calls} calls):")
        width = max(24, *(len(k) for k in times))
        print(f"{'build':{width}s} {'median ms':>10s} {'p25':>7s} {'p75':>7s}")
        for k, v in times.items():
            v = np.asarray(v)
            print(f"{k:{width}s} {np.median(v):10.2f} {np.percentile(v, 25):7.2f} {np.percentile(v, 75):7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The pruned GRU 2x1024 with its recurrence kernel on one worker and on several (the
units cut into parts that each step's workers claim), on both IREE CPU drivers: per-call
times, interleaved, with and without idle time before each call.

    .venv/bin/python benchmarks/recurrent_workers.py [--prune 10] [--workers 1,2] [--rounds 10] [--idle-ms 10,100]

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
from wispy.models.acoustic import GRUAcousticModel
from wispy.runtime.host import LoadedModule


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prune", type=float, default=10.0)
    ap.add_argument("--workers", default="1,2", help="worker counts to build")
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=10, help="alternating rounds")
    ap.add_argument("--calls", type=int, default=12, help="calls per build and round")
    ap.add_argument("--idle-ms", default="10", help="idle before each call, ms; a list: 10,100")
    a = ap.parse_args()
    torch.manual_seed(0)
    model = GRUAcousticModel().eval()
    prune_block_sparse(model, rate=a.prune, block="cols:4", prune="rows", layers="rnn", uniform=True)
    x = torch.randn(1, a.frames, 153, generator=torch.Generator().manual_seed(1))
    want = model(x).detach().numpy()
    runners = {}
    for w in [int(v) for v in a.workers.split(",")]:
        pipe = DEFAULT_TORCH_PIPELINE.replace("wispy-recurrent-kernel", f"wispy-recurrent-kernel{{workers={w}}}", 1)
        cm = wispy.compile_model(model, (x,), progress=False, torch_pipeline=pipe)
        for driver in ("local-sync", "local-task"):
            mod = LoadedModule(cm.vmfb, driver=driver, parameters=cm.parameters_path)
            err = float(np.abs(mod(x.numpy())[0] - want).max())
            runners[f"workers={w} {driver}"] = mod
            print(f"workers={w} on {driver}: max |err| against PyTorch {err:.1e}", flush=True)
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
        print(f"\nGRU 2x1024 pruned {a.prune:g}x, T={a.frames}, {label} ({a.rounds} rounds x {a.calls} calls):")
        print(f"{'build':24s} {'median ms':>10s} {'p25':>7s} {'p75':>7s}")
        for k, v in times.items():
            v = np.asarray(v)
            print(f"{k:24s} {np.median(v):10.2f} {np.percentile(v, 25):7.2f} {np.percentile(v, 75):7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

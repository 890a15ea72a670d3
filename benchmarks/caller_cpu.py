"""How much CPU the calling thread uses while IREE's local-task workers run a module: the
pruned GRU 2x1024 with its recurrence kernel on one and on two workers, wall time and the
caller's own CPU time (`time.thread_time()`) per call, back to back and after idle.

    .venv/bin/python benchmarks/caller_cpu.py [--prune 10] [--calls 100] [--save out/caller]

With `--save DIR` the two modules are also written there, and `--vmfb PATH` times a saved
one alone (no compiling in the process), for `perf` to see only the calls: where the
caller's CPU goes, and how long the workers wait to run:

    perf record -F 4000 -o caller.data -- .venv/bin/python benchmarks/caller_cpu.py --vmfb out/caller/workers2.vmfb
    perf report -i caller.data --sort pid,dso,sym --stdio
    perf sched record -o sched.data -- .venv/bin/python benchmarks/caller_cpu.py --vmfb out/caller/workers2.vmfb
    perf sched latency -i sched.data
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import wispy
from wispy.compress import prune_block_sparse
from wispy.models.acoustic import GRUAcousticModel


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prune", type=float, default=10.0)
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--idle-ms", type=float, default=10.0)
    ap.add_argument("--save", help="also write the modules here (workers1.vmfb, workers2.vmfb)")
    ap.add_argument("--vmfb", help="time this saved module instead of compiling")
    a = ap.parse_args()
    x = torch.randn(1, 100, 153, generator=torch.Generator().manual_seed(1)).numpy()
    if a.vmfb:
        from wispy.runtime.host import LoadedModule

        builds = {Path(a.vmfb).stem: LoadedModule(a.vmfb, driver="local-task")}
    else:
        torch.manual_seed(0)
        model = GRUAcousticModel().eval()
        prune_block_sparse(model, rate=a.prune, block="cols:4", prune="rows", layers="rnn", uniform=True)
        builds = {}
        for workers in (1, 2):
            cm = wispy.compile_model(model, (x,), progress=False, recurrent_workers=workers,
                                     host_driver="local-task")
            if a.save:
                cm.save(Path(a.save) / f"workers{workers}.vmfb")
            builds[f"{workers} worker(s)"] = cm
    for name, run in builds.items():
        for _ in range(5):
            run(x)
        for idle in (0.0, a.idle_ms / 1e3):
            wall = cpu = 0.0
            for _ in range(a.calls):
                if idle:
                    time.sleep(idle)
                t0, c0 = time.perf_counter(), time.thread_time()
                run(x)
                cpu += time.thread_time() - c0
                wall += time.perf_counter() - t0
            label = "back to back" if not idle else f"after {a.idle_ms:g} ms idle"
            print(f"GRU 2x1024 pruned, {name}, local-task, {label}: "
                  f"{wall / a.calls * 1e3:.2f} ms a call, the caller's thread on a CPU "
                  f"{cpu / a.calls * 1e3:.2f} ms of it", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

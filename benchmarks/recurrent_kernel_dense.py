"""Dense GRUs (or LSTMs) of several widths: the recurrence as IREE's loop (a few dispatches
a step) against wispy's one-dispatch kernel (one and two workers), back to back on the host.

    .venv/bin/python benchmarks/recurrent_kernel_dense.py [--hidden 128,256,384,512] [--frames 100]
    .venv/bin/python benchmarks/recurrent_kernel_dense.py --idle-ms 100   # each call after idle
    .venv/bin/python benchmarks/recurrent_kernel_dense.py --cell lstm     # 2-layer LSTMs
    .venv/bin/python benchmarks/recurrent_kernel_dense.py --idle-ms 100 --workers 2 --hidden 768,1024,1280

What `recurrent_kernel="auto"` is set from (wispy.dialects.recurrent.select,
DENSE_KERNEL_MAX_BYTES): a small recurrent matrix stays in a core's L2 from step to step,
and the loop's dispatches cost more than its steps; a large one streams from L3, where
IREE's matvec is the faster. Each build: `iree-benchmark-module --device=local-task`, 5
repetitions of 20 calls, three alternating rounds (min-max of their medians). With
`--idle-ms`, each build runs in this process instead (wispy's runtime, local-task), every
call after that much idle, the builds taking turns: the median of `--calls` calls per build
and round.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch

import wispy
from wispy.models.acoustic import GRUAcousticModel, LSTMAcousticModel
from wispy._timing import time_round_robin as _time_round_robin
from wispy.runtime.host import LoadedModule, iree_tool

BUILDS = {"loop": {"recurrent_kernel": "off"},
          "kernel": {"recurrent_kernel": "on", "recurrent_workers": 1},
          "kernel, 2 workers": {"recurrent_kernel": "on", "recurrent_workers": 2}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", default="128,256,384,512")
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--idle-ms", type=float, default=None, help="time each call after this much idle")
    ap.add_argument("--calls", type=int, default=15, help="with --idle-ms: calls per build and round")
    ap.add_argument("--cell", choices=("gru", "lstm"), default="gru")
    ap.add_argument("--workers", default="1,2",
                    help="kernel builds to time beside the loop, by worker count (2: the host's default); "
                         "with --idle-ms, a one-worker build in the rotation slowed the two-worker "
                         "build's calls at hidden 1024 (16.4 against 13.5 ms without it)")
    a = ap.parse_args()
    builds = {"loop": BUILDS["loop"]}
    for w in a.workers.split(","):
        builds.update({k: v for k, v in BUILDS.items() if v.get("recurrent_workers") == int(w)})
    how = f"each call after {a.idle_ms:g} ms idle" if a.idle_ms is not None else "back to back"
    print(f"{a.cell.upper()} 2 x hidden over {a.frames} frames (40 in), ms per inference {how} (local-task)")
    print(f"{'hidden':>6s} {'W_hh a layer':>12s}  " + "  ".join(f"{b:>18s}" for b in builds))
    for hidden in (int(h) for h in a.hidden.split(",")):
        torch.manual_seed(0)
        cls = LSTMAcousticModel if a.cell == "lstm" else GRUAcousticModel
        model = cls(n_feats=40, hidden=hidden, n_classes=46).eval()
        x = torch.randn(1, a.frames, 40)
        with tempfile.TemporaryDirectory(prefix="wispy-rkd-") as tmp:
            np.save(Path(tmp) / "x.npy", x.numpy())
            vmfbs = {name: wispy.compile_model(model, (x,), progress=False, **kw).save(Path(tmp) / f"{i}.vmfb")
                     for i, (name, kw) in enumerate(builds.items())}
            ms = {name: [] for name in vmfbs}
            if a.idle_ms is not None:
                mods = {name: LoadedModule(vmfb, driver="local-task") for name, vmfb in vmfbs.items()}
                xn = x.numpy()
                for _ in range(a.rounds):
                    times = _time_round_robin({n: (lambda m=m: m(xn)) for n, m in mods.items()}, a.calls,
                                              settle_s=a.idle_ms / 1e3)
                    for name, t in times.items():
                        ms[name].append(float(np.median(t)))
            else:
                for _ in range(a.rounds):
                    for name, vmfb in vmfbs.items():
                        out = subprocess.run([iree_tool("iree-benchmark-module"), "--device=local-task",
                                              f"--module={vmfb}", "--function=main",
                                              f"--input=@{Path(tmp) / 'x.npy'}", "--benchmark_repetitions=5",
                                              "--benchmark_min_time=20x"],
                                             capture_output=True, text=True, check=True).stdout
                        ms[name].append(float(re.search(r"_median\s+([\d.]+) ms", out).group(1)))
        mb = 4 * (4 if a.cell == "lstm" else 3) * hidden * hidden / 1e6
        print(f"{hidden:6d} {mb:9.2f} MB  " + "  ".join(f"{min(v):.3f}-{max(v):.3f} ms".rjust(18)
                                                      for v in ms.values()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

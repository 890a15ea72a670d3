"""GRU 2x1024 (RTMobile's model): recurrence as a loop (wispy's default) against the
stock unrolled export, side by side in one run: compile time, module size, which
lengths the module serves, and run time at T=100 (calls interleaved, order rotating).

    .venv/bin/python benchmarks/loops_vs_unrolled.py [--repeat 20]
"""
import argparse
import time

import numpy as np
import torch

import wispy
from wispy._timing import SETTLE_S
from wispy.models import gru_rtmobile


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=20)
    a = ap.parse_args()
    torch.manual_seed(0)
    model = gru_rtmobile()
    x = torch.randn(1, 100, 153)
    frames = torch.export.Dim("frames", min=1, max=100_000)
    builds = {}
    for name, kw in [("looped", dict(dynamic_shapes={"x": {1: frames}})), ("unrolled", dict(rnn_loops=False))]:
        t = time.perf_counter()
        builds[name] = (wispy.compile_model(model, (x,), progress=False, **kw), time.perf_counter() - t)
    xn = x.numpy()
    with torch.no_grad():
        ref = model(x).numpy()
    times = {k: [] for k in builds}
    names = list(builds)
    for cm, _ in builds.values():
        cm.run(xn)
    for r in range(a.repeat):
        for k in names[r % 2:] + names[:r % 2]:
            time.sleep(SETTLE_S)
            t = time.perf_counter()
            builds[k][0].run(xn)
            times[k].append((time.perf_counter() - t) * 1e3)
    print(f"{'':<10} {'compile s':>9} {'vmfb MB':>8} {'serves':>10} {'median ms':>10} {'per frame us':>13} {'max |err|':>10}")
    for k, (cm, cs) in builds.items():
        med = float(np.median(times[k]))
        err = float(np.abs(cm.run(xn)[0] - ref).max())
        serves = "any T" if k == "looped" else "T=100"
        print(f"{k:<10} {cs:>9.1f} {len(cm.vmfb) / 1e6:>8.1f} {serves:>10} {med:>10.2f} {med * 1e3 / 200:>13.1f} {err:>10.1e}")
    lo, un = (float(np.median(times[k])) for k in ("looped", "unrolled"))
    print(f"looped / unrolled run time: {lo / un:.3f} (per GRU step: {(lo - un) * 1e3 / 200:+.1f} us)")


if __name__ == "__main__":
    main()

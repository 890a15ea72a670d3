"""Who waits for a local-task call: the caller itself (IREE's own way: its thread spins while
the workers run) or wispy's waiter thread at nice 19 (wispy.runtime.host._Waiter, the default).

    .venv/bin/python benchmarks/caller_wait.py [--model wav2letter] [--winograd f43] [--rounds 30]

Compiles the model quantized int8 (post-training, random calibration) for the host, loads it
twice on local-task, with and without the waiter (WISPY_LOW_PRIORITY_WAIT=0), and calls the
two in turn after --idle-ms of idle each. Prints the wall time per call (median, p10, p90)
and the calling thread's own CPU time per call: where the caller spins, it holds a core that
one of the workers needed (on a 2-core host, the slow calls take one worker's time).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import wispy
from wispy.compress import quantize
from wispy.runtime.host import WAITER_ENV, LoadedModule

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quantized_conv import build  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="wav2letter")
    ap.add_argument("--winograd", default="f43", help="quantize(winograd=...): off, f23, f43")
    ap.add_argument("--frames", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--idle-ms", type=float, default=100.0)
    a = ap.parse_args()
    model = build(a.model)
    torch.manual_seed(0)
    x = torch.randn(1, 40, a.frames)
    q = quantize(model, torch.randn(2, 40, a.frames), method="ptq", winograd=a.winograd,
                 overflow_ratio=None, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        vmfb = wispy.compile_model(q, (x,), progress=False).save(Path(tmp) / "m.vmfb")
        mods = {}
        for name, env in (("caller waits (IREE)", "0"), ("waiter thread, nice 19", "1")):
            os.environ[WAITER_ENV] = env
            mods[name] = LoadedModule(vmfb, driver="local-task")
        os.environ.pop(WAITER_ENV)
        xn = x.numpy()
        wall = {k: [] for k in mods}
        cpu = {k: [] for k in mods}
        for m in mods.values():
            m(xn), m(xn)
        for _ in range(a.rounds):
            for k, m in mods.items():
                time.sleep(a.idle_ms / 1e3)
                t, c = time.perf_counter(), time.thread_time()
                m(xn)
                wall[k].append((time.perf_counter() - t) * 1e3)
                cpu[k].append((time.thread_time() - c) * 1e3)
    print(f"{a.model} int8 winograd={a.winograd}, local-task, {a.rounds} calls each after {a.idle_ms:g} ms "
          "idle, interleaved:")
    print(f"{'':26s} {'median ms':>9s} {'p10':>6s} {'p90':>6s}   caller CPU ms (median, p90)")
    for k in mods:
        w, c = np.array(wall[k]), np.array(cpu[k])
        print(f"{k:26s} {np.median(w):9.2f} {np.percentile(w, 10):6.2f} {np.percentile(w, 90):6.2f}"
              f"   {np.median(c):.2f}, {np.percentile(c, 90):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

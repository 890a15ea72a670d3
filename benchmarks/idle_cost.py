"""What a call after idle costs: one zoo model timed back to back and after a pause,
alternating, in a process that runs nothing else (the side-by-side benchmarks start every
call after 0.1 s idle, so this fixed cost is in their ratios).

    .venv/bin/python benchmarks/idle_cost.py --model gru --prune 10
    .venv/bin/python benchmarks/idle_cost.py --model gru --prune 20 --control   # numpy work, the same way
    .venv/bin/python benchmarks/idle_cost.py --model gru --prune 20 --layers 1  # one layer of the two
    .venv/bin/python benchmarks/idle_cost.py --model gru
    .venv/bin/python benchmarks/idle_cost.py --model lstm --onnxruntime   # ONNX Runtime too, taking turns
    .venv/bin/python benchmarks/idle_cost.py --model demo --recurrent-kernel on --recurrent-workers 2
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # the --control loop on one thread
import numpy as np  # noqa: E402

import wispy
from wispy.cli.main import _workers
from wispy.models import ZOO, example_input
from wispy.runtime.host import LoadedModule


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gru", help="a zoo name")
    ap.add_argument("--prune", type=float, default=None, help="prune RTMobile's way RATE x first")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--idle", type=float, default=0.1, help="seconds of idle before the idle calls")
    ap.add_argument("--onnxruntime", action="store_true", help="time ONNX Runtime the same way, taking turns")
    ap.add_argument("--layers", type=int, default=None,
                    help="recurrent layers (gru, lstm; default the zoo model's): does the cost grow with them?")
    ap.add_argument("--control", action="store_true",
                    help="also time plain numpy work the same way: one thread, data within a core's L2, "
                         "about as long as the module's call (what the machine itself charges after idle)")
    ap.add_argument("--recurrent-kernel", default="auto", choices=["auto", "on", "off"])
    ap.add_argument("--recurrent-workers", type=_workers, default="auto", help="a count, or auto (compile_model's default)")
    a = ap.parse_args()
    model = ZOO[a.model][0](**({"layers": a.layers} if a.layers else {})).eval()
    x = example_input(a.model)
    if a.prune:
        from wispy.compress import prune_block_sparse

        prune_block_sparse(model, rate=a.prune, block="cols:4", prune="rows", layers="rnn", uniform=True)
    with tempfile.TemporaryDirectory(prefix="wispy-idle-") as tmp:
        vmfb = wispy.compile_model(model, (x,), progress=False, recurrent_kernel=a.recurrent_kernel,
                                   recurrent_workers=a.recurrent_workers).save(Path(tmp) / "m.vmfb")
        module, xn = LoadedModule(vmfb, driver="local-task"), x.numpy()
        runners = {"wispy": lambda: module(xn)}
        if a.onnxruntime:
            from wispy.bench.harness import _onnx_runner

            runners["onnxruntime"] = _onnx_runner(model, (x,), Path(tmp))
        if a.control:
            runners["numpy"] = _control(runners["wispy"])
        for run in runners.values():
            for _ in range(5):
                run()
        idle = f"after {a.idle:g} s idle"
        times = {(name, kind): [] for name in runners for kind in ("back to back", idle)}
        for _ in range(a.rounds):
            for name, run in runners.items():
                # The idle call first: then the call before the back-to-back one is this
                # runtime's own (ONNX Runtime's threads spin on after a call, and would
                # slow the other runtime's next call).
                for kind in (idle, "back to back"):
                    if kind == idle:
                        time.sleep(a.idle)
                    t = time.perf_counter()
                    run()
                    times[(name, kind)].append((time.perf_counter() - t) * 1e3)
    for (name, kind), ms in times.items():
        print(f"{name:12s} {kind:20s} median {np.median(ms):7.2f} ms  p10-p90 {np.percentile(ms, 10):.2f}-"
              f"{np.percentile(ms, 90):.2f} ms")
    return 0


def _control(call, repeat: int = 20):
    """A numpy matrix-vector loop of one thread on a 600 KB matrix (within a core's L2),
    sized to take about as long back to back as `call`."""
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((150, 1024)) / 32).astype(np.float32)
    v = rng.standard_normal(1024).astype(np.float32)

    def loop(n):
        s = v
        for _ in range(n):
            s = np.tanh(w.T @ (w @ s))
        return s

    for _ in range(3):
        call()
    t = time.perf_counter()
    for _ in range(repeat):
        call()
    target = (time.perf_counter() - t) / repeat
    t = time.perf_counter()
    loop(200)
    n = max(1, round(200 * target / (time.perf_counter() - t)))
    return lambda: loop(n)


if __name__ == "__main__":
    raise SystemExit(main())

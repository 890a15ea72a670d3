"""ONNX Runtime's call time alone, and 0.1 s after a call of an IREE module in the same
process (local-task or local-sync): whether IREE's task workers slow ONNX Runtime down.

    .venv/bin/python benchmarks/ort_beside_iree.py --model lstm                      # alone
    .venv/bin/python benchmarks/ort_beside_iree.py --model lstm --iree local-task
    .venv/bin/python benchmarks/ort_beside_iree.py --model lstm --iree local-sync
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from wispy._timing import passive_openmp_waits

passive_openmp_waits()

import numpy as np  # noqa: E402

from wispy.bench.harness import _onnx_runner  # noqa: E402
from wispy.models import ZOO, example_input  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="lstm", help="a zoo name")
    ap.add_argument("--iree", choices=["local-task", "local-sync"], help="also load and call wispy's module")
    ap.add_argument("--calls", type=int, default=40)
    ap.add_argument("--slow-ms", type=float, default=9.0, help="count the calls slower than this")
    a = ap.parse_args()
    model, x = ZOO[a.model][0]().eval(), example_input(a.model)
    with tempfile.TemporaryDirectory(prefix="wispy-ort-") as tmp:
        run = _onnx_runner(model, (x,), Path(tmp))
        module = None
        if a.iree:
            import wispy
            from wispy.runtime.host import LoadedModule

            vmfb = wispy.compile_model(model, (x,), progress=False).save(Path(tmp) / "m.vmfb")
            module, xn = LoadedModule(vmfb, driver=a.iree), x.numpy()
            for _ in range(3):
                module(xn)
        for _ in range(5):
            run()
        ms = []
        for _ in range(a.calls):
            if module is not None:
                time.sleep(0.1)
                module(xn)
            time.sleep(0.1)
            t = time.perf_counter()
            run()
            ms.append((time.perf_counter() - t) * 1e3)
    ms = np.array(ms)
    where = f"0.1 s after a {a.iree} IREE call" if a.iree else "alone"
    print(f"ONNX Runtime, {a.model}, {where}: p10/median/p90 "
          f"{'/'.join(f'{v:.2f}' for v in np.percentile(ms, [10, 50, 90]))} ms; "
          f"{int((ms > a.slow_ms).sum())} of {len(ms)} calls over {a.slow_ms:g} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""IREE's two CPU drivers on the same modules: local-task (a worker thread per core, IREE's
default) against local-sync (inline on the calling thread), called back to back and after
0.1 s idle (as an application transcribing one utterance at a time calls it).

    .venv/bin/python benchmarks/host_drivers.py --models demo,wav2letter-small,convdfsmn-small,lstm,gru@10,gru@20

`NAME@RATE` prunes the zoo model RTMobile's way first (4 column strips, rows pruned).
Each figure is the min/max of two medians of 9 calls; the order of the drivers
alternates. `compile_model(host_driver="auto")` makes the same choice per model.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import wispy
from wispy.models import ZOO, example_input
from wispy.runtime.host import LoadedModule

DRIVERS = ("local-task", "local-sync")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="demo,wav2letter-small,convdfsmn-small,lstm,gru@10,gru@20")
    ap.add_argument("--calls", type=int, default=9)
    a = ap.parse_args()
    print(f"{'model':<18} {'input':<14} " + " ".join(f"{d + (' idle' if g else ''):>17}"
                                                    for g in (0, 1) for d in DRIVERS) + "   (ms, min/max of 2 medians)")
    with tempfile.TemporaryDirectory(prefix="wispy-drivers-") as tmp:
        for name in a.models.split(","):
            base, _, rate = name.partition("@")
            torch.manual_seed(0)
            model, x = ZOO[base][0]().eval(), example_input(base)
            if rate:
                from wispy.compress import prune_block_sparse

                prune_block_sparse(model, rate=float(rate), block="cols:4", prune="rows", layers="rnn", uniform=True)
            path = wispy.compile_model(model, (x,), progress=False).save(Path(tmp) / "m.vmfb")
            xs = x.numpy()
            mods = {d: LoadedModule(path, driver=d) for d in DRIVERS}
            for m in mods.values():
                m(xs)
            res: dict = {}
            for gap in (0.0, 0.1):
                for rep in range(2):
                    for d in (DRIVERS if rep == 0 else DRIVERS[::-1]):
                        ts = []
                        for _ in range(a.calls):
                            if gap:
                                time.sleep(gap)
                            t = time.perf_counter()
                            mods[d](xs)
                            ts.append((time.perf_counter() - t) * 1e3)
                        res.setdefault((gap, d), []).append(float(np.median(ts)))
            cells = [f"{min(v):>8.2f}/{max(v):<8.2f}" for v in res.values()]
            print(f"{name:<18} {'x'.join(map(str, xs.shape)):<14} " + " ".join(cells), flush=True)
            del mods
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Block-sparse GRU 2x1024 (RTMobile's model and pattern) against its dense self and ONNX
Runtime, side by side in one run, plus arm64 instructions per inference under qemu.

The model's recurrent and input matrices are pruned one-shot (wispy.compress, RTMobile's
pattern: 4 column strips, whole rows zeroed inside each strip, the same number kept in
every strip) at each rate; its other weights stay random. Timing does not depend on the
values, only on the pattern. For every rate, interleaved round-robin on this host:
  * wispy, block-sparse lowering on (the default),
  * wispy-dense, the same pruned model with `block_sparse=False`,
  * onnxruntime on the same pruned model (it has no sparse kernels: its dense time),
  * with --one-worker, wispy-1-worker: the sparse build with recurrent_workers=1 (the
    default, "auto", takes two cores when a layer's W_hh outgrows a core's L2),
and the arm64 instruction counts of wispy and wispy-dense. Writes out/bench/block_sparse.json.

    .venv/bin/python benchmarks/block_sparse_gru.py [--rates 10,20] [--repeat 20] [--no-arm64] [--one-worker]
    .venv/bin/python benchmarks/block_sparse_gru.py --model lstm --loop --no-arm64   # the zoo LSTM 2x512

`--blocks` times each build's calls one after another (each still after 0.1 s idle), not
interleaved with the other builds' (whose weights, up to 40 MB, evict the caches between
two calls of the pruned build; in an application only one of them runs).

`--warm` times each call right after an untimed call of the same build (the pair after the
0.1 s idle): a call in a stream of calls (a backlog of audio), where by default each call
is one now and then. The idle before a call costs every build a fixed ~0.4 ms on this
host (benchmarks/idle_cost.py), 40% of the 20x model's time and 3% of the dense one's.

`--loop` adds wispy-loop: the sparse build with recurrent_kernel="off" (the recurrence as
IREE's loop, its products by wispy-block-sparse), to show what the one-dispatch kernel adds.
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch

import wispy
from wispy.bench.harness import run_benchmark
from wispy.compress import prune_block_sparse
from wispy.models.acoustic import GRUAcousticModel, LSTMAcousticModel


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rates", default="10,20")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--no-arm64", action="store_true")
    ap.add_argument("--one-worker", action="store_true",
                    help="also time the sparse build with recurrent_workers=1, side by side")
    ap.add_argument("--loop", action="store_true",
                    help="also time the sparse build with recurrent_kernel='off' (IREE's loop), side by side")
    ap.add_argument("--blocks", action="store_true",
                    help="time each build's calls together, not interleaved: an interleaved call "
                         "follows another build's, which has evicted its weights from the caches")
    ap.add_argument("--warm", action="store_true",
                    help="each timed call right after an untimed call of the same build (after the "
                         "0.1 s idle): a call in a stream of calls rather than one call now and then")
    ap.add_argument("--model", choices=("gru", "lstm"), default="gru",
                    help="gru: RTMobile's GRU 2x1024 (153 in); lstm: the zoo's LSTM 2x512 (40 in)")
    ap.add_argument("--out", default=None, help="default out/bench/block_sparse.json (lstm: block_sparse_lstm.json)")
    a = ap.parse_args()
    a.out = a.out or ("out/bench/block_sparse.json" if a.model == "gru" else "out/bench/block_sparse_lstm.json")
    cls = GRUAcousticModel if a.model == "gru" else LSTMAcousticModel
    torch.manual_seed(0)
    x = torch.randn(1, a.frames, cls().rnn.input_size, generator=torch.Generator().manual_seed(1))
    rows = []
    for rate in [float(r) for r in a.rates.split(",")]:
        model = cls().eval()
        prune_block_sparse(model, rate=rate, block="cols:4", prune="rows", layers="rnn", uniform=True)
        what = f"{a.model.upper()} {model.rnn.num_layers}x{model.rnn.hidden_size}"
        print(f"\n== {what}, T={a.frames}, recurrent and input matrices pruned {rate:g}x ==", flush=True)
        # Each build runs on the faster of IREE's two CPU drivers, timed on this input.
        sparse = wispy.compile_model(model, (x,), progress=False, explain=True, host_driver="auto")
        for r in sparse.remarks:
            if ("wispy-block-sparse" in r or "wispy-recurrent-kernel" in r) and "lowered" in r:
                print("  " + r.split(": ", 2)[-1])
        builds = {"wispy": sparse}
        if a.one_worker:
            builds["wispy-1-worker"] = wispy.compile_model(model, (x,), progress=False, recurrent_workers=1,
                                                           host_driver="auto", explain=True)
        if a.loop:
            builds["wispy-loop"] = wispy.compile_model(model, (x,), progress=False, recurrent_kernel="off",
                                                       host_driver="auto", explain=True)
        builds["wispy-dense"] = wispy.compile_model(model, (x,), progress=False, block_sparse=False,
                                                    host_driver="auto", explain=True)
        for peer, cm in builds.items():
            print(f"  {peer}: " + next(r for r in cm.remarks if r.startswith("host driver:")), flush=True)
        res = run_benchmark(model, (x,), repeat=a.repeat, peers=["onnxruntime"], name=f"{a.model}-{rate:g}x",
                            precompiled=builds, blocks=a.blocks, warm=a.warm)
        t = {p.name: p.median_ms for p in res.peers}
        row = {"rate": rate, "ms": t,
               "speedup_vs_dense": t["wispy-dense"] / t["wispy"],
               "speedup_vs_onnxruntime": t["onnxruntime"] / t["wispy"]}
        if a.one_worker:
            row["one_worker_speedup_vs_dense"] = t["wispy-dense"] / t["wispy-1-worker"]
        if a.loop:
            row["loop_speedup_vs_dense"] = t["wispy-dense"] / t["wispy-loop"]
        if not a.no_arm64:
            arm_sparse = wispy.compile_model(model, (x,), target="arm64", progress=False)
            arm_dense = wispy.compile_model(model, (x,), target="arm64", progress=False, block_sparse=False)
            arm = run_benchmark(model, (x,), target="arm64", peers=["wispy"], name=f"{a.model}-{rate:g}x",
                                precompiled={"wispy": arm_sparse, "wispy-dense": arm_dense})
            n = {p.name: p.instructions for p in arm.peers}
            row["arm64_instructions"] = n
            row["arm64_fewer_instructions"] = n["wispy-dense"] / n["wispy"]
        rows.append(row)
        print(f"  {rate:g}x: {row['speedup_vs_dense']:.2f}x faster than wispy dense, "
              f"{row['speedup_vs_onnxruntime']:.2f}x faster than ONNX Runtime"
              + (f", {row['arm64_fewer_instructions']:.2f}x fewer arm64 instructions"
                 if "arm64_fewer_instructions" in row else "")
              + (f" (one worker: {row['one_worker_speedup_vs_dense']:.2f}x faster than wispy dense)"
                 if a.one_worker else "")
              + (f" (the loop: {row['loop_speedup_vs_dense']:.2f}x)" if a.loop else ""), flush=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(rows, indent=2))
    print(f"\nwrote {a.out}")


if __name__ == "__main__":
    main()

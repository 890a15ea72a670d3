"""Dense models on this host: wispy vs IREE's defaults vs PyTorch eager vs ONNX Runtime,
side by side in one run (calls interleaved round-robin), plus arm64 instruction counts
under qemu. Writes out/bench/dense.json and out/bench/dense.png.

    .venv/bin/python benchmarks/dense_vs_peers.py [--models gru,lstm,wav2letter] [--repeat 20]
"""
import argparse
import json
from dataclasses import asdict
from pathlib import Path

from wispy.bench import run_benchmark
from wispy.models import ZOO, example_input


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    peers = ["wispy", "iree", "torch", "onnxruntime"]
    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.6))
    axes = axes if len(results) > 1 else [axes]
    for ax, r in zip(axes, results):
        names = [p for p in peers if r.peer(p) and r.peer(p).median_ms]
        ms = [r.peer(p).median_ms for p in names]
        bars = ax.bar(names, ms, color=["#2a7" if n == "wispy" else "#999" for n in names])
        ax.set_yscale("log")
        ax.set_title(f"{r.model}\n(inputs {', '.join(r.inputs)})", fontsize=9)
        ax.set_ylabel("median ms per inference (log)")
        for b, v in zip(bars, ms):
            ax.text(b.get_x() + b.get_width() / 2, v, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
    fig.suptitle("dense models on this host (lower is better)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="gru,lstm,wav2letter")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--arm64", action="store_true", help="also count arm64 instructions under qemu")
    ap.add_argument("--out", default="out/bench")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    results, arm = [], []
    for name in a.models.split(","):
        model = ZOO[name][0]()
        x = example_input(name)
        results.append(run_benchmark(model, (x,), repeat=a.repeat, name=name))
        if a.arm64:
            arm.append(run_benchmark(model, (x,), target="arm64", peers=["wispy", "iree"], name=name))
        print()
    print("summary (wispy speedup = peer median / wispy median; > 1 means wispy is faster)")
    for r in results:
        print(f"  {r.model:<12} " + "  ".join(f"vs {p}: {r.ratio(p):.2f}x" for p in ("iree", "torch", "onnxruntime")
                                               if r.ratio(p)))
    for r in arm:
        print(f"  {r.model:<12} arm64 instructions: wispy {r.peer('wispy').instructions:,}, "
              f"IREE defaults {r.peer('iree').instructions:,} ({r.ratio('iree'):.2f}x fewer)")
    (out / "dense.json").write_text(json.dumps([asdict(r) for r in results + arm], indent=2))
    plot(results, out / "dense.png")
    print(f"wrote {out / 'dense.json'} and {out / 'dense.png'}")


if __name__ == "__main__":
    main()

"""Dense models on this host: wispy vs IREE's defaults vs PyTorch eager vs ONNX Runtime,
side by side in one run (calls interleaved round-robin), plus arm64 instruction counts
under qemu. Writes out/bench/dense.json and out/bench/dense.png.

    .venv/bin/python benchmarks/dense_vs_peers.py [--models gru,lstm,wav2letter] [--repeat 20]
"""
import argparse
import json
from dataclasses import asdict
from pathlib import Path

from wispy._timing import passive_openmp_waits

passive_openmp_waits()  # before torch is imported: PyTorch is one of the peers timed here

from wispy.bench.harness import run_benchmark  # noqa: E402
from wispy.models import ZOO, example_input  # noqa: E402


def plot(results, path):
    """Each peer's median time relative to ONNX Runtime's (1.0), per model, on a linear
    axis, with the p10-p90 of its calls as whiskers; bars past CAP are cut and labelled
    with their value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cap = 3.0
    peers = [("wispy", "#2a7"), ("iree", "#bbb"), ("torch", "#888"), ("onnxruntime", "#444")]
    fig, ax = plt.subplots(figsize=(7.5, 1.0 + 0.9 * len(results)))
    height = 0.8 / len(peers)
    for i, r in enumerate(results):
        base = r.peer("onnxruntime").median_ms if r.peer("onnxruntime") else None
        for j, (name, color) in enumerate(peers):
            p = r.peer(name)
            if not (base and p and p.median_ms):
                continue
            rel = p.median_ms / base
            y = i + (j - 1.5) * height
            ax.barh(y, min(rel, cap), height=height * 0.9, color=color, label=name if i == 0 else None)
            end = min(rel, cap)
            if p.p10_ms and p.p90_ms and rel <= cap:
                # p10-p90 of the calls: ONNX Runtime's LSTM, for one, is bimodal here.
                lo, end = p.p10_ms / base, min(p.p90_ms / base, cap)
                ax.errorbar(rel, y, xerr=[[rel - lo], [end - rel]], fmt="none", ecolor="k", elinewidth=0.7,
                            capsize=1.5)
            ax.text(end + 0.03, y, f"{rel:.2f}" + (" (cut)" if rel > cap else ""), va="center", fontsize=7)
    ax.axvline(1.0, color="k", lw=0.8, ls="--")
    ax.set_yticks(range(len(results)), [f"{r.model}\n{', '.join(r.inputs)}" for r in results], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, cap + 0.5)
    ax.set_xlabel("time per inference relative to ONNX Runtime (lower is better)")
    ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.22))
    ax.set_title("dense models on this host, measured side by side in one run (whiskers: p10-p90)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="gru,lstm,wav2letter")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--arm64", default="", help="models whose arm64 instructions to count under qemu "
                                                "(e.g. gru,lstm; slow: qemu runs every inference)")
    ap.add_argument("--out", default="out/bench")
    ap.add_argument("--blocks", action="store_true",
                    help="time each runtime's calls together, not interleaved (runtimes sharing a "
                         "process slow each other's next call)")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    results, arm = [], []
    for name in a.models.split(","):
        model = ZOO[name][0]()
        x = example_input(name)
        results.append(run_benchmark(model, (x,), repeat=a.repeat, name=name, blocks=a.blocks))
        if name in a.arm64.split(","):
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
    if results:
        plot(results, out / "dense.png")
    print(f"wrote {out / 'dense.json'} and {out / 'dense.png'}")


if __name__ == "__main__":
    main()

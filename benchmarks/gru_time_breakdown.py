"""Where a GRU 2x1024 inference's host time goes, dense against block-sparse: IREE's own
profiler on each module, its dispatches grouped by what they compute, plus the time
between them, as a table and a stacked-bar plot.

    .venv/bin/python benchmarks/gru_time_breakdown.py --rates 10,20     # out/bench/gru_breakdown.{json,png}

Each module runs back to back (`iree-benchmark-module`, the profiled runs only) on the
IREE driver wispy picks for it (`host_driver="auto"`: local-task for the dense module,
local-sync for the pruned ones, whose recurrences run in wispy's one-dispatch kernel);
"between dispatches" is the wall time per inference minus the dispatches' own time, i.e.
what the runtime spends handing dispatches to its workers and waiting for them. The
groups come from IREE's dispatch names (see GROUPS).
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

import wispy
from wispy.models import ZOO, example_input
from wispy.runtime.host import iree_tool

# (group, pattern on the dispatch name after `main$async_dispatch_N_`), first match wins
GROUPS = (
    ("recurrent kernel (whole layers)", r"^wispy_gru_sequence"),
    ("output layer", r"(x62x|_100x62_|reduction_100x62)"),
    ("recurrent products", r"^matvec_like"),
    ("recurrent combine", r"^generic_3072_i32"),
    ("gates", r"^elementwise_1024_"),
    ("input projections", r"^(batch_)?matmul_"),
    ("projection gathers and combine", r"^(elementwise_broadcast_\d+x100x|generic_100x3072_|transpose_100x)"),
)
OTHER, GAPS = "other dispatches", "between dispatches"


def group_of(name: str) -> str:
    short = re.sub(r"^.*_dispatch_\d+_", "", name)
    short = re.sub(r"^.*\$(wispy_gru_sequence)", r"\1", short)
    return next((g for g, pat in GROUPS if re.search(pat, short)), OTHER)


def profile(vmfb: Path, x: Path, runs: int, work: Path, device: str = "local-task", group=None) -> dict:
    """ms per inference by group, the wall time and the dispatches per inference, from one
    profiled benchmark run.
    `group`: dispatch name -> group (default: GROUPS, every group listed even if empty)."""
    prof = work / (vmfb.stem + ".ireeprof")
    out = subprocess.run([iree_tool("iree-benchmark-module"), f"--device={device}", f"--module={vmfb}",
                          "--function=main", f"--input=@{x}", f"--benchmark_min_time={runs}x",
                          "--device_profiling_mode=host-execution", f"--device_profiling_output={prof}"],
                         capture_output=True, text=True, check=True).stdout
    wall = float(re.search(r"real_time\s+([\d.]+) ms", out).group(1))
    stats = subprocess.run([iree_tool("iree-profile"), "statistics", "--format=jsonl", str(prof)],
                           capture_output=True, text=True, check=True).stdout
    ms = {g: 0.0 for g in [g for g, _ in GROUPS] + [OTHER]} if group is None else {}
    group = group or group_of
    dispatches = 0.0
    for line in stats.splitlines():
        row = json.loads(line)
        if row.get("row_type") == "host_execution_queue_operation" and row.get("event_name") == "dispatch":
            dispatches += row["sample_count"] / runs
        if row.get("row_type") == "host_execution_function" and row.get("function_name"):
            g = group(row["function_name"])
            ms[g] = ms.get(g, 0.0) + row["total_duration_ns"] / 1e6 / runs
    ms[GAPS] = max(0.0, wall - sum(ms.values()))
    return {"wall_ms": wall, "groups_ms": ms, "device": device, "dispatches": dispatches}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    groups = [g for g, _ in GROUPS] + [OTHER, GAPS]
    colors = ["#d62", "#a6a", "#2a7", "#8c5", "#fc4", "#58c", "#9bd", "#bbb", "#555"]
    fig, ax = plt.subplots(figsize=(7.5, 1.8 + 0.5 * len(names)))
    for i, n in enumerate(names):
        left = 0.0
        for g, c in zip(groups, colors):
            v = results[n]["groups_ms"][g]
            ax.barh(i, v, left=left, color=c, label=g if i == 0 else None, height=0.6)
            left += v
        ax.text(left + 0.2, i, f"{results[n]['wall_ms']:.2f} ms", va="center", fontsize=8)
    ax.set_yticks(range(len(names)), [f"{n}\n({results[n].get('device', 'local-task')})" for n in names], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ms per inference, back to back (IREE's profiler)")
    ax.set_title("GRU 2x1024, T=100, on this host: where the time goes", fontsize=9)
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.3))
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="10,20", help="pruning rates besides the dense model")
    ap.add_argument("--runs", type=int, default=20, help="profiled inferences per module")
    ap.add_argument("--out", default="out/bench")
    a = ap.parse_args()
    from wispy.compress import prune_block_sparse

    x = example_input("gru")
    results = {}
    with tempfile.TemporaryDirectory(prefix="wispy-breakdown-") as tmp:
        work = Path(tmp)
        np.save(work / "x.npy", x.numpy())
        for rate in [None] + [float(r) for r in a.rates.split(",") if r]:
            model = ZOO["gru"][0]().eval()
            label = "dense"
            if rate:
                prune_block_sparse(model, rate=rate, block="cols:4", prune="rows", layers="rnn", uniform=True)
                label = f"pruned {rate:g}x"
            cm = wispy.compile_model(model, (x,), progress=False, host_driver="auto")
            vmfb = cm.save(work / f"{label.replace(' ', '_')}.vmfb")
            results[label] = profile(vmfb, work / "x.npy", a.runs, work, cm.host_driver)
            r = results[label]
            print(f"{label:14s} {r['wall_ms']:7.2f} ms: " +
                  ", ".join(f"{g} {v:.2f}" for g, v in r["groups_ms"].items() if v >= 0.005), flush=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gru_breakdown.json").write_text(json.dumps(results, indent=1))
    plot(results, out / "gru_breakdown.png")
    print(f"wrote {out / 'gru_breakdown.json'} and {out / 'gru_breakdown.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

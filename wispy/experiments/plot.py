"""Pictures of block-sparse matrices and of the accuracy/speed trade-off (matplotlib).

    plot_model_masks(model, "out/prune/10x/matrices")   # one PNG per pruned matrix
    plot_matrix(weight, mask, "cols:4", "w.png", title="rnn.weight_hh_l0")

A matrix picture shows |weight| of the surviving entries (darker = larger; pruned entries
white), the block grid in red, the GRU/LSTM gate boundaries (r|z|n, i|f|g|o) as dashed blue
lines for recurrent matrices, and under each block column how many rows x columns each block
keeps. A side panel gives the kept fraction of every row and a bottom panel of every column,
so empty rows and columns (removed from every block) stand out.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch


def _mpl():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - matplotlib is a dependency
        raise ImportError("wispy.experiments.plot needs matplotlib (pip install matplotlib)") from e
    return plt


def plot_matrix(weight: torch.Tensor, mask: Optional[torch.Tensor], block, path, *, title: str = "",
                gates: int = 0, dpi: int = 110) -> Path:
    """Writes a PNG of one pruned matrix (a >2-D weight is drawn as its [out, in*k] matrix);
    `gates` > 1 draws that many stacked gate boundaries along the rows. Returns the path."""
    from wispy.compress.block_sparse import BlockSpec, block_structure

    plt = _mpl()
    spec = BlockSpec.parse(block)
    W = weight.detach().reshape(weight.shape[0], -1).float().cpu().numpy()
    M = (W != 0) if mask is None else mask.reshape(W.shape).cpu().numpy().astype(bool)
    R, C = W.shape
    bs = block_structure(torch.from_numpy(W), spec, torch.from_numpy(M))
    re, ce = bs["row_edges"], bs["col_edges"]
    kept, total = int(M.sum()), M.size

    aspect = R / max(C, 1)
    h = float(np.clip(3.0 + 5.0 * min(aspect, 3.0) / 3.0, 4.0, 9.0))
    w = float(np.clip(h / max(aspect, 0.25) + 1.5, 4.5, 12.0))
    fig = plt.figure(figsize=(w, h), dpi=dpi)
    gs = fig.add_gridspec(2, 2, width_ratios=[12, 1], height_ratios=[12, 1], wspace=0.04, hspace=0.06,
                          top=0.93)
    ax = fig.add_subplot(gs[0, 0])
    axr = fig.add_subplot(gs[0, 1], sharey=ax)
    axc = fig.add_subplot(gs[1, 0], sharex=ax)

    A = np.abs(W)
    vmax = float(np.percentile(A[M], 99)) if M.any() else 1.0
    img = np.where(M, A, np.nan)
    cmap = plt.get_cmap("Greys").with_extremes(bad="white")
    ax.imshow(img, cmap=cmap, vmin=0, vmax=max(vmax, 1e-12), aspect="auto", interpolation="nearest",
              extent=(0, C, R, 0))
    for e in re[1:-1]:
        ax.axhline(e, color="red", lw=1.0)
    for e in ce[1:-1]:
        ax.axvline(e, color="red", lw=1.0)
    if gates > 1 and R % gates == 0:
        names = {3: "rzn", 4: "ifgo"}.get(gates, "")
        for g in range(gates):
            if g:
                ax.axhline(g * R // gates, color="tab:blue", lw=0.8, ls="--")
            if names:
                ax.text(0.01 * C, (g + 0.5) * R / gates, f"gate {names[g]}", color="tab:blue", ha="left",
                        va="center", fontsize=8, fontweight="bold",
                        bbox=dict(facecolor="white", alpha=0.7, lw=0, pad=1))
    ax.set_xlim(0, C)
    ax.set_ylim(R, 0)
    ax.set_ylabel("row (output)")
    ax.tick_params(labelbottom=False)
    # per-block survivors, printed inside each block when there is room
    nR, nC = len(re) - 1, len(ce) - 1
    if nR * nC <= 64:
        for i in range(nR):
            for j in range(nC):
                txt = f"{bs['kept_rows'][i][j]}x{bs['kept_cols'][i][j]}"
                ax.text((ce[j] + ce[j + 1]) / 2, re[i] + 0.02 * R + 1, txt, ha="center", va="top", fontsize=7,
                        color="red", bbox=dict(facecolor="white", alpha=0.7, lw=0, pad=1))
    # kept fraction per row / column as one filled step curve each (bars are one artist apiece)
    edges_r = np.repeat(np.arange(R + 1), 2)[1:-1]
    axr.fill_betweenx(edges_r, 0, np.repeat(M.mean(1), 2), color="black", lw=0)
    axr.set_xlim(0, 1)
    axr.set_xlabel("kept", fontsize=8)
    axr.tick_params(labelleft=False, labelsize=7)
    edges_c = np.repeat(np.arange(C + 1), 2)[1:-1]
    axc.fill_between(edges_c, 0, np.repeat(M.mean(0), 2), color="black", lw=0)
    axc.set_ylim(0, 1)
    axc.set_xlabel("column (input)")
    axc.tick_params(labelsize=7)
    head = f"{title}  " if title else ""
    fig.suptitle(f"{head}[{R}x{C}] blocks {spec} ({nR}x{nC}): kept {kept}/{total} = 1/{total / max(kept, 1):.1f}"
                 f"{'' if bs['dense_blocks'] else '  (NOT block-dense)'}", fontsize=9, y=0.975)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def _gates(name: str, model) -> int:
    """3 for a GRU's, 4 for an LSTM's stacked-gate matrices, else 0."""
    from torch import nn

    mod = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
    if isinstance(mod, nn.GRU):
        return 3
    if isinstance(mod, nn.LSTM):
        return 4
    return 0


def plot_model_masks(model, out_dir, block=None) -> list[Path]:
    """One PNG per pruned matrix of `model` (its `wispy_masks`), named after the parameter."""
    masks = getattr(model, "wispy_masks", None) or {}
    block = block or (getattr(model, "wispy_prune", None) or {}).get("block") or "whole"
    params = dict(model.named_parameters())
    out = []
    for n, m in masks.items():
        out.append(plot_matrix(params[n], m, block, Path(out_dir) / f"{n}.png", title=n, gates=_gates(n, model)))
    return out


def plot_pareto(rows: Sequence[dict], path, *, title: str = "") -> Path:
    """Accuracy against speed and against compression for a sweep's rows
    ({"label", "rate", "per", "ms" (optional)}). The left panel plots PER against time per
    inference and joins the Pareto front (no other point is both faster and more accurate);
    without any timings it plots PER against the compression rate only."""
    plt = _mpl()
    have_ms = any(r.get("ms") is not None for r in rows)
    fig, axes = plt.subplots(1, 2 if have_ms else 1, figsize=(11 if have_ms else 6, 4.2), dpi=110, squeeze=False)
    axes = axes[0]
    if have_ms:
        ax = axes[0]
        pts = [r for r in rows if r.get("ms") is not None]
        ax.scatter([r["ms"] for r in pts], [100 * r["per"] for r in pts], color="tab:blue", zorder=3)
        for r in pts:
            ax.annotate(r["label"], (r["ms"], 100 * r["per"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
        front = pareto_front(pts)
        ax.plot([r["ms"] for r in front], [100 * r["per"] for r in front], color="tab:red", lw=1.2,
                label="Pareto front", zorder=2)
        ax.set_xlabel("time per inference (ms)")
        ax.set_ylabel("test PER (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title("accuracy against speed", fontsize=10)
    ax = axes[-1]
    main = [r for r in rows if not r.get("control")]
    ax.plot([r["rate"] for r in main], [100 * r["per"] for r in main], "o-", color="tab:green")
    for r in main:
        ax.annotate(r["label"], (r["rate"], 100 * r["per"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    for r in rows:
        if r.get("control"):
            ax.plot([r["rate"]], [100 * r["per"]], "x", color="grey")
            ax.annotate(r["label"], (r["rate"], 100 * r["per"]), textcoords="offset points", xytext=(4, -10),
                        fontsize=8, color="grey")
    ax.set_xscale("log")
    ax.set_xlabel("compression rate of the pruned matrices (x, log)")
    ax.set_ylabel("test PER (%)")
    ax.grid(alpha=0.3, which="both")
    ax.set_title("accuracy against compression", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def pareto_front(rows: Sequence[dict]) -> list[dict]:
    """The rows no other row beats on both time ("ms") and error ("per"), fastest first."""
    pts = sorted((r for r in rows if r.get("ms") is not None), key=lambda r: (r["ms"], r["per"]))
    front, best = [], math.inf
    for r in pts:
        if r["per"] < best:
            front.append(r)
            best = r["per"]
    return front

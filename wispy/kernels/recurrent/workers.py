"""The several-worker kernel. With `workers` W > 1 the hidden units are cut into W parts
of H/W units. A part's task at step t computes its units' rows of W_hh (and of the
projection) into the worker's own S, then their gates, and writes h_t of those units to
hs[t]. Its inputs (h_{t-1} in hs[t-1], the weights, the projection) never change once
written, so a task may run twice: both runs write the same values. Per sequence and step,
two i64 words of bits: parts claimed and parts done. A worker claims parts in its own
order (first its own part, whose weights its core's cache keeps step after step), runs
them, marks them done, and goes on to step t+1 once every part of step t is done. Nothing
ever waits on a worker that has not started (one alone claims every part: IREE's
local-sync driver runs the workgroups one after the other), and one that the OS preempts
inside a task holds the others only `steal_spins` polls: then they run that part themselves."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wispy.kernels.recurrent.cells import StepIO, gate_step
from wispy.kernels.recurrent.operands import bindings, index_constants, subspans
from wispy.kernels.recurrent.products import bucket_products, projection_bucket, projection_rows
from wispy.kernels.recurrent.shape import KernelShape, pack_rows, results_of, scratch_rows, scratch_size
from wispy.kernels.templates import render

R, W_ = "recurrent.mlir", "recurrent_workers.mlir"

@dataclass
class PartPlan:
    """One part's units [lo, hi), its rows of the projection's buckets (bucket j, nb,
    rows kept rk, positions in the bucket's rows pidx [nb, rk], places in S prow), and its
    rows of W_hh in the kernel's tiles."""
    lo: int
    hi: int
    proj: list
    buckets: list


def _part_rows(rows: np.ndarray, H: int, lo: int, hi: int) -> np.ndarray:
    """Per block of a [nb, r] row array (-1: padding), the positions of the rows whose unit
    (row mod H) lies in [lo, hi), padded with -1 to the most any block has: [nb, rk]."""
    units = np.where(rows >= 0, rows % H, -1)
    sel = (units >= lo) & (units < hi)
    rk = int(sel.sum(1).max()) if sel.size else 0
    out = np.full((rows.shape[0], rk), -1, np.int64)
    for i in range(rows.shape[0]):
        idx = np.nonzero(sel[i])[0]
        out[i, :len(idx)] = idx
    return out


def plan_parts(hh_buckets: list, ih_buckets, H: int, shape: KernelShape, cell: str = "gru") -> list:
    """The W parts of a layer: W_hh's BSPC buckets (values [nb, r, c], rows, cols) and the
    projection's (None with a dense W_ih) split by the units their rows feed."""
    W = shape.workers
    plans = []
    for k in range(W):
        lo, hi = k * H // W, (k + 1) * H // W
        proj = []
        for j, bk in enumerate(ih_buckets or []):
            idx = _part_rows(bk.rows, H, lo, hi)
            if idx.shape[1] == 0:
                continue
            rows = np.where(idx >= 0, np.take_along_axis(bk.rows, np.maximum(idx, 0), 1), -1)
            proj.append((j, idx.shape[0], idx.shape[1], np.maximum(idx, 0).astype(np.int32),
                         scratch_rows(rows, H, cell)))
        buckets = []
        for bk in hh_buckets:
            idx = _part_rows(bk.rows, H, lo, hi)
            if idx.shape[1] == 0:
                continue
            safe = np.maximum(idx, 0)
            vals = np.where((idx >= 0)[:, :, None], np.take_along_axis(bk.values, safe[:, :, None], 1), 0)
            rows = np.where(idx >= 0, np.take_along_axis(bk.rows, safe, 1), -1)
            buckets += pack_rows(vals.astype(np.float32), rows, bk.cols, 4 * H, shape)
        plans.append(PartPlan(lo, hi, proj, buckets))
    return plans


def parts_supported(hidden: int, workers: int, shape: KernelShape) -> bool:
    """Parts of whole vectors (row tiles and gate vectors)."""
    part = hidden // workers
    return hidden % workers == 0 and part % shape.tl == 0 and part % shape.gw == 0 and workers <= 32


def counter_words(T: int, B: int) -> int:
    """i64 words of the several-worker kernel: parts claimed and parts done, per sequence
    and step."""
    return 2 * T * B


def kernel(name: str, T: int, B: int, H: int, proj, plans: list, shape: KernelShape, types: list,
           cell: str = "gru") -> str:
    """The several-worker kernel; bindings: the operands of types_parts without the
    results, the counter words [2*B*T] (zeros, updated in place), hs (and an LSTM's cs)."""
    nres = results_of(cell)
    NS, W = scratch_size(H, shape), shape.workers
    V, VG, SM = f"vector<{shape.tl}xf32>", f"vector<{shape.gw}xf32>", f"memref<{NS}xf32>"
    mems = [f"memref<{t}>" for t in types]
    nops = len(types) - nres
    results = [render(W_, "state", state=st, i=nops + 1 + i, type=mems[-1])
               for i, st in enumerate(("hs", "cs")[:nres])]
    tasks = [task(part, pl, proj, plans, H, shape, mems, NS, cell) for part, pl in enumerate(plans)]
    return render(
        W_, "kernel", name=name, bindings=bindings(nops + 1 + nres),
        constants=index_constants(max(shape.tl, shape.uj, shape.g, 4, W) + 1), T=T, B=B, H=H, TL=shape.tl,
        G=shape.g, GW=shape.gw, IN=3 * H, W=W, steal=shape.steal_spins, all=(1 << W) - 1,
        subspans=subspans(mems[:-nres]), words=counter_words(T, B), counters=nops, results=results, SM=SM,
        V=V, VG=VG, snake="true" if shape.snake else "false",
        frame=render(W_, "frame") if proj is not None else "", tasks=tasks)


def _operands(part: int, proj, plans: list, lstm: bool) -> tuple:
    """Positions of part `part`'s operands (see types_parts): [(projection entry, pidx,
    prow)], h0, c0, init, [(W_hh bucket, values)]."""
    pos = 1 if proj is None else len(proj)
    proj_ops = []
    for q, pq in enumerate(plans):
        for entry in pq.proj:
            if q == part:
                proj_ops.append((entry, pos, pos + 1))
            pos += 2
    h0, c0, init = pos, pos + 1, pos + 1 + int(lstm)
    pos = init + 1
    hh_ops = []
    for q, pq in enumerate(plans):
        for bk in pq.buckets:
            if q == part:
                hh_ops.append((bk, pos))
            pos += 3
    return proj_ops, h0, c0, init, hh_ops


def task(part: int, pl: PartPlan, proj, plans: list, H: int, shape: KernelShape, mems: list, NS: int,
         cell: str = "gru") -> str:
    """Part `part`'s task of step %t (sequence %wb): h_{t-1} into %h, its entries of S,
    the projection's and W_hh's rows, the gates of its units into hs[t] (and an LSTM's c_t
    into cs[t], from c_{t-1} in cs[t-1])."""
    lstm = cell == "lstm"
    V, VG, SM = f"vector<{shape.tl}xf32>", f"vector<{shape.gw}xf32>", f"memref<{NS}xf32>"
    proj_ops, h0, c0, init, hh_ops = _operands(part, proj, plans, lstm)
    bases = (0, H, 2 * H, 3 * H) if proj is not None or lstm else (0, H, 2 * H)
    init_rows = [render(W_, "init_rows", g=g, lo=pl.lo + base, hi=pl.hi + base, init=init, init_type=mems[init],
                        V=V, SM=SM) for g, base in enumerate(bases)]
    projection = [projection_bucket(j, nb, rk, f"%prk{j}", projection_rows("%blk", f"%prk{j}", mems, j, pr, SM,
                                                                           pidx=pi))
                  for (j, nb, rk, _i, _r), pi, pr in proj_ops]
    products = [bucket_products(k, bk, at, mems, shape, H, SM) for k, (bk, at) in enumerate(hh_ops)]
    io = StepIO(H=H, VG=VG, SM=SM, seq="%wb", hs="%hs", cs="%cs" if lstm else None, state_type=mems[-1],
                keep_h=False, c0=f"%m{c0}" if lstm else None, c0_type=mems[c0] if lstm else None)
    gates = gate_step(cell, proj, None if proj is not None else ("%m0", mems[0]), io)
    return render(W_, "task", part=part, h0=h0, h0_type=mems[h0], V=V, H=H, state_type=mems[-1], lo=pl.lo,
                  hi=pl.hi, init=init_rows, projection=projection, products=products, gates=gates)

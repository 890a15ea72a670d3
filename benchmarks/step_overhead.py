"""Three ways to cut a recurrent step's fixed cost, measured against wispy's default (the
figures of the README's "Per-step overhead, what did not help"); every module is run back
to back by `iree-benchmark-module` on local-task, the two forms of each experiment in
alternation, two rounds:

    .venv/bin/python benchmarks/step_overhead.py spin         # --task_worker_spin_us=100 or 0
    .venv/bin/python benchmarks/step_overhead.py fused-gates  # one GRU layer, 96 steps, hand-written MLIR
    .venv/bin/python benchmarks/step_overhead.py wavefront    # layer 2 one frame behind layer 1

spin and wavefront use the zoo GRU 2x1024 pruned 10x (RTMobile's pattern); spin also the
dense one. fused-gates compares a GRU step as wispy builds it (row-tiled product, then a
gates dispatch) with the gates fused into a three-result product (one dispatch per step),
at --units 1024,256,64.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import wispy
from wispy.compiler import recurrent as R
from wispy.compiler.iree_tools import tool_path
from wispy.targets import _CPU_COMMON, host_cpu_flags
from wispy.models import ZOO, example_input
from wispy.runtime.host import iree_tool

STEPS, UNROLL, T = 96, 16, 16  # fused-gates: steps, steps per loop iteration, rows per tile


def bench(vmfb: Path, inputs: list, *flags: str) -> float:
    out = subprocess.run([iree_tool("iree-benchmark-module"), f"--module={vmfb}", "--device=local-task",
                          "--function=main", "--benchmark_repetitions=5", *[f"--input=@{i}" for i in inputs],
                          *flags], capture_output=True, text=True, check=True).stdout
    value, unit = re.search(r"real_time_median\s+([\d.]+) (ms|us)", out).groups()
    return float(value) / (1000.0 if unit == "us" else 1.0)


def compare(label: str, runs: dict) -> None:
    """runs: name -> () -> ms; two alternating rounds, printed as min-max."""
    got = {k: [] for k in runs}
    for _ in range(2):
        for k, fn in runs.items():
            got[k].append(fn())
    print(label + ": " + ", ".join(f"{k} {min(v):.2f}-{max(v):.2f} ms" for k, v in got.items()), flush=True)


def zoo_gru(prune: float):
    torch.manual_seed(0)
    model, x = ZOO["gru"][0]().eval(), example_input("gru")
    if prune:
        from wispy.compress import prune_block_sparse

        prune_block_sparse(model, rate=prune, block="cols:4", prune="rows", layers="rnn", uniform=True)
    return model, x


def spin(tmp: Path) -> None:
    for prune in (10, 0):
        model, x = zoo_gru(prune)
        np.save(tmp / "x.npy", x.numpy())
        vmfb = wispy.compile_model(model, (x,), progress=False).save(tmp / "m.vmfb")
        compare(f"GRU 2x1024{f' pruned {prune}x' if prune else ''}",
                {f"spin {us} us": (lambda us=us: bench(vmfb, [tmp / "x.npy"], f"--task_worker_spin_us={us}"))
                 for us in (0, 100)})


def wavefront_forward(self, input, hx=None):  # noqa: A002 (LoopedRNN.forward's signature)
    """A 2-layer GRU as one scan: layer 2 runs frame t-1 while layer 1 runs frame t, so the
    two steps of an iteration are independent (layer 2's input product becomes per frame)."""
    rnn = self.rnn
    assert not self.is_lstm and rnn.num_layers == 2 and not rnn.bidirectional and hx is None
    x = input.transpose(0, 1) if rnn.batch_first else input
    w_hh1, b_hh1 = rnn.weight_hh_l0, rnn.bias_hh_l0
    w_ih2, w_hh2, b_ih2, b_hh2 = rnn.weight_ih_l1, rnn.weight_hh_l1, rnn.bias_ih_l1, rnn.bias_hh_l1
    gi1 = F.linear(x, rnn.weight_ih_l0, rnn.bias_ih_l0)
    h0 = x.new_zeros(x.shape[1], rnn.hidden_size)
    first = R.gru_step(h0, gi1[0], w_hh1, b_hh1)

    def step(carry, gi_t):
        a, c = carry  # layer 1 at frame t-1, layer 2 at frame t-2
        c2 = R.gru_step(c, R.recurrent_product(a, w_ih2, b_ih2), w_hh2, b_hh2)
        return (R.gru_step(a, gi_t, w_hh1, b_hh1), c2), c2.clone()

    (a, c), ys = R.time_scan(step, (first, h0), gi1[1:])
    last = R.gru_step(c, R.recurrent_product(a, w_ih2, b_ih2), w_hh2, b_hh2)
    out = torch.cat([ys, last[None]], 0)
    return (out.transpose(0, 1) if rnn.batch_first else out), torch.stack([a, last])


def wavefront(tmp: Path) -> None:
    model, x = zoo_gru(10)
    np.save(tmp / "x.npy", x.numpy())
    with torch.no_grad():
        ref = model(x).numpy()
    layer_by_layer = wispy.compile_model(model, (x,), progress=False)
    default_forward = R.LoopedRNN.forward
    R.LoopedRNN.forward = wavefront_forward
    try:
        wave = wispy.compile_model(model, (x,), progress=False)
    finally:
        R.LoopedRNN.forward = default_forward
    err = float(np.abs(wave.run(x.numpy())[0] - ref).max())
    paths = {"layer by layer": layer_by_layer.save(tmp / "a.vmfb"), "wavefront": wave.save(tmp / "b.vmfb")}
    compare(f"GRU 2x1024 pruned 10x (wavefront max |err| {err:.1e})",
            {k: (lambda p=p: bench(p, [tmp / "x.npy"])) for k, p in paths.items()})


_GATES = """
    %one = arith.constant 1.0 : f32
    %ar = arith.addf %sr, %ir : f32
    %nr = arith.negf %ar : f32
    %er = math.exp %nr : f32
    %dr = arith.addf %er, %one : f32
    %r = arith.divf %one, %dr : f32
    %az = arith.addf %sz, %iz : f32
    %nz = arith.negf %az : f32
    %ez = math.exp %nz : f32
    %dz = arith.addf %ez, %one : f32
    %zz = arith.divf %one, %dz : f32
    %rn = arith.mulf %r, %sn : f32
    %an = arith.addf %in, %rn : f32
    %n = math.tanh %an : f32
    %omz = arith.subf %one, %zz : f32
    %t1 = arith.mulf %omz, %n : f32
    %t2 = arith.mulf %zz, %hv : f32
    %hn = arith.addf %t1, %t2 : f32
    linalg.yield %hn : f32"""


def gru_layer_mlir(fused: bool, units: int) -> str:
    """One GRU layer over STEPS frames, UNROLL steps per loop iteration. The product keeps
    4 row tiles of 16 in registers, as wispy-recurrent-matvec does on x86. Split: one
    product over the 3*units rows, then the gates. Fused: the r, z and n rows of the same
    units summed by one three-result reduction, the gates its elementwise consumer."""
    n1 = units // T
    cfg = ("{compilation_info = #iree_codegen.compilation_info<lowering_config = #iree_cpu.lowering_config<"
           "distribution = [4, 0, 0], vector_common_parallel = [4, 16, 0], vector_reduction = [0, 0, 1]>, "
           "translation_info = #iree_codegen.translation_info<pipeline = #iree_cpu.pipeline<DoubleTilingExpert>>>}")
    ht, gt = f"tensor<{n1}x{T}xf32>", f"tensor<3x{n1}x{T}xf32>"
    gate_maps = [f"affine_map<(t, i) -> ({g}, t, i)>" for g in range(3)]
    ident2 = "affine_map<(t, i) -> (t, i)>"
    w, x, o = "affine_map<(t, i, j) -> (t, j, i)>", "affine_map<(t, i, j) -> (j)>", "affine_map<(t, i, j) -> (t, i)>"
    if fused:
        wt = f"tensor<{n1}x{units}x{T}xf32>"
        wargs, wnames, wtypes = f"%Wr: {wt}, %Wz: {wt}, %Wn: {wt}", "%Wr, %Wz, %Wn", ", ".join([wt] * 3)
        product = f"""
  %s:3 = linalg.generic {{indexing_maps = [{w}, {w}, {w}, {x}, {o}, {o}, {o}], iterator_types = ["parallel", "parallel", "reduction"]}}
     ins(%Wr, %Wz, %Wn, %h : {wtypes}, tensor<{units}xf32>) outs(%f0, %f0, %f0 : {ht}, {ht}, {ht}) attrs = {cfg} {{
  ^bb0(%a: f32, %b: f32, %c: f32, %xv: f32, %o1: f32, %o2: f32, %o3: f32):
    %m1 = arith.mulf %a, %xv : f32
    %r1 = arith.addf %o1, %m1 : f32
    %m2 = arith.mulf %b, %xv : f32
    %r2 = arith.addf %o2, %m2 : f32
    %m3 = arith.mulf %c, %xv : f32
    %r3 = arith.addf %o3, %m3 : f32
    linalg.yield %r1, %r2, %r3 : f32, f32, f32
  }} -> ({ht}, {ht}, {ht})"""
        fill = f"%f0 = linalg.fill ins(%z : f32) outs(%e : {ht}) -> {ht}"
        empty = f"%e = tensor.empty() : {ht}"
        sums, sum_types, sum_maps = "%s#0, %s#1, %s#2", [ht] * 3, [ident2] * 3
    else:
        wt = f"tensor<{3 * n1}x{units}x{T}xf32>"
        wargs, wnames, wtypes = f"%W: {wt}", "%W", wt
        pt = f"tensor<{3 * n1}x{T}xf32>"
        product = f"""
  %s0 = linalg.generic {{indexing_maps = [{w}, {x}, {o}], iterator_types = ["parallel", "parallel", "reduction"]}}
     ins(%W, %h : {wt}, tensor<{units}xf32>) outs(%f0 : {pt}) attrs = {cfg} {{
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  }} -> {pt}
  %s3 = tensor.expand_shape %s0 [[0, 1], [2]] output_shape [3, {n1}, {T}] : {pt} into {gt}"""
        fill = f"%f0 = linalg.fill ins(%z : f32) outs(%e : {pt}) -> {pt}"
        empty = f"%e = tensor.empty() : {pt}"
        sums, sum_types, sum_maps = "%s3, %s3, %s3", [gt] * 3, gate_maps
    step = f"""
func.func private @step({wargs}, %g: {gt}, %h2: {ht}) -> {ht} {{
  %z = arith.constant 0.0 : f32
  %h = tensor.collapse_shape %h2 [[0, 1]] : {ht} into tensor<{units}xf32>
  {empty}
  {fill}{product}
  %e2 = tensor.empty() : {ht}
  %y = linalg.generic {{indexing_maps = [{", ".join(sum_maps + gate_maps + [ident2, ident2])}], iterator_types = ["parallel", "parallel"]}}
     ins({sums}, %g, %g, %g, %h2 : {", ".join(sum_types + [gt] * 3 + [ht])}) outs(%e2 : {ht}) {{
  ^bb0(%sr: f32, %sz: f32, %sn: f32, %ir: f32, %iz: f32, %in: f32, %hv: f32, %out: f32):{_GATES}
  }} -> {ht}
  return %y : {ht}
}}"""
    body, prev = [], "%h"
    for u in range(UNROLL):
        body += [f"    %k{u} = arith.addi %base, %c{u} : index",
                 f"    %g{u} = tensor.extract_slice %gi[%k{u}, 0, 0, 0] [1, 3, {n1}, {T}] [1, 1, 1, 1] : "
                 f"tensor<{STEPS}x3x{n1}x{T}xf32> to {gt}",
                 f"    %hs{u} = func.call @step({wnames}, %g{u}, {prev}) : ({wtypes}, {gt}, {ht}) -> {ht}"]
        prev = f"%hs{u}"
    consts = "\n".join(f"  %c{u} = arith.constant {u} : index" for u in range(UNROLL))
    return step + f"""
func.func @main({wargs}, %gi: tensor<{STEPS}x3x{n1}x{T}xf32>, %h0: {ht}) -> {ht} {{
{consts}
  %cn = arith.constant {STEPS // UNROLL} : index
  %one = arith.constant 1 : index
  %cu = arith.constant {UNROLL} : index
  %res = scf.for %it = %c0 to %cn step %one iter_args(%h = %h0) -> {ht} {{
    %base = arith.muli %it, %cu : index
{chr(10).join(body)}
    scf.yield {prev} : {ht}
  }}
  return %res : {ht}
}}"""


def fused_gates(tmp: Path, units_list) -> None:
    flags = _CPU_COMMON + host_cpu_flags()
    for units in units_list:
        rng = np.random.default_rng(0)
        w = (rng.standard_normal((3 * units, units)) * 0.03).astype(np.float32)
        tiles = lambda m: np.ascontiguousarray(m.reshape(-1, T, units).transpose(0, 2, 1))  # noqa: E731
        gi = rng.standard_normal((STEPS, 3, units // T, T)).astype(np.float32)
        np.save(tmp / "w.npy", tiles(w))
        for g in range(3):
            np.save(tmp / f"w{g}.npy", tiles(w[g * units:(g + 1) * units]))
        np.save(tmp / "gi.npy", gi)
        np.save(tmp / "h.npy", np.zeros((units // T, T), np.float32))
        mods, outs = {}, {}
        for fused in (False, True):
            src, vmfb = tmp / f"gru{int(fused)}.mlir", tmp / f"gru{int(fused)}.vmfb"
            src.write_text(gru_layer_mlir(fused, units))
            subprocess.run([tool_path("iree-compile"), str(src), "-o", str(vmfb), *flags], check=True)
            weights = [tmp / f"w{g}.npy" for g in range(3)] if fused else [tmp / "w.npy"]
            mods["fused" if fused else "split"] = (vmfb, weights + [tmp / "gi.npy", tmp / "h.npy"])
        for name, (vmfb, inputs) in mods.items():  # both forms compute the same layer
            run = subprocess.run([iree_tool("iree-run-module"), f"--module={vmfb}", "--function=main",
                                  *[f"--input=@{i}" for i in inputs], f"--output=@{tmp / name}.npy"],
                                 capture_output=True, text=True, check=True)
            outs[name] = np.load(tmp / f"{name}.npy")
        err = float(np.abs(outs["split"] - outs["fused"]).max())
        compare(f"one GRU layer, {units} units, {STEPS} steps (max |split - fused| {err:.1e})",
                {k: (lambda v=v: bench(*v)) for k, v in mods.items()})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("experiment", choices=["spin", "fused-gates", "wavefront"])
    ap.add_argument("--units", default="1024,256,64", help="fused-gates: GRU widths")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="wispy-step-") as tmp:
        if a.experiment == "spin":
            spin(Path(tmp))
        elif a.experiment == "wavefront":
            wavefront(Path(tmp))
        else:
            fused_gates(Path(tmp), [int(u) for u in a.units.split(",")])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Lone matmuls in the forms wispy could emit, timed back to back by `iree-benchmark-module`
on the host: what packing the operands for `linalg.mmt4d` is worth before writing a pass.

    .venv/bin/python benchmarks/matmul_forms.py [--repeat 5]

int8: Wav2letter's k=32 layer as a product, W[2000, 8000] x cols[8000, 199] (i8 x i8 -> i32):
    the data-tiled `linalg.matmul` (both operands packed at run time), and `linalg.mmt4d` on
    operands packed in 16x16x2 tiles, in one block or in blocks of 384 (by IREE's codegen),
    and in one block by IREE's ukernel.
float32: the GRU's second input projection, [100, 1024] x [1024, 3072]: `nn.Linear` as
    compile_model builds it (data-tiled matmul) against the same product as a 1x1 Conv1d,
    which wispy-conv1d-im2col packs (blocks of 384, and one block).
"""
from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch

import wispy
from wispy.targets import Target
from wispy.compiler.iree_tools import tool_path
from wispy.runtime.host import iree_tool

F, K, W = 2000, 8000, 199  # the k=32 layer: 2000 filters, 250 channels x 32 taps, 199 frames
T, K0 = 16, 2              # IREE's int8 tile on AVX-512-VNNI: 16x16, 2 reduction elements


def int8_matmul_mlir() -> str:
    return f"""func.func @main(%w: tensor<{F}x{K}xi8>, %c: tensor<{K}x{W}xi8>) -> tensor<{F}x{W}xi32> {{
  %z = arith.constant 0 : i32
  %e = tensor.empty() : tensor<{F}x{W}xi32>
  %a = linalg.fill ins(%z : i32) outs(%e : tensor<{F}x{W}xi32>) -> tensor<{F}x{W}xi32>
  %r = linalg.matmul ins(%w, %c : tensor<{F}x{K}xi8>, tensor<{K}x{W}xi8>) outs(%a : tensor<{F}x{W}xi32>) -> tensor<{F}x{W}xi32>
  return %r : tensor<{F}x{W}xi32>
}}"""


def int8_mmt4d_mlir(k_block: int) -> str:
    """mmt4d over packed operands, the reduction cut into blocks of `k_block` elements."""
    f1, w1, kk = -(-F // T), -(-W // T), K // K0
    n = max(1, -(-kk * K0 // k_block)) if k_block else 1
    bounds = [round(i * kk / n) for i in range(n + 1)]
    acc = f"tensor<{f1}x{w1}x{T}x{T}xi32>"
    lines = [f"func.func @main(%w: tensor<{f1}x{kk}x{T}x{K0}xi8>, %c: tensor<{w1}x{kk}x{T}x{K0}xi8>) -> {acc} {{",
             "  %z = arith.constant 0 : i32", f"  %e = tensor.empty() : {acc}",
             f"  %a0 = linalg.fill ins(%z : i32) outs(%e : {acc}) -> {acc}"]
    for i, (k0, k1) in enumerate(zip(bounds[:-1], bounds[1:])):
        m = k1 - k0
        lines += [
            f"  %w{i} = tensor.extract_slice %w[0, {k0}, 0, 0] [{f1}, {m}, {T}, {K0}] [1, 1, 1, 1]"
            f" : tensor<{f1}x{kk}x{T}x{K0}xi8> to tensor<{f1}x{m}x{T}x{K0}xi8>",
            f"  %c{i} = tensor.extract_slice %c[0, {k0}, 0, 0] [{w1}, {m}, {T}, {K0}] [1, 1, 1, 1]"
            f" : tensor<{w1}x{kk}x{T}x{K0}xi8> to tensor<{w1}x{m}x{T}x{K0}xi8>",
            f"  %a{i + 1} = linalg.mmt4d ins(%w{i}, %c{i} : tensor<{f1}x{m}x{T}x{K0}xi8>,"
            f" tensor<{w1}x{m}x{T}x{K0}xi8>) outs(%a{i} : {acc}) -> {acc}"]
    lines.append(f"  return %a{n} : {acc}\n}}")
    return "\n".join(lines)


def bench(vmfb: Path, inputs: list[str], repeat: int) -> float:
    out = subprocess.run([iree_tool("iree-benchmark-module"), "--device=local-task", f"--module={vmfb}",
                          "--function=main", *[f"--input={i}" for i in inputs],
                          f"--benchmark_repetitions={repeat}", "--benchmark_min_time=10x"],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"_median\s+([\d.]+) ms", out)
    if not m:
        raise RuntimeError(f"no median in iree-benchmark-module's output:\n{out[-2000:]}")
    return float(m.group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    flags = Target.parse("host").iree_flags()
    with tempfile.TemporaryDirectory(prefix="wispy-mm-") as tmp:
        d = Path(tmp)
        f1, w1 = -(-F // T), -(-W // T)
        packed_in = [f"{f1}x{K // K0}x{T}x{K0}xi8=1", f"{w1}x{K // K0}x{T}x{K0}xi8=1"]
        cases = [("int8 data-tiled matmul", int8_matmul_mlir(), [], [f"{F}x{K}xi8=1", f"{K}x{W}xi8=1"]),
                 ("int8 mmt4d, one block", int8_mmt4d_mlir(0), [], packed_in),
                 ("int8 mmt4d, blocks of 384", int8_mmt4d_mlir(384), [], packed_in),
                 ("int8 mmt4d, one block, ukernel", int8_mmt4d_mlir(0), ["--iree-llvmcpu-enable-ukernels=mmt4d"],
                  packed_in)]
        macs = F * K * W
        for label, text, extra, inputs in cases:
            src, vmfb = d / "m.mlir", d / "m.vmfb"
            src.write_text(text)
            subprocess.run([tool_path("iree-compile"), str(src), *flags, *extra, "-o", str(vmfb)], check=True)
            ms = bench(vmfb, inputs, a.repeat)
            print(f"{label:44s} {ms:7.2f} ms  {macs / ms / 1e6:6.1f} GMAC/s", flush=True)

        torch.manual_seed(0)
        x = torch.randn(100, 1024)
        np.save(d / "x.npy", x.numpy())
        np.save(d / "xc.npy", x.T.contiguous()[None].numpy())
        lin, conv = torch.nn.Linear(1024, 3072).eval(), torch.nn.Conv1d(1024, 3072, 1).eval()
        for label, model, arg, pipe in (
                ("f32 Linear (data-tiled matmul)", lin, "x", None),
                ("f32 1x1 Conv1d, packed, blocks of 384", conv, "xc", "builtin.module(wispy-conv1d-im2col{k-block=384})"),
                ("f32 1x1 Conv1d, packed, one block (the default)", conv, "xc", None)):
            xin = torch.from_numpy(np.load(d / f"{arg}.npy"))
            cm = wispy.compile_model(model, (xin,), progress=False,
                                     **({} if pipe is None else dict(wispy_pipeline=pipe)))
            vmfb = cm.save(d / "m.vmfb")
            ms = bench(vmfb, [f"@{d / f'{arg}.npy'}"], a.repeat)
            print(f"{label:44s} {ms:7.2f} ms  {100 * 1024 * 3072 / ms / 1e6:6.1f} GMAC/s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

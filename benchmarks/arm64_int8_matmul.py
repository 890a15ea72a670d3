"""IREE's arm64 int8 matmul alone, by shape: instructions per call under qemu and multiply-adds
per instruction, for the shapes of Wav2letter's k=7 layers (six Winograd positions of 50 tiles,
k = 3 pieces x 250 channels, 250 channels out; the direct layer's 200 x 1750) and the same with
rows or columns padded to whole tiles.

    .venv/bin/python benchmarks/arm64_int8_matmul.py [--cpu-features +dotprod,+i8mm]

Products whose rows and columns are both ragged (50 x 250) left IREE's fast path; this is why
wispy pads their rows on arm64 and armv7 (wispy.dialects.quant_lowering.LoweringOptions.pad_ragged). The
builds here are plain torch._int_mm, which that padding does not touch unless the model is a
wispy quantized layer.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from torch import nn

import wispy
from wispy.runtime.arm64 import count_instructions_arm64

SHAPES = [(50, 750, 250, 6), (56, 750, 250, 6), (48, 750, 250, 6), (50, 750, 256, 6), (50, 752, 250, 6),
          (200, 1750, 250, 1)]


class Products(nn.Module):
    """n products a[j] @ w[j]^T, int8 -> int32, the weights constant."""

    def __init__(self, K: int, N: int, n: int):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("w", torch.randint(-127, 128, (n, N, K), generator=g, dtype=torch.int8))
        self.n = n

    def forward(self, a):
        return torch.stack([torch._int_mm(a[j], self.w[j].t()) for j in range(self.n)])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-features", default="")
    a = ap.parse_args()
    print(f"{'n x M x K @ K x N':>24s} {'instructions':>14s} {'MAC/instr':>10s}")
    with tempfile.TemporaryDirectory() as tmp:
        for M, K, N, n in SHAPES:
            x = torch.randint(-127, 128, (n, M, K), dtype=torch.int8)
            cm = wispy.compile_model(Products(K, N, n), (x,), target="arm64", cpu_features=a.cpu_features,
                                     progress=False)
            count = count_instructions_arm64(cm.save(Path(tmp) / "m.vmfb"), [x.numpy()])
            print(f"{f'{n} x {M}x{K} @ {K}x{N}':>24s} {count:14,d} {n * M * K * N / count:10.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

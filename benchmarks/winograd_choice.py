"""Per-layer Winograd choice measured on the target (compile_model(winograd="measure")),
against every layer direct int8 and every layer F(4,3), for the full Wav2letter.

    .venv/bin/python benchmarks/winograd_choice.py [--target arm64] [--cpu-features +dotprod,+i8mm]

Each eligible layer is compiled alone in direct, F(2,3) and F(4,3) and measured (arm64:
instructions per call under qemu); the whole model is then compiled with the cheapest
mode per layer and counted beside the all-direct and all-F(4,3) builds.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

import wispy
from wispy.compress import quantize
from wispy.models import acoustic
from wispy.runtime.arm64 import count_instructions_arm64


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="arm64", choices=["arm64"])
    ap.add_argument("--cpu-features", default="")
    ap.add_argument("--frames", type=int, default=400)
    a = ap.parse_args()
    torch.manual_seed(0)
    model = acoustic.Wav2Letter().eval()
    x = torch.randn(1, 40, a.frames)
    q = quantize(model, torch.randn(2, 40, a.frames), method="ptq", winograd="f43", overflow_ratio=None,
                 strip=False, progress=False)
    builds = {"measured": "measure", "direct": "off", "f43": "f43"}
    counts = {}
    with tempfile.TemporaryDirectory(prefix="wispy-wgc-") as tmp:
        for label, wg in builds.items():
            cm = wispy.compile_model(q, (x,), target=a.target, cpu_features=a.cpu_features, winograd=wg,
                                     progress=False)
            for r in cm.remarks:
                if r.startswith("winograd choice"):
                    print(" ", r, flush=True)
            vmfb = cm.save(Path(tmp) / f"{label}.vmfb")
            counts[label] = count_instructions_arm64(vmfb, [x.numpy()], iterations=1, warmup=1)
            print(f"{label:9s} {counts[label]:>15,} instructions per inference", flush=True)
    print(f"measured choice: {counts['direct'] / counts['measured']:.2f}x fewer than all direct, "
          f"{counts['f43'] / counts['measured']:.2f}x fewer than all F(4,3) "
          f"(arm64{a.cpu_features and ' ' + a.cpu_features})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

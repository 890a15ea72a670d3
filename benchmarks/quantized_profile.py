"""Where a quantized model's host time goes: IREE's profiler on each int8 build (direct,
F(2,3), F(4,3)), its dispatches grouped by kind, one thread (`local-sync`), back to back.

    .venv/bin/python benchmarks/quantized_profile.py [--model wav2letter] [--modes off,f43] [--runs 10]

Groups: "int8 products (wispy's VNNI kernel)", IREE's own int8 matmuls, "elementwise" (the
quantization, Winograd's input and output transforms, the requantization and bias), and
the rest by IREE's dispatch names. Same models and post-training quantization as
benchmarks/quantized_conv.py.
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import wispy
from wispy.compress import quantize

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gru_time_breakdown import GAPS, profile  # noqa: E402
from quantized_conv import build  # noqa: E402


def group(name: str) -> str:
    short = re.sub(r"^.*_dispatch_\d+_", "", name)
    if "wispy_int8_vnni" in name:
        return "int8 products (wispy's VNNI kernel)"
    if re.search(r"matmul.*i8|mmt4d.*i8", short):
        return "int8 products (IREE)"
    return re.sub(r"_\d+.*$", "", short) or short


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="wav2letter")
    ap.add_argument("--modes", default="off,f43", help="quantize(winograd=...) per build")
    ap.add_argument("--frames", type=int, default=400)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--int8-kernel", default="auto", choices=["auto", "off"])
    a = ap.parse_args()
    model = build(a.model)
    torch.manual_seed(0)
    x = torch.randn(1, 40, a.frames)
    calib = torch.randn(2, 40, a.frames)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        np.save(work / "x.npy", x.numpy())
        for mode in a.modes.split(","):
            q = quantize(model, calib, method="ptq", winograd=mode, overflow_ratio=None, progress=False)
            cm = wispy.compile_model(q, (x,), progress=False, int8_kernel=a.int8_kernel)
            vmfb = cm.save(work / f"{mode}.vmfb")
            res = profile(vmfb, work / "x.npy", a.runs, work, "local-sync", group=group)
            wall, groups = res["wall_ms"], {g: ms for g, ms in res["groups_ms"].items() if g != GAPS}
            print(f"{a.model}, winograd={mode}, int8_kernel={a.int8_kernel}: {wall:.2f} ms per inference "
                  f"(one thread, back to back), {res['dispatches']:.0f} dispatches, {sum(groups.values()):.2f} ms:")
            for g, ms in sorted(groups.items(), key=lambda kv: -kv[1]):
                print(f"  {ms:7.2f} ms  {g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

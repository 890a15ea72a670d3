"""int8 Conv1D models compiled by wispy: float32 vs int8 direct vs int8 Winograd F(2,3) / F(4,3).

For the full-size Wav2Letter and ConvDFSMN (input 1x40x400), compiles

    float32   the float model
    int8      wispy.compress.quantize(..., winograd="off")          every conv direct int8
    f23, f43  quantize(..., winograd="f23"/"f43", overflow_ratio=None)  every stride-1, >=3-tap,
              groups-1 conv as int8 Winograd (the overflow rule is off: the mode is forced)

(post-training quantization on random calibration input: this measures speed, not accuracy)
and reports, side by side, the aarch64 instructions per inference under qemu (deterministic)
and the host time (interleaved round-robin, medians; noisy on a shared machine), with ratios.

    python benchmarks/quantized_conv.py [--models wav2letter,convdfsmn[,convdfsmn-k3]] [--repeat 10] [--no-arm64]
                                        [--arm64-features +dotprod,+i8mm] [--int8-kernel both]

On a host with AVX-512 VNNI the int8 builds run their products on wispy's own kernel
(wispy-int8-vnni); `--int8-kernel both` (the default) also times them on IREE's int8
matmul, as the rows '<variant>/iree'.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import wispy
from wispy._timing import time_round_robin as _time_round_robin
from wispy.compress import quantize
from wispy.models import acoustic


def build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = {"wav2letter": acoustic.Wav2Letter, "convdfsmn": acoustic.ConvDFSMN,
             # ConvDFSMN whose DFSMN hidden layers are k=3 convolutions (hidden_kernel=3):
             # how far Winograd goes when most of the work is k=3 Conv1d
             "convdfsmn-k3": lambda: acoustic.ConvDFSMN(hidden_kernel=3)}[name]()
    for m in model.modules():  # non-trivial BatchNorm statistics (folded by quantize)
        if isinstance(m, torch.nn.BatchNorm1d):
            with torch.no_grad():
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def variants(model, calib) -> dict:
    out = {"float32": model}
    for name, wg in (("int8", "off"), ("f23", "f23"), ("f43", "f43")):
        t = time.perf_counter()
        q = quantize(model, calib, method="ptq", winograd=wg, overflow_ratio=None, progress=False)
        modes = [r["mode"] for r in q.wispy_quant["layers"].values()]
        print(f"  quantized {name}: {time.perf_counter() - t:.0f} s, modes "
              + ", ".join(f"{m} x{modes.count(m)}" for m in sorted(set(modes))), flush=True)
        out[name] = q
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="wav2letter,convdfsmn")
    ap.add_argument("--frames", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--no-arm64", action="store_true")
    ap.add_argument("--no-host", action="store_true", help="arm64 counts only")
    ap.add_argument("--json", default=None)
    ap.add_argument("--arm64-features", default="", help="arm64 CPU features, e.g. +dotprod,+i8mm")
    ap.add_argument("--int8-kernel", default="both", choices=["auto", "off", "both"],
                    help="int8 products on the host: wispy's VNNI kernel (auto), IREE's (off), or both "
                         "side by side (the IREE builds as '<variant>/iree' rows)")
    ap.add_argument("--iree-flag", action="append", default=[],
                    help="an iree-compile flag after wispy's own (the last occurrence wins), e.g. "
                         "--iree-flag=--iree-llvmcpu-enable-ukernels=none")
    a = ap.parse_args(argv)
    results = {}
    for mname in a.models.split(","):
        if mname == "convdfsmn" and getattr(acoustic, "ConvDFSMN", None) is None:
            print("ConvDFSMN is not in wispy.models.acoustic: skipped")
            continue
        print(f"== {mname} (1x40x{a.frames})", flush=True)
        model = build(mname)
        x = torch.randn(1, 40, a.frames)
        calib = torch.randn(2, 40, a.frames)
        models = variants(model, calib)
        res = {k: {} for k in models}
        runners = {}
        with tempfile.TemporaryDirectory(prefix="wispy-qbench-") as tmp:
            for k, m in models.items():
                with torch.no_grad():
                    ref = m(x).numpy()
                jobs = [("host", k, a.int8_kernel if a.int8_kernel != "both" else "auto")] if not a.no_host else []
                if not a.no_host and a.int8_kernel == "both" and k != "float32":
                    jobs.append(("host", f"{k}/iree", "off"))
                jobs += [] if a.no_arm64 else [("arm64", k, "auto")]
                for target, label, kernel in jobs:
                    res.setdefault(label, {})
                    t = time.perf_counter()
                    cm = wispy.compile_model(m, (x,), target=target, progress=False, iree_flags=a.iree_flag,
                                             cpu_features=a.arm64_features if target == "arm64" else "",
                                             int8_kernel=kernel)
                    cs = time.perf_counter() - t
                    res[label][f"compile_{target}_s"] = cs
                    if target == "host":
                        y = cm(x.numpy())
                        res[label]["max_abs_err"] = float(np.abs(y - ref).max())
                        runners[label] = (lambda cm=cm, xn=x.numpy(): cm.run(xn))
                    else:
                        from wispy.runtime.arm64 import count_instructions_arm64

                        vmfb = cm.save(Path(tmp) / f"{mname}-{label}.vmfb")
                        t = time.perf_counter()
                        res[label]["arm64_insns"] = count_instructions_arm64(vmfb, [x.numpy()], iterations=1,
                                                                         warmup=1)
                        res[label]["count_s"] = time.perf_counter() - t
                    print(f"  {label:8s} {target:5s} compiled in {cs:.0f} s"
                          + (f", {res[label]['arm64_insns']:,} insns" if target == "arm64" else
                             f", max |err| vs PyTorch {res[label]['max_abs_err']:.1e}"), flush=True)
            times = _time_round_robin(runners, a.repeat) if runners else {}
        for k in res:
            if k not in times:
                continue
            t = np.array(times[k])
            res[k]["host_ms"] = float(np.median(t))
            res[k]["host_p10_ms"], res[k]["host_p90_ms"] = float(np.percentile(t, 10)), float(np.percentile(t, 90))
        results[mname] = res
        print(table(mname, res), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))
    return 0


def table(mname: str, res: dict) -> str:
    f32, i8 = res["float32"], res["int8"]
    lines = [f"{mname}: arm64 instructions per inference (qemu) and host median time",
             f"{'variant':8s} {'arm64 insns':>16s} {'vs f32':>7s} {'vs int8':>8s} {'host ms':>9s} "
             f"{'p10-p90':>13s} {'vs f32':>7s} {'vs int8':>8s} {'max|err|':>9s}"]
    for k, r in res.items():
        ins = r.get("arm64_insns")
        a_f = f"{f32['arm64_insns'] / ins:.2f}x" if ins and f32.get("arm64_insns") else "-"
        a_i = f"{i8['arm64_insns'] / ins:.2f}x" if ins and i8.get("arm64_insns") else "-"
        if "host_ms" in r:
            host = (f"{r['host_ms']:9.2f} {r['host_p10_ms']:6.1f}-{r['host_p90_ms']:<6.1f} "
                    f"{f32['host_ms'] / r['host_ms']:6.2f}x {i8['host_ms'] / r['host_ms']:7.2f}x {r['max_abs_err']:9.1e}")
        else:
            host = f"{'-':>9s} {'-':>13s} {'-':>7s} {'-':>8s} {'-':>9s}"
        lines.append(f"{k:8s} {(f'{ins:,}' if ins else '-'):>16s} {a_f:>7s} {a_i:>8s} {host}")
    lines.append("(ratios > 1: the variant is cheaper/faster; max|err| is against the variant's own PyTorch "
                 "module, log_softmax output)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

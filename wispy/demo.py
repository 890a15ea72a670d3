"""`wispy demo`: the main job on the model and utterance shipped in the repo.

Compiles the demo speech model for host, arm64 and Vulkan, runs the shipped utterance
on each (arm64 under qemu, Vulkan on lavapipe here), checks every output against
PyTorch, and times the host module against PyTorch eager and ONNX Runtime.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

TOLERANCE = 1e-4  # max |log-prob difference| accepted against PyTorch (f32)


def run_demo(out_dir: str = "out/demo", targets=("host", "arm64", "vulkan"), repeat: int = 20) -> int:
    from .bench import run_benchmark
    from .compiler.api import compile_model
    from .models import demo_features, demo_model

    feats = demo_features()
    text = (Path(__file__).parent / "models" / "data" / "demo_utterance.txt").read_text().strip()
    x = torch.from_numpy(feats)[None]
    model = demo_model()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"wispy demo: {type(model).__name__} ({n_params / 1e6:.2f}M parameters) on the shipped utterance")
    print(f'  "{text}" (espeak-ng, {feats.shape[0] / 100:.2f} s, {feats.shape[0]} frames x {feats.shape[1]} log-mel)')
    with torch.no_grad():
        ref = model(x).numpy()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "input.npy", feats[None])
    print(f"\n{'target':<8} {'compile s':>9} {'max |err|':>10} {'same argmax':>12}  runs on")
    failures = 0
    compiled = {}
    for name in targets:
        kw = {"vulkan_target": "lavapipe"} if name == "vulkan" else {}
        t = time.perf_counter()
        cm = compile_model(model, (x,), target=name, progress=False, **kw)
        cs = time.perf_counter() - t
        compiled[name] = cm
        path = cm.save(out / f"model-{name}.vmfb")
        y = cm.run(feats[None])[0]
        err = float(np.abs(y - ref).max())
        same = float((y.argmax(-1) == ref.argmax(-1)).mean())
        where = {"host": "host CPU", "qemu": "qemu-aarch64", "vulkan": "lavapipe"}.get(cm.target.runs_here, "-")
        ok = err <= TOLERANCE
        failures += not ok
        print(f"{name:<8} {cs:>9.1f} {err:>10.1e} {same:>11.0%}  {where}{'' if ok else '  MISMATCH'}  -> {path}")
    print(f"\nrun a saved module yourself:\n  iree-run-module --module={out / 'model-host.vmfb'} "
          f"--function=main --input=@{out / 'input.npy'}")
    print("\nspeed on this host (same input, interleaved runs):")
    res = run_benchmark(model, (x,), target="host", repeat=repeat, peers=["wispy", "torch", "onnxruntime"],
                        name="demo model", echo=False,
                        precompiled={"wispy": compiled["host"]} if "host" in compiled else None)
    audio_ms = feats.shape[0] * 10.0
    for p in res.peers:
        if p.median_ms:
            print(f"  {p.name:<12} {p.median_ms:7.2f} ms  real-time factor {p.median_ms / audio_ms:.4f}"
                  f"  ({(res.ratio(p.name) or 0):.2f}x wispy's time)")
    return 1 if failures else 0

"""`wispy demo`: the main job on the model and utterance shipped in the repo.

The model is `gru-small`, CTC-trained on wispy's espeak-ng corpus; the utterance is
TIMIT's SA1 sentence spoken by a voice from the corpus's test split (never heard in
training). The demo compiles the model for host, arm64 and Vulkan, transcribes the
utterance on each (arm64 under qemu, Vulkan on lavapipe here), prints the phones, the
phone error rate against espeak-ng's own transcription and the agreement with PyTorch,
and times the host module against PyTorch eager and ONNX Runtime.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

TOLERANCE = 1e-4  # max |log-prob difference| accepted against PyTorch (f32)


def run_demo(out_dir: str = "out/demo", targets=("host", "arm64", "vulkan"), repeat: int = 20) -> int:
    from wispy.bench.harness import run_benchmark
    from wispy.compiler.api import compile_model
    from wispy.metrics import error_rate, greedy_ctc_decode
    from wispy.models import demo_features, demo_model

    data = Path(__file__).parent / "models" / "data"
    info = json.loads((data / "demo_utterance.json").read_text())
    feats = demo_features()
    x = torch.from_numpy(feats)[None]
    model = demo_model()
    phones = model.wispy_config["phones"]
    n_params = sum(p.numel() for p in model.parameters())
    ref_phones = info["phones"]
    print(f"wispy demo: {model.wispy_config['name']} ({type(model).__name__}, {n_params / 1e3:.0f}k parameters, "
          "CTC-trained on wispy's espeak-ng corpus)")
    print(f'  utterance: "{info["text"]}"')
    print(f"  voice {info['voice']}+{info['variant']} from the corpus's test split, {feats.shape[0] / 100:.2f} s, "
          f"{feats.shape[0]} frames x {feats.shape[1]} log-mel")
    print(f"  reference phones (espeak-ng): {' '.join(ref_phones)}")
    with torch.no_grad():
        ref = model(x).numpy()
    torch_hyp = [phones[i] for i in greedy_ctc_decode(ref[0])]
    print(f"  PyTorch transcription:        {' '.join(torch_hyp)}   PER {error_rate([ref_phones], [torch_hyp]):.1%}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "input.npy", feats[None])
    print(f"\n{'target':<8} {'compile s':>9} {'max |err|':>10} {'PER':>6}  {'same phones as PyTorch':<22} runs on")
    failures = 0
    compiled = {}
    for name in targets:
        kw = {"vulkan_target": "lavapipe"} if name == "vulkan" else {}
        if name == "host":
            kw["host_driver"] = "auto"  # the faster of IREE's CPU drivers for this model, timed
        t = time.perf_counter()
        cm = compile_model(model, (x,), target=name, progress=False, **kw)
        cs = time.perf_counter() - t
        compiled[name] = cm
        path = cm.save(out / f"model-{name}.vmfb")
        y = cm.run(feats[None])[0]
        err = float(np.abs(y - ref).max())
        hyp = [phones[i] for i in greedy_ctc_decode(y[0])]
        per = error_rate([ref_phones], [hyp])
        where = {"host": "host CPU", "qemu": "qemu-aarch64", "vulkan": "lavapipe"}.get(cm.target.runs_here, "-")
        ok = err <= TOLERANCE and hyp == torch_hyp
        failures += not ok
        print(f"{name:<8} {cs:>9.1f} {err:>10.1e} {per:>6.1%}  {'yes' if hyp == torch_hyp else 'NO':<22} "
              f"{where}{'' if ok else '  MISMATCH'}  -> {path}")
    device = f"--device={compiled['host'].host_driver} " if "host" in compiled else ""
    print(f"\nrun a saved module yourself:\n  iree-run-module --module={out / 'model-host.vmfb'} {device}"
          f"--function=main --input=@{out / 'input.npy'}")
    for cm in compiled.values():  # lavapipe's device spins two threads while it lives
        if cm.target.name == "vulkan":
            cm.release()
    print("\nspeed on this host (same input, interleaved runs):")
    res = run_benchmark(model, (x,), target="host", repeat=repeat, peers=["wispy", "torch", "onnxruntime"],
                        name="demo model", echo=False,
                        precompiled={"wispy": compiled["host"]} if "host" in compiled else None)
    audio_ms = feats.shape[0] * 10.0
    wispy_ms = res.peer("wispy").median_ms if res.peer("wispy") else None
    for p in res.peers:
        if p.median_ms:
            rel = f"  ({p.median_ms / wispy_ms:.2f}x wispy's time)" if wispy_ms else ""
            print(f"  {p.name:<12} {p.median_ms:7.2f} ms  real-time factor {p.median_ms / audio_ms:.4f}{rel}")
    return 1 if failures else 0

"""A trained, pruned GRU checkpoint through wispy's whole-recurrence kernel: a few test
utterances of the corpus, each compiled at its own length (the kernel's sizes are
static; `wispy eval --compiled` builds one module for every length, which keeps the
loop), against PyTorch: the largest log-probability difference and whether greedy CTC
decoding agrees.

    .venv/bin/python benchmarks/recurrent_kernel_check.py CHECKPOINT [--utterances 0,7,123]
"""
import argparse

import numpy as np
import torch

import wispy
from wispy.compress.block_sparse import load_pruned
from wispy.metrics import greedy_ctc_decode
from wispy.data.loaders import apply_norm as _apply_norm, load_examples as _load


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", help="a pruned checkpoint (wispy prune / prune-sweep / finetune)")
    ap.add_argument("--corpus", default="out/corpus")
    ap.add_argument("--utterances", default="0,7,123", help="test-split indices")
    a = ap.parse_args()
    model = load_pruned(a.checkpoint).eval()
    cfg = model.wispy_config
    data = _load(a.corpus, "test", cfg.get("feature", "logmel"), cfg.get("n_mels", 40))
    worst = 0.0
    for i in (int(s) for s in a.utterances.split(",")):
        x = torch.from_numpy(_apply_norm(data[i][0], cfg.get("norm")))[None]
        cm = wispy.compile_model(model, (x,), progress=False, explain=True, host_driver="local-sync")
        layers = [r for r in cm.remarks if "wispy-recurrent-kernel" in r and "lowered" in r]
        with torch.no_grad():
            ref = model(x).numpy()
        got = np.asarray(cm(x))
        diff = float(np.abs(ref - got).max())
        worst = max(worst, diff)
        same = greedy_ctc_decode(ref[0]) == greedy_ctc_decode(got[0])
        print(f"utterance {i}: {x.shape[1]} frames, {len(layers)} GRU layers in the kernel, "
              f"max |log-prob diff| {diff:.1e}, same greedy decoding: {same}", flush=True)
    return 0 if worst < 1e-4 else 1


if __name__ == "__main__":
    raise SystemExit(main())

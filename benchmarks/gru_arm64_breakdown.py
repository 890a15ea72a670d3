"""Where the pruned GRU 2x1024's arm64 instructions go: the whole model and its pieces,
each compiled alone for arm64 and counted under qemu (instructions per inference).

    .venv/bin/python benchmarks/gru_arm64_breakdown.py [--prune 10]

Pieces: each GRU layer alone (its input projection over all frames plus the
whole-recurrence kernel), the output layer (Linear + log_softmax), and layer 2's input
projection as the batched matmul over its compact blocks that the kernel's lowering
emits (same shapes, random values), with its multiply-adds per instruction.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

import wispy
from wispy.compress import prune_block_sparse
from wispy.models.acoustic import GRUAcousticModel
from wispy.dialects import bspc
from wispy.runtime.arm64 import count_instructions_arm64


class OneLayer(nn.Module):
    def __init__(self, gru: nn.GRU, k: int):
        super().__init__()
        w = getattr(gru, f"weight_ih_l{k}")
        self.rnn = nn.GRU(w.shape[1], gru.hidden_size, batch_first=True)
        for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(self.rnn, f"{n}_l0").data.copy_(getattr(gru, f"{n}_l{k}").data)

    def forward(self, x):
        return self.rnn(x)[0]


class Head(nn.Module):
    def __init__(self, head: nn.Linear):
        super().__init__()
        self.head = head

    def forward(self, y):
        return torch.log_softmax(self.head(y), dim=-1)


class BatchedBlocks(nn.Module):
    """x [nb, P, c] @ values [nb, c, r]: one bucket of a block-sparse projection."""

    def __init__(self, nb: int, c: int, r: int):
        super().__init__()
        self.w = nn.Parameter(torch.randn(nb, c, r))

    def forward(self, x):
        return torch.bmm(x, self.w)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prune", type=float, default=10.0)
    ap.add_argument("--frames", type=int, default=100)
    a = ap.parse_args()
    torch.manual_seed(0)
    model = GRUAcousticModel().eval()
    prune_block_sparse(model, rate=a.prune, block="cols:4", prune="rows", layers="rnn", uniform=True)
    T, H = a.frames, model.rnn.hidden_size
    x = torch.randn(1, T, 153, generator=torch.Generator().manual_seed(1))
    w_ih1 = model.rnn.weight_ih_l1.detach().numpy()
    buckets = bspc.pack(w_ih1, bspc.detect(w_ih1)[0]).buckets
    pieces = {"whole model": (model, x),
              "layer 1 (projection + kernel)": (OneLayer(model.rnn, 0).eval(), x),
              "layer 2 (projection + kernel)": (OneLayer(model.rnn, 1).eval(), torch.randn(1, T, H)),
              "output layer": (Head(model.head).eval(), torch.randn(1, T, H))}
    macs = {}
    for k, bk in enumerate(buckets):
        nb, r, c = bk.values.shape
        name = f"layer 2 projection, bucket {k}: {nb} x [{T}x{c}] @ [{c}x{r}]"
        pieces[name] = (BatchedBlocks(nb, c, r).eval(), torch.randn(nb, T, c))
        macs[name] = nb * T * c * r
    with tempfile.TemporaryDirectory() as tmp:
        print(f"GRU 2x{H} pruned {a.prune:g}x, T={T}: arm64 instructions per inference (qemu)")
        for name, (m, inp) in pieces.items():
            cm = wispy.compile_model(m, (inp,), target="arm64", progress=False)
            path = cm.save(Path(tmp) / "m.vmfb")
            n = count_instructions_arm64(path, [inp.numpy()], parameters=cm.parameters_path,
                                         iterations=2, warmup=1)
            extra = f"  ({macs[name] / n:.2f} multiply-adds per instruction)" if name in macs else ""
            print(f"  {name:58s} {n / 1e6:8.2f} M{extra}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

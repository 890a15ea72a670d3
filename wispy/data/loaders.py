"""Examples for training and evaluation: a split's (features, target ids), normalisation, and
length-sorted padded batches."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from wispy.data.vocab import text_to_ids, vocabulary


def load_examples(corpus_dir, split, feature, n_mels, units="phones"):
    """[(features [T, F], target ids)] of a split; targets are phone ids or letter ids."""
    from wispy.data.corpus import load_split

    data = load_split(corpus_dir, split, feature=feature, n_mels=n_mels)
    if units == "chars":
        return [(x, text_to_ids(r["text"])) for x, _, r in data]
    vocabulary(corpus_dir, units)  # validates `units`
    return [(x, ids) for x, ids, _ in data]


def norm_stats(data) -> dict:
    allf = np.concatenate([x for x, _ in data], axis=0).astype(np.float64)
    return {"mean": allf.mean(0).tolist(), "std": (allf.std(0) + 1e-5).tolist()}


def apply_norm(x: np.ndarray, norm: Optional[dict]) -> np.ndarray:
    if not norm:
        return np.ascontiguousarray(x, dtype=np.float32)
    return ((x - np.asarray(norm["mean"], np.float32)) / np.asarray(norm["std"], np.float32)).astype(np.float32)


def length_batches(lengths: list[int], batch_size: int, rng: Optional[np.random.Generator]) -> list[list[int]]:
    """Indices sorted by length, cut into batches; the batch order is shuffled by `rng`."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def collate(items):
    """[(x [T, F] normalised, ids)] -> padded [B, T, F], lengths, concatenated targets, target lengths."""
    lengths = torch.tensor([x.shape[0] for x, _ in items])
    x = torch.zeros(len(items), int(lengths.max()), items[0][0].shape[1])
    for i, (f, _) in enumerate(items):
        x[i, :f.shape[0]] = torch.from_numpy(f)
    targets = torch.tensor([p for _, ids in items for p in ids], dtype=torch.long)
    tlen = torch.tensor([len(ids) for _, ids in items])
    return x, lengths, targets, tlen

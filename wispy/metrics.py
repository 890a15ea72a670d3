"""Recognition accuracy: edit distance, error rates (PER/WER/CER) and greedy CTC decoding."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def edit_distance(ref: Sequence, hyp: Sequence) -> tuple[int, int, int]:
    """(substitutions, deletions, insertions) of a minimum-cost (Levenshtein, unit costs)
    alignment of `hyp` to `ref`, found by backtracing the DP table. Among equal-cost
    alignments the backtrace prefers match/substitution, then deletion, then insertion."""
    ref, hyp = list(ref), list(hyp)
    n, m = len(ref), len(hyp)
    d = np.zeros((n + 1, m + 1), dtype=np.int64)
    d[:, 0] = np.arange(n + 1)
    d[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i, j] = min(d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]), d[i - 1, j] + 1, d[i, j - 1] + 1)
    subs = dels = ins = 0
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and d[i, j] == d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            subs += ref[i - 1] != hyp[j - 1]
            i, j = i - 1, j - 1
        elif i > 0 and d[i, j] == d[i - 1, j] + 1:
            dels += 1
            i -= 1
        else:
            ins += 1
            j -= 1
    return int(subs), dels, ins


def error_rate(refs: Sequence[Sequence], hyps: Sequence[Sequence]) -> float:
    """Sum of edits (S + D + I) over sum of reference lengths: PER on phone sequences, WER on
    word lists, CER on strings. Empty references add their insertions to the numerator only;
    if every reference is empty the rate is 0.0 when there are no edits and inf otherwise."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    edits = sum(sum(edit_distance(r, h)) for r, h in zip(refs, hyps))
    total = sum(len(r) for r in refs)
    if total == 0:
        return 0.0 if edits == 0 else float("inf")
    return edits / total


def greedy_ctc_decode(logprobs, blank: int = 0) -> list[int]:
    """Best-path CTC decoding of a [T, C] score matrix (log-probabilities, probabilities or
    logits): argmax per frame, collapse repeats, drop blanks."""
    x = np.asarray(logprobs)
    if x.ndim != 2:
        raise ValueError(f"expected [T, C] scores, got shape {x.shape}")
    out, prev = [], None
    for k in x.argmax(axis=1).tolist() if x.shape[0] else []:
        if k != prev and k != blank:
            out.append(int(k))
        prev = k
    return out

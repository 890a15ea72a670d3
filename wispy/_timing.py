"""Process settings for timing runtimes side by side (no torch import here)."""
from __future__ import annotations

import os
import time
from typing import Callable


def passive_openmp_waits() -> None:
    """Make PyTorch's OpenMP threads sleep, not spin, when they wait. Must run before torch
    is imported: libgomp reads it once, when it loads.

    In a process that times several runtimes in turn, the spinning threads take the cores
    the next runtime needs, even after the benchmarks' 0.1 s pause; PyTorch's own times do
    not suffer (docs/design/host-runtime.md#openmp-threads-wait-passively)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# Idle time before each timed call. PyTorch's OpenMP threads and ONNX Runtime's thread
# pool spin for a while after a call returns; in deployment only one runtime runs, so
# each call gets a quiet machine (docs/design/host-runtime.md#idle-before-each-timed-call).
SETTLE_S = 0.1


def time_round_robin(runners: dict[str, Callable], repeat: int, warmup: int = 2,
                      settle_s: float = SETTLE_S, warm: bool = False) -> dict[str, list]:
    """Interleaved timing; the order rotates every round so no peer always runs right
    after another, and each call starts after `settle_s` of idle time (`warm`: see
    timed_call). Returns ms."""
    for fn in runners.values():
        for _ in range(warmup):
            fn()
    names = list(runners)
    times = {k: [] for k in names}
    for r in range(repeat):
        for k in names[r % len(names):] + names[:r % len(names)]:
            times[k].append(timed_call(runners[k], settle_s, warm))
    return times


def timed_call(fn: Callable, settle_s: float, warm: bool = False) -> float:
    """One call after `settle_s` of idle, in ms. `warm`: the idle, an untimed call, then
    the timed one right after it: the runtime's threads awake and its data in the caches,
    as for a call in a stream of calls, but no sustained load, which on a shared host slows
    a large model's calls and flatters a small one beside it
    (docs/design/host-runtime.md#idle-before-each-timed-call)."""
    time.sleep(settle_s)
    if warm:
        fn()
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1e3


def time_in_blocks(runners: dict[str, Callable], repeat: int, warmup: int = 2,
                    settle_s: float = SETTLE_S, rounds: int = 4, warm: bool = False) -> dict[str, list]:
    """Each runtime's calls in blocks, one runtime after another: no timed call follows
    another runtime's (sharing a process, runtimes slow each other's next call:
    docs/design/host-runtime.md#runtimes-in-one-process). `rounds` rounds of blocks, the
    order rotating every round, so that a noisy spell does not fall on one runtime's calls
    alone; each block starts with one untimed call (the state an application calling only
    this model is in). Each call starts after `settle_s` of idle. Returns ms."""
    for fn in runners.values():
        for _ in range(warmup):
            fn()
    names = list(runners)
    times = {k: [] for k in names}
    rounds = max(1, min(rounds, repeat))
    for r in range(rounds):
        n = repeat // rounds + (1 if r < repeat % rounds else 0)
        for k in names[r % len(names):] + names[:r % len(names)]:
            runners[k]()
            times[k] += [timed_call(runners[k], settle_s, warm) for _ in range(n)]
    return times

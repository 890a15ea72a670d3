"""Process settings for timing runtimes side by side (no torch import here)."""
from __future__ import annotations

import os


def passive_openmp_waits() -> None:
    """Make PyTorch's OpenMP threads sleep, not spin, when they wait. Must run before torch
    is imported: libgomp reads it once, when it loads.

    In a process that times several runtimes in turn, the spinning threads take the cores
    the next runtime needs, even after the benchmarks' 0.1 s pause: `wispy demo` timed its
    module at 4.8-6.6 ms in 5 of 14 runs and 2.7-2.9 ms in the others; with passive waits
    2.64-2.92 ms in 14 of 15 (one 4.4 ms). PyTorch's own times did not suffer (LSTM 2x512
    15.9-16.1 ms against 17.3-19.5, GRU 2x1024 48-51 against 52-54 in
    benchmarks/dense_vs_peers.py)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

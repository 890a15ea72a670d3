"""wispy.bench: the side-by-side timing of wispy against its peers on the host."""
import pytest
import torch
from torch import nn

from wispy.bench import _time_in_blocks, _time_round_robin, run_benchmark


def test_timing_orders():
    """Round-robin rotates the order each round; blocks run one runtime's calls together."""
    calls = []
    runners = {k: (lambda k=k: calls.append(k)) for k in "abc"}
    _time_round_robin(runners, 3, warmup=0, settle_s=0)
    assert calls == list("abc" "bca" "cab")
    calls.clear()
    times = _time_in_blocks(runners, 3, warmup=1, settle_s=0)
    assert calls == list("aaaabbbbcccc") and all(len(v) == 3 for v in times.values())


@pytest.mark.parametrize("blocks", [False, True])
def test_run_benchmark_times_every_peer(blocks):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).eval()
    res = run_benchmark(model, (torch.randn(2, 16),), repeat=3, peers=["wispy", "torch", "onnxruntime"],
                        echo=False, blocks=blocks)
    assert [p.name for p in res.peers] == ["wispy", "torch", "onnxruntime"]
    for p in res.peers:
        assert p.median_ms is not None and p.median_ms > 0 and p.p10_ms <= p.median_ms <= p.p90_ms, p
        assert p.max_abs_err is not None and p.max_abs_err < 1e-5, p

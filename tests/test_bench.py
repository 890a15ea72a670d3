"""wispy.bench.harness: the side-by-side timing of wispy against its peers on the host."""
import pytest
import torch
from torch import nn

from wispy._timing import time_in_blocks as _time_in_blocks, time_round_robin as _time_round_robin
from wispy.bench.harness import run_benchmark


def test_timing_orders():
    """Round-robin rotates the order each round; blocks run one runtime's calls together."""
    calls = []
    runners = {k: (lambda k=k: calls.append(k)) for k in "abc"}
    _time_round_robin(runners, 3, warmup=0, settle_s=0)
    assert calls == list("abc" "bca" "cab")
    calls.clear()
    times = _time_in_blocks(runners, 3, warmup=1, settle_s=0, rounds=1)
    assert calls == list("abc" "aaaa" "bbbb" "cccc") and all(len(v) == 3 for v in times.values())
    calls.clear()
    # rounds of blocks, rotating; each block's first call untimed; 5 calls over 2 rounds: 3 + 2
    times = _time_in_blocks(runners, 5, warmup=0, settle_s=0, rounds=2)
    assert calls == list("aaaabbbbcccc" "bbbcccaaa") and all(len(v) == 5 for v in times.values())
    calls.clear()
    # warm: every timed call right after an untimed one of the same runtime
    times = _time_round_robin(runners, 2, warmup=0, settle_s=0, warm=True)
    assert calls == list("aabbcc" "bbccaa") and all(len(v) == 2 for v in times.values())


@pytest.mark.parametrize("blocks, warm", [(False, False), (True, False), (False, True)])
def test_run_benchmark_times_every_peer(blocks, warm):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).eval()
    res = run_benchmark(model, (torch.randn(2, 16),), repeat=3, peers=["wispy", "torch", "onnxruntime"],
                        echo=False, blocks=blocks, warm=warm)
    assert [p.name for p in res.peers] == ["wispy", "torch", "onnxruntime"]
    for p in res.peers:
        assert p.median_ms is not None and p.median_ms > 0 and p.p10_ms <= p.median_ms <= p.p90_ms, p
        assert p.max_abs_err is not None and p.max_abs_err < 1e-5, p


def test_iree_peer_has_no_wispy_pass(monkeypatch):
    """The `iree` peer is IREE with its defaults: no wispy pass in any phase and no wispy
    choice at export, so a pruned GRU gets no recurrent kernel (its `wispy` peer does)."""
    import wispy.compiler.api as api
    from wispy.compress import prune_block_sparse

    torch.manual_seed(0)
    model = nn.GRU(8, 32)
    prune_block_sparse(model, rate=4, block="cols:4", prune="rows", layers=["weight_hh*"], uniform=True)
    built = {}
    real = api.compile_model

    def spy(m, args, **kw):
        cm = real(m, args, explain=True, **kw)
        built["iree" if kw.get("wispy_pipeline") == "" else "wispy"] = cm
        return cm

    monkeypatch.setattr(api, "compile_model", spy)
    res = run_benchmark(model.eval(), (torch.randn(5, 1, 8),), repeat=2, peers=["wispy", "iree"], echo=False)
    assert all(p.max_abs_err < 1e-5 for p in res.peers), res.peers
    kernel = lambda cm: [r for r in cm.remarks if r.startswith("wispy-")]  # noqa: E731
    assert any("wispy-recurrent-kernel" in r for r in kernel(built["wispy"])), built["wispy"].remarks
    assert kernel(built["iree"]) == [], built["iree"].remarks


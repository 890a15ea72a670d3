"""The host driver choice: `compile_model(host_driver=...)` and `CompiledModel.host_driver`."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import wispy
from wispy.compiler.api import HOST_DRIVERS
from wispy.errors import WispyError

TOL = dict(atol=2e-5, rtol=1e-4)  # a small GRU in f32 (see test_ops.py)


class _Gru(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.GRU(8, 16, num_layers=2, batch_first=True)
        self.head = torch.nn.Linear(16, 5)

    def forward(self, x):
        return self.head(self.rnn(x)[0])


@pytest.fixture(scope="module")
def model_and_input():
    torch.manual_seed(0)
    return _Gru().eval(), torch.randn(1, 12, 8)


def test_auto_times_both_drivers_and_keeps_the_faster(model_and_input):
    model, x = model_and_input
    cm = wispy.compile_model(model, (x,), host_driver="auto", progress=False)
    remark = next(r for r in cm.remarks if r.startswith("host driver:"))
    m = re.fullmatch(r"host driver: (\S+) \(local-task ([\d.]+) ms, local-sync ([\d.]+) ms, median of 15 calls each\)",
                     remark)
    assert m, remark
    times = {"local-task": float(m.group(2)), "local-sync": float(m.group(3))}
    assert m.group(1) == cm.host_driver == min(times, key=times.get)
    assert cm.timings["host_driver"] > 0
    with torch.no_grad():
        want = model(x).numpy()
    for driver in HOST_DRIVERS:  # either driver gives PyTorch's outputs
        cm.host_driver = driver
        np.testing.assert_allclose(cm.run(x.numpy())[0], want, **TOL)
        assert cm._loaded.driver == driver


def test_default_is_local_task_and_bad_names_are_refused(model_and_input):
    model, x = model_and_input
    with pytest.raises(WispyError, match="unknown host_driver 'fast'.*local-task, local-sync or 'auto'"):
        wispy.compile_model(model, (x,), host_driver="fast", progress=False)
    cm = wispy.compile_model(model, (x,), progress=False)
    assert cm.host_driver == "local-task" and not any(r.startswith("host driver:") for r in cm.remarks)
    with pytest.raises(WispyError, match="unknown host driver 'vulkan'"):
        cm.host_driver = "vulkan"
    assert cm.host_driver == "local-task"


def test_auto_is_a_remark_where_the_module_cannot_run_here(model_and_input):
    model, x = model_and_input
    cm = wispy.compile_model(model, (x,), target="armv7", host_driver="auto", progress=False)
    assert "host driver: not chosen, armv7 modules do not run on this host's CPU" in cm.remarks
    with pytest.raises(WispyError, match="do not run on this host's CPU drivers"):
        cm.choose_host_driver(x)


def test_auto_with_external_weights(model_and_input):
    """The drivers are timed on the module with its .irpa beside it, and the chosen one runs."""
    model, x = model_and_input
    cm = wispy.compile_model(model, (x,), host_driver="auto", external_weights=True, progress=False)
    assert cm.host_driver in HOST_DRIVERS and any(r.startswith("host driver:") for r in cm.remarks)
    assert cm._loaded.parameters is not None and cm._loaded.parameters.suffix == ".irpa"
    with torch.no_grad():
        np.testing.assert_allclose(cm.run(x.numpy())[0], model(x).numpy(), **TOL)


def test_serial_driver_needs_a_margin_over_several_workers(model_and_input, monkeypatch):
    """A module whose recurrent kernel runs on several workers keeps local-task unless
    local-sync (which runs those workers as one) is clearly faster: a noisy spell of the
    timing should not cost the second core for good."""
    import wispy._timing as timing

    model, x = model_and_input
    cm = wispy.compile_model(model, (x,), progress=False)
    assert cm.kernel_workers == 1  # hidden 16: one row tile, one worker
    rounds = []  # the timings each round returns, in turn

    def fake_rounds(runners, calls, **kw):
        return rounds.pop(0) if len(rounds) > 1 else rounds[0]  # the last one stays

    monkeypatch.setattr(timing, "time_round_robin", fake_rounds)
    rounds[:] = [{"local-task": [10.0] * 3, "local-sync": [9.0] * 3}]
    cm.choose_host_driver(x)
    assert cm.host_driver == "local-sync"                  # one worker: the faster, as measured
    cm.kernel_workers = 2
    cm.choose_host_driver(x)
    assert cm.host_driver == "local-task"                  # 9.0 is not under 85% of 10.0
    assert "runs the recurrent kernel's 2 workers as one" in cm.remarks[-1]
    assert "second round" not in cm.remarks[-1]            # no second round unless local-sync leads
    rounds[:] = [{"local-task": [10.0] * 3, "local-sync": [8.0] * 3}]
    cm.choose_host_driver(x)
    assert cm.host_driver == "local-sync"                  # both rounds agree
    assert "second round: local-task 10.00 ms, local-sync 8.00 ms" in cm.remarks[-1]
    # a spell that slowed local-task's workers in the first round only keeps local-task
    rounds[:] = [{"local-task": [17.0] * 3, "local-sync": [14.0] * 3},
                 {"local-task": [10.0] * 3, "local-sync": [14.0] * 3}]
    cm.choose_host_driver(x)
    assert cm.host_driver == "local-task", cm.remarks[-1]


def test_kernel_workers_come_from_the_compile():
    torch.manual_seed(1)
    model = torch.nn.GRU(8, 64, num_layers=1).eval()
    cm = wispy.compile_model(model, (torch.randn(5, 1, 8),), recurrent_workers=2, progress=False)
    assert cm.kernel_workers == 2
    cm = wispy.compile_model(model, (torch.randn(5, 1, 8),), recurrent_workers=1, progress=False)
    assert cm.kernel_workers == 1

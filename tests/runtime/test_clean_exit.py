"""A script that still holds a compiled model exits without nanobind's leak report."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys, torch, wispy
from torch import nn

class G(nn.Module):
    def __init__(self):
        super().__init__()
        self.g = nn.GRU(8, 8)

    def forward(self, x):
        return self.g(x)[0]


cm = wispy.compile_model(nn.Linear(4, 3), (torch.randn(2, 4),), progress=False)
cm(torch.randn(2, 4))
if sys.argv[1] == "failed-export":
    # torch keeps the traceback of a failed export, and with it the script's globals (cm),
    # until after iree.runtime's bindings are gone
    wispy.compile_model(G(), (torch.randn(1, 2, 3, 8),), progress=False)
print("done")
"""


@pytest.mark.parametrize("how", ["plain", "failed-export"])
def test_no_leak_report_at_exit(tmp_path, how):
    script = tmp_path / "holds_a_model.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(script), how], capture_output=True, text=True, env=env,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == (0 if how == "plain" else 1), proc.stderr[-3000:]
    assert "leaked" not in proc.stderr, proc.stderr[-3000:]
    if how == "failed-export":
        assert "wispy.errors.InputMismatchError" in proc.stderr  # the failed export, reported


def test_a_closed_module_says_so():
    import numpy as np
    import torch

    import wispy
    from wispy.runtime import LoadedModule
    from wispy.runtime.errors import WispyRuntimeError

    cm = wispy.compile_model(torch.nn.Linear(4, 3), (torch.randn(2, 4),), progress=False)
    m = LoadedModule(cm.vmfb, driver="local-sync")
    x = np.ones((2, 4), np.float32)
    assert m(x)[0].shape == (2, 3)
    m.close()
    assert m.function_names == []
    with pytest.raises(WispyRuntimeError, match="closed"):
        m(x)

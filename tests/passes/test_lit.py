"""Runs the FileCheck tests of tests/passes with lit (one worker: the machine is shared),
so `pytest` covers them too."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def test_lit_pass_tests():
    lit = Path(sys.executable).parent / "lit"
    assert lit.is_file(), f"lit not found next to {sys.executable}: pip install lit"
    n_files = len(list(HERE.glob("*.mlir")))
    proc = subprocess.run([str(lit), "-v", "-j1", str(HERE)], capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    passed = re.search(r"Passed\s*:\s*(\d+)", out)
    assert passed and int(passed.group(1)) == n_files, out[-3000:]
    assert not re.search(r"^(FAIL|UNRESOLVED|XPASS):", out, re.M), out[-3000:]

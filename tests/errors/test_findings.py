"""Issue 27's findings 4, 5 and 8: compiles that hang or crash, and errors that spoke of
wispy's insides. Each case failed (or hung, or escaped raw) before its fix."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import torch
from torch import nn

import wispy
from wispy.compiler.iree_tools import crash_error, resolve_timeout, run_tool, with_tool_causes


def _processes_with(text: str) -> list[int]:
    """pids whose command line contains `text` (a /proc scan, no psutil)."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if text in (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(d.name))
            except OSError:
                pass
    return found


# ------------------------------------------------------------------ finding 4: time limits


def test_tiny_timeout_stops_the_compile_and_its_process_tree():
    t = time.perf_counter()
    with pytest.raises(wispy.CompileError, match=r"ran past the time limit of 0.001 s in phase 'input'") as info:
        wispy.compile_model(nn.Linear(8, 4), (torch.randn(2, 8),), timeout=0.001, progress=False)
    assert time.perf_counter() - t < 30
    assert info.value.phase == "input"
    work = re.search(r"(/\S*/wispy-[^/\s]+)/", info.value.repro).group(1)
    try:
        assert _processes_with(work) == []  # the iree-compile of that work dir is gone
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


def test_timeout_from_environment(monkeypatch):
    monkeypatch.setenv("WISPY_COMPILE_TIMEOUT", "7.5")
    assert resolve_timeout(None) == 7.5
    assert resolve_timeout(3) == 3.0  # the argument wins
    monkeypatch.setenv("WISPY_COMPILE_TIMEOUT", "0")
    assert resolve_timeout(None) == float("inf")
    monkeypatch.delenv("WISPY_COMPILE_TIMEOUT")
    assert resolve_timeout(None) == 600.0


@pytest.mark.parametrize("bad", [0, -1, "soon", True])
def test_bad_timeout_is_refused(bad):
    with pytest.raises(wispy.WispyError, match=r"timeout must be a number of seconds above 0"):
        wispy.compile_model(nn.Linear(8, 4), (torch.randn(2, 8),), timeout=bad, progress=False)


def test_child_dies_with_its_parent(tmp_path):
    """A killed Python leaves no compiler behind (PR_SET_PDEATHSIG on the child)."""
    tag = f"wispy-orphan-{uuid.uuid4().hex}"
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        from wispy.compiler.iree_tools import run_tool
        print("started", flush=True)
        run_tool([sys.executable, "-c", "import time; time.sleep(60)  # {tag}"], timeout=None)
    """))
    env = dict(os.environ, PYTHONPATH=str(Path(wispy.__file__).parents[1]))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert parent.stdout.readline().strip() == "started"
        deadline = time.time() + 20
        while not _processes_with(tag) and time.time() < deadline:
            time.sleep(0.05)
        assert _processes_with(tag), "the child never started"
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.time() + 10
    while _processes_with(tag) and time.time() < deadline:
        time.sleep(0.05)
    assert _processes_with(tag) == []


def test_run_tool_reports_a_timeout():
    t = time.perf_counter()
    code, _ = run_tool([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.3)
    assert code is None and time.perf_counter() - t < 10


class MaskIndex(nn.Module):
    def forward(self, x):
        return x[x > 0]  # data-dependent output size: iree-compile spun for 300 s and more


def test_boolean_mask_index_is_refused_at_export():
    t = time.perf_counter()
    with pytest.raises(wispy.CompileError) as info:
        wispy.compile_model(MaskIndex(), (torch.randn(8),), progress=False)
    assert time.perf_counter() - t < 20
    e = info.value
    assert e.phase == "export" and e.op == "aten.index.Tensor"
    assert e.location and e.location.endswith(f"test_findings.py:{MaskIndex.forward.__code__.co_firstlineno + 1}")
    assert "x[x > 0]" in str(e) and "torch.where" in str(e)


# ------------------------------------------------------------------ finding 5: crashes, link errors


def test_zero_size_input_is_refused_before_compiling():
    with pytest.raises(wispy.InputMismatchError, match=r"input 0 has shape 1x0x8 float32 with a dimension of size 0"):
        wispy.compile_model(nn.Linear(8, 4), (torch.randn(1, 0, 8),), progress=False)


SIGFPE_DUMP = """\
PLEASE submit a bug report to https://github.com/llvm/llvm-project/issues/
Stack dump:
0.	Program arguments: iree-compile /tmp/wispy-x/torch.mlir -o /tmp/wispy-x/input.mlir
 #0 0x00007f llvm::sys::PrintStackTrace(llvm::raw_ostream&, int) Signals.cpp:0:0
 #4 0x00007f (anonymous namespace)::ConvertAtenViewOp::getMultiplier(llvm::SmallVector<long, 6u>) DataMovement.cpp:0:0
 #5 0x00007f (anonymous namespace)::ConvertAtenViewOp::matchAndRewrite(mlir::torch::Torch::AtenViewOp) DataMovement.cpp:0:0
#24 0x00007f mlir::iree_compiler::InputConversion::(anonymous namespace)::AutoInputConversionPipelinePass::runOnOperation() x.cpp:0:0
"""


def test_crash_is_reported_as_a_crash():
    e = crash_error("input", signal.SIGFPE, SIGFPE_DUMP, "iree-compile x.mlir")
    text = str(e)
    assert text.startswith("[input] cannot compile op 'torch.aten.view': iree-compile crashed (SIGFPE) in "
                           "AutoInputConversionPipelinePass")
    assert "Zero-size dimensions" in text and "reproduce with: iree-compile x.mlir" in text
    assert "#" not in text and len(text.splitlines()) == 2  # no stack frames


def test_linker_cause_is_kept():
    e = with_tool_causes(wispy.CompileError("backend", "failed to link executable"),
                         "iree-lld: error: undefined symbol: log10f\n>>> referenced by m.py:9\n")
    assert "undefined symbol: log10f" in str(e)


class Log10(nn.Module):
    def forward(self, x):
        return torch.log10(x) + torch.log10(x * 3)


def test_log10_compiles_and_matches_pytorch():
    x = torch.rand(64) * 1e4 + 1e-6
    cm = wispy.compile_model(Log10(), (x,), progress=False)
    torch.testing.assert_close(cm(x), Log10()(x), rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------ finding 8: errors in the user's terms


def test_4d_input_to_a_gru_names_the_input():
    with pytest.raises(wispy.InputMismatchError,
                       match=r"fails in PyTorch itself on the example inputs \(input 0: 1x2x3x8 float32\): "
                             r".*Expected input to be 2D or 3D, got 4D"):
        wispy.compile_model(nn.GRU(8, 8, batch_first=True), (torch.randn(1, 2, 3, 8),), progress=False)


def test_zero_frames_to_a_gru():
    with pytest.raises(wispy.InputMismatchError, match=r"input 0 has shape 1x0x8 .*one frame or more"):
        wispy.compile_model(nn.GRU(8, 8, batch_first=True), (torch.randn(1, 0, 8),), progress=False)


class FlattensLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 8, batch_first=True)

    def forward(self, x):
        self.lstm.flatten_parameters()
        return self.lstm(x)[0]


def test_flatten_parameters_is_a_no_op():
    x = torch.randn(1, 5, 8)
    model = FlattensLSTM().eval()
    cm = wispy.compile_model(model, (x,), progress=False)
    torch.testing.assert_close(cm(x), model(x), rtol=1e-4, atol=1e-5)


class ReturnsNone(nn.Module):
    def forward(self, x):
        return x * 2, None


def test_none_output_is_refused_clearly():
    with pytest.raises(wispy.CompileError, match=r"output 1 of the model is None, not a tensor"):
        wispy.compile_model(ReturnsNone(), (torch.randn(3),), progress=False)


class Branch(nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # the line the error must name
            return x * 2
        return x


def test_data_dependent_branch_names_the_users_line():
    with pytest.raises(wispy.CompileError) as info:
        wispy.compile_model(Branch(), (torch.randn(3),), progress=False)
    line = Branch.forward.__code__.co_firstlineno + 1
    assert info.value.location.endswith(f"test_findings.py:{line}")
    assert "if x.sum() > 0:" in str(info.value) and "torch.where" in str(info.value)


def test_bfloat16_input_is_refused():
    model = nn.Linear(8, 4).to(torch.bfloat16)
    with pytest.raises(wispy.InputMismatchError, match=r"input 0 has dtype torch.bfloat16.*float32"):
        wispy.compile_model(model, (torch.randn(2, 8, dtype=torch.bfloat16),), progress=False)

"""The `wispy` command line, run as a user runs it: real subprocesses, files in tmp_path."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from wispy.runtime import iree_tool, qemu_available

BIN = Path(sys.executable).parent
WISPY = [sys.executable, "-m", "wispy"]
COMMANDS = ("compile", "run", "bench", "opt", "passes")
TOL = dict(atol=1e-5, rtol=1e-4)  # a Conv1d + ReLU in f32: a few ulp of reordering (see test_ops.py)

MODEL_PY = """
import torch


def make():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv1d(4, 8, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv1d(8, 6, 3, stride=2)).eval()
    return model, (torch.randn(1, 4, 16),)
"""

CONV_MLIR = """
func.func @conv(%x: tensor<1x4x21xf32>, %w: tensor<8x4x3xf32>, %init: tensor<1x8x10xf32>) -> tensor<1x8x10xf32> {
  %0 = linalg.conv_1d_ncw_fcw {dilations = dense<1> : vector<1xi64>, strides = dense<2> : vector<1xi64>}
       ins(%x, %w : tensor<1x4x21xf32>, tensor<8x4x3xf32>) outs(%init : tensor<1x8x10xf32>) -> tensor<1x8x10xf32>
  return %0 : tensor<1x8x10xf32>
}
"""

needs_qemu = pytest.mark.skipif(not qemu_available(), reason="qemu-aarch64 / aarch64 sysroot missing: make setup")


def wispy(*args, cwd=None, entry_point=False) -> subprocess.CompletedProcess:
    cmd = [str(BIN / "wispy")] if entry_point else list(WISPY)
    env = dict(os.environ, PATH=str(BIN) + os.pathsep + os.environ.get("PATH", ""))
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env)


def reference(tmp: Path) -> tuple[np.ndarray, np.ndarray]:
    """The model of MODEL_PY run by PyTorch on a fixed input saved as tmp/x.npy."""
    namespace: dict = {}
    exec(MODEL_PY, namespace)
    model, _ = namespace["make"]()
    x = np.random.default_rng(1).standard_normal((1, 4, 16)).astype(np.float32)
    np.save(tmp / "x.npy", x)
    with torch.no_grad():
        return x, model(torch.from_numpy(x)).numpy()


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """model.py compiled for host by `wispy compile` once: (dir, compile result)."""
    d = tmp_path_factory.mktemp("cli")
    (d / "model.py").write_text(MODEL_PY)
    proc = wispy("compile", "model.py:make", "-o", "model.vmfb", "-q", cwd=d)
    return d, proc


# ------------------------------------------------------------------ help


@pytest.mark.parametrize("entry_point", [False, True], ids=["python-m", "entry-point"])
def test_help_lists_commands(entry_point):
    if entry_point:
        assert (BIN / "wispy").is_file(), "the `wispy` console script is not installed in the venv"
    proc = wispy("--help", entry_point=entry_point)
    assert proc.returncode == 0, proc.stderr
    listed = re.findall(r"^\s{4}(\w+)\s{2,}\S", proc.stdout, re.M)
    for cmd in COMMANDS:
        assert cmd in listed, (cmd, proc.stdout)


def test_no_command_prints_help_and_fails():
    proc = wispy()
    assert proc.returncode == 2
    assert "usage: wispy" in proc.stdout


# ------------------------------------------------------------------ compile + run


def test_compile_writes_vmfb(compiled):
    d, proc = compiled
    assert proc.returncode == 0, proc.stderr
    assert (d / "model.vmfb").is_file() and (d / "model.vmfb").stat().st_size > 0
    assert "wrote model.vmfb" in proc.stdout and "target host" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_run_matches_torch(compiled):
    d, proc = compiled
    assert proc.returncode == 0, proc.stderr
    _, want = reference(d)
    run = wispy("run", "model.vmfb", "--input", "x.npy", "--output", "y.npy", cwd=d)
    assert run.returncode == 0, run.stderr
    assert "output 0: float32[1, 6, 7] -> y.npy" in run.stdout
    np.testing.assert_allclose(np.load(d / "y.npy"), want, **TOL)


def test_run_without_output_prints_values(compiled):
    d, _ = compiled
    reference(d)
    run = wispy("run", "model.vmfb", "--input", "x.npy", cwd=d)
    assert run.returncode == 0, run.stderr
    assert re.search(r"^output 0: float32\[1, 6, 7\] \[.+\] \.\.\.$", run.stdout, re.M), run.stdout


def test_compile_run_hint_works(compiled):
    d, proc = compiled
    x, want = reference(d)
    np.save(d / "in0.npy", x)
    hint = next(line for line in proc.stdout.splitlines() if line.startswith("run it: "))
    argv = shlex.split(hint[len("run it: "):])
    assert argv[0] == "iree-run-module"
    run = subprocess.run([iree_tool("iree-run-module"), *argv[1:], "--output=@hint_y.npy"], cwd=d,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    np.testing.assert_allclose(np.load(d / "hint_y.npy"), want, **TOL)


def test_host_driver_auto_hint_names_the_chosen_device(tmp_path):
    """`--host-driver auto` times both CPU drivers, says which won in a remark and puts it
    in the iree-run-module hint, which runs and matches PyTorch."""
    (tmp_path / "model.py").write_text(MODEL_PY)
    proc = wispy("compile", "model.py:make", "-o", "m.vmfb", "-q", "--host-driver", "auto", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    chosen = re.search(r"^remark: host driver: (local-task|local-sync) \(local-task [\d.]+ ms, "
                       r"local-sync [\d.]+ ms", proc.stdout, re.M)
    assert chosen, proc.stdout
    hint = next(line for line in proc.stdout.splitlines() if line.startswith("run it: "))
    argv = shlex.split(hint[len("run it: "):])
    assert f"--device={chosen.group(1)}" in argv, hint
    x, want = reference(tmp_path)
    np.save(tmp_path / "in0.npy", x)
    run = subprocess.run([iree_tool("iree-run-module"), *argv[1:], "--output=@y.npy"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, **TOL)


def test_run_on_local_sync_matches_torch(compiled):
    d, _ = compiled
    _, want = reference(d)
    run = wispy("run", "model.vmfb", "--input", "x.npy", "--device", "local-sync", "--output", "ys.npy", cwd=d)
    assert run.returncode == 0, run.stderr
    np.testing.assert_allclose(np.load(d / "ys.npy"), want, **TOL)


def test_run_errors_are_one_line(compiled):
    d, _ = compiled
    reference(d)
    for args, msg in [(("--input", "x.npy", "--input", "x.npy"), "main takes 1 inputs, got 2"),
                      (("--input", "missing.npy"), "missing.npy")]:
        run = wispy("run", "model.vmfb", *args, cwd=d)
        assert run.returncode == 1
        assert "Traceback" not in run.stderr
        assert run.stderr.startswith("wispy run: error: ") and msg in run.stderr, run.stderr


@pytest.mark.arm64
@needs_qemu
def test_compile_and_run_arm64(tmp_path):
    (tmp_path / "model.py").write_text(MODEL_PY)
    _, want = reference(tmp_path)
    proc = wispy("compile", "model.py:make", "--target", "arm64", "-o", "arm.vmfb", "-q",
                 entry_point=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "target arm64" in proc.stdout
    run = wispy("run", "arm.vmfb", "--device", "arm64", "--input", "x.npy", "--output", "y.npy",
                entry_point=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, **TOL)


# ------------------------------------------------------------------ compile errors: one line, no traceback

BAD_MODELS = {
    "syntax_error": ("bad.py", "import torch\n\ndef make(:\n    pass\n", "bad.py:make",
                     [r"cannot import bad\.py: SyntaxError", r"line 3"]),
    "missing_factory": ("model.py", MODEL_PY, "model.py:build",
                        [r"model\.py has no callable 'build'", r"callables: make"]),
    "not_a_module": ("nm.py", "def make():\n    return {'weights': 1}\n", "nm.py:make",
                     [r"nm\.py:make\(\) must return an nn\.Module or \(module, example_args\), got dict"]),
    "factory_raises": ("boom.py", "def make():\n    raise RuntimeError('checkpoint not found')\n", "boom.py:make",
                       [r"boom\.py:make\(\) raised RuntimeError: checkpoint not found"]),
    "missing_file": (None, None, "nowhere.py:make", [r"no such file: nowhere\.py"]),
    "no_factory_given": ("model.py", MODEL_PY, "model.py", [r"must be PATH\.py:FACTORY, PATH\.pt2 or zoo:NAME"]),
    "no_example_inputs": ("plain.py", "import torch\ndef make():\n    return torch.nn.ReLU()\n", "plain.py:make",
                          [r"give example inputs with --input FILE\.npy or --input-shape"]),
}


@pytest.mark.parametrize("case", list(BAD_MODELS))
def test_compile_bad_model_is_one_line_error(tmp_path, case):
    file, source, spec, patterns = BAD_MODELS[case]
    if file:
        (tmp_path / file).write_text(source)
    proc = wispy("compile", spec, "-o", "out.vmfb", cwd=tmp_path)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("wispy compile: error: "), lines[0]
    for pat in patterns:
        assert re.search(pat, lines[0]), (pat, lines[0])
    assert not (tmp_path / "out.vmfb").exists()


# ------------------------------------------------------------------ opt + passes


def test_opt_runs_im2col(tmp_path):
    src = tmp_path / "conv.mlir"
    src.write_text(CONV_MLIR)
    proc = wispy("opt", src, "-p", "builtin.module(wispy-conv1d-im2col)")
    assert proc.returncode == 0, proc.stderr
    assert "linalg.matmul" in proc.stdout
    assert "linalg.conv_1d_ncw_fcw" not in proc.stdout
    assert "func.func @conv" in proc.stdout


def test_opt_reads_stdin_and_reports_bad_pipeline(tmp_path):
    env = dict(os.environ, PATH=str(BIN) + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.run(WISPY + ["opt", "-p", "builtin.module(wispy-conv1d-im2col)"], input=CONV_MLIR,
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and "linalg.matmul" in proc.stdout, proc.stderr
    src = tmp_path / "conv.mlir"
    src.write_text(CONV_MLIR)
    bad = wispy("opt", src, "-p", "builtin.module(wispy-im2col)")
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr
    assert bad.stderr.startswith("wispy opt: error: unknown wispy pass 'wispy-im2col'"), bad.stderr


def test_passes_lists_them_all():
    proc = wispy("passes")
    assert proc.returncode == 0, proc.stderr
    names = re.findall(r"^(wispy-[\w-]+)", proc.stdout, re.M)
    assert names == ["wispy-block-sparse", "wispy-conv1d-im2col", "wispy-dedupe-hoisted-globals",
                     "wispy-int8-vnni", "wispy-recurrent-kernel", "wispy-recurrent-matvec",
                     "wispy-softmax-last-dim"]
    assert re.search(r"^wispy-conv1d-im2col\s+\{max-col-mb packed k-block tile\}$", proc.stdout, re.M)


def test_passes_describes_each_pass():
    proc = wispy("passes")
    assert proc.returncode == 0, proc.stderr
    descriptions = re.findall(r"^wispy-[\w-]+.*\n\s{4}(.+)$", proc.stdout, re.M)
    assert len(descriptions) == 7
    for text in descriptions:
        assert not re.match(r"\w+Pass\(", text), text


def test_timing_commands_make_openmp_waits_passive(monkeypatch):
    """`wispy demo` and `wispy bench` time PyTorch beside other runtimes in one process:
    its OpenMP threads must sleep, not spin, when idle (set before torch loads libgomp)."""
    import os

    import wispy.cli.compiling as commands
    import wispy.cli.main as cli

    seen = {}

    def fake(a):
        seen[a.command] = os.environ.get("OMP_WAIT_POLICY")
        return 0

    monkeypatch.setattr(commands, "cmd_demo", fake)
    monkeypatch.setattr(commands, "cmd_compile", fake)
    monkeypatch.setenv("OMP_WAIT_POLICY", "unset")  # so that the teardown restores the original
    monkeypatch.delenv("OMP_WAIT_POLICY")
    assert cli.main(["compile", "zoo:gru", "-o", "x.vmfb"]) == 0
    assert seen["compile"] is None  # training and compiling keep PyTorch's default
    assert cli.main(["demo"]) == 0
    assert seen["demo"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert cli.main(["demo"]) == 0 and seen["demo"] == "ACTIVE"  # a user's own choice stands


def test_compile_recurrent_kernel_choices():
    proc = wispy("compile", "--recurrent-kernel", "fast", "model.py:make")
    assert proc.returncode == 2 and "invalid choice: 'fast'" in proc.stderr, proc.stderr


def test_compile_recurrent_workers_takes_auto_or_a_count(monkeypatch):
    """--recurrent-workers: auto (the default) or a count reaches compile_model as such;
    anything else is refused by the parser, naming what it expects."""
    import wispy.cli.compiling as commands
    import wispy.cli.main as cli

    seen = []
    monkeypatch.setattr(commands, "cmd_compile", lambda a: seen.append(a.recurrent_workers) or 0)
    assert cli.main(["compile", "zoo:gru", "-o", "x.vmfb"]) == 0
    assert cli.main(["compile", "zoo:gru", "-o", "x.vmfb", "--recurrent-workers", "2"]) == 0
    assert seen == ["auto", 2]
    proc = wispy("compile", "--recurrent-workers", "two", "model.py:make")
    assert proc.returncode == 2 and "expected auto or a whole number, not 'two'" in proc.stderr, proc.stderr


def test_bench_warm_and_blocks_reach_run_benchmark(monkeypatch):
    """`wispy bench --warm --blocks`: each call right after another of the same runtime,
    each runtime's calls together; neither by default."""
    import wispy.bench.harness
    import wispy.cli.main as cli

    seen = []
    monkeypatch.setattr(wispy.bench.harness, "run_benchmark", lambda *a, **kw: seen.append((kw["blocks"], kw["warm"])))
    assert cli.main(["bench", "zoo:gru", "--peers", "torch"]) == 0
    assert cli.main(["bench", "zoo:gru", "--peers", "torch", "--warm", "--blocks"]) == 0
    assert seen == [(False, False), (True, True)]

"""A corpus of bad inputs a user can give wispy, each with the WispyError it must end in and
a pattern its message must match (naming the op, the input, the option or the file).
Bar (issue 27): none ends in a raw Python or IREE exception. Most fail before compiling; the
few that compile use a tiny Linear."""
from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import wispy
from wispy.cli.main import main as wispy_main
from wispy.runtime import LoadedModule, WispyRuntimeError

X = torch.randn(2, 8)


class Fn(nn.Module):
    """A module whose forward is `fn` (a case's model in one line)."""

    def __init__(self, fn, *children):
        super().__init__()
        self.fn, self.kids = fn, nn.ModuleList(children)

    def forward(self, *args):
        return self.fn(self, *args)


class Mutates(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("calls", torch.zeros(1))

    def forward(self, x):
        self.calls.add_(1)
        return x * self.calls


class Branches(nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            return x
        return -x


def _zeta(self, x):
    return torch.special.zeta(x, x + 1)  # IREE has no lowering for it


L = nn.Linear(8, 4)
E, T, M, P, I = (wispy.WispyError, wispy.TargetError, wispy.ModelLoadError, wispy.PipelineError,
                 wispy.InputMismatchError)
C = wispy.CompileError

# (id, model, example args, compile_model keywords, error class, message pattern)
COMPILE_CASES = [
    ("target-unknown", L, (X,), dict(target="arm65"), T, r"unknown target 'arm65'.*host, arm64, armv7, vulkan"),
    ("target-empty", L, (X,), dict(target=""), T, r"unknown target ''"),
    ("cpu-features-no-sign", L, (X,), dict(target="arm64", cpu_features="dotprod"), T, r"'dotprod'.*must start with \+ or -"),
    ("cpu-features-empty-item", L, (X,), dict(target="arm64", cpu_features="+dotprod,,+i8mm"), T, r"''"),
    ("cpu-features-on-vulkan", L, (X,), dict(target="vulkan", cpu_features="+dotprod"), T, r"cpu_features applies to CPU targets"),
    ("vulkan-target-on-host", L, (X,), dict(vulkan_target="lavapipe"), T, r"vulkan_target applies only to target='vulkan'"),
    ("vulkan-target-unknown", L, (X,), dict(target="vulkan", vulkan_target="mali"), T, r"unknown vulkan_target 'mali'"),
    ("recurrent-kernel-unknown", L, (X,), dict(recurrent_kernel="maybe"), E, r"unknown recurrent_kernel 'maybe'"),
    ("int8-kernel-unknown", L, (X,), dict(int8_kernel="fast"), E, r"unknown int8_kernel 'fast': choose among auto, off"),
    ("host-driver-unknown", L, (X,), dict(host_driver="gpu"), E, r"unknown host_driver 'gpu'"),
    ("recurrent-workers-zero", L, (X,), dict(recurrent_workers=0), E, r"recurrent_workers must be 'auto' or a whole number"),
    ("recurrent-workers-text", L, (X,), dict(recurrent_workers="many"), E, r"recurrent_workers .* not 'many'"),
    ("timeout-zero", L, (X,), dict(timeout=0), E, r"timeout must be a number of seconds above 0.*not 0"),
    ("timeout-negative", L, (X,), dict(timeout=-5), E, r"timeout must be .*not -5"),
    ("timeout-text", L, (X,), dict(timeout="soon"), E, r"timeout must be .*not 'soon'"),
    ("timeout-nan", L, (X,), dict(timeout=math.nan), E, r"timeout must be .*not nan"),
    ("pipeline-unknown-pass", L, (X,), dict(wispy_pipeline="builtin.module(wispy-nope)"), P, r"unknown wispy pass 'wispy-nope'"),
    ("pipeline-unbalanced", L, (X,), dict(torch_pipeline="builtin.module(wispy-int8-vnni"), P, r"unbalanced brackets"),
    ("pipeline-empty-element", L, (X,), dict(wispy_pipeline="builtin.module(cse,,cse)"), P, r"empty element"),
    ("pipeline-unknown-option", L, (X,), dict(wispy_pipeline="builtin.module(wispy-conv1d-im2col{max-col=1})"), P,
     r"'wispy-conv1d-im2col' has no option 'max-col'"),
    ("pipeline-bad-option-value", L, (X,), dict(wispy_pipeline="builtin.module(wispy-conv1d-im2col{max-col-mb=lots})"),
     P, r"option 'max-col-mb' expects int, got 'lots'"),
    ("pipeline-workers-clash", L, (X,), dict(recurrent_workers=2, torch_pipeline="builtin.module(wispy-recurrent-kernel{workers=1})"),
     E, r"recurrent_workers needs wispy-recurrent-kernel"),
    ("model-lambda", lambda x: x, (X,), {}, M, r"expects a torch.nn.Module, got function"),
    ("model-path-string", "model.py", (X,), {}, M, r"expects a torch.nn.Module, got str"),
    ("model-none", None, (X,), {}, M, r"expects a torch.nn.Module, got NoneType"),
    ("args-dict", L, {"x": X}, {}, M, r"example_args must be a tensor or a tuple of tensors, got dict"),
    ("args-int", L, 3, {}, M, r"got int"),
    ("input-zero-size", L, (torch.randn(2, 0),), {}, I, r"input 0 has shape 2x0 float32 with a dimension of size 0"),
    ("input-zero-frames-gru", nn.GRU(8, 8, batch_first=True), (torch.randn(1, 0, 8),), {}, I, r"input 0 has shape 1x0x8"),
    ("input-bfloat16", L.to(torch.bfloat16) if False else nn.Linear(8, 4).bfloat16(), (X.bfloat16(),), {}, I,
     r"input 0 has dtype torch.bfloat16"),
    ("input-complex", Fn(lambda s, x: x * 2), (torch.randn(3, dtype=torch.complex64),), {}, I, r"input 0 has dtype torch.complex64"),
    ("input-second-zero-size", Fn(lambda s, x, y: x + y.sum()), (X, torch.randn(0)), {}, I, r"input 1 has shape 0 float32"),
    ("input-4d-gru", nn.GRU(8, 8, batch_first=True), (torch.randn(1, 2, 3, 8),), {}, I,
     r"input 0: 1x2x3x8 float32\): ValueError: GRU: Expected input to be 2D or 3D, got 4D"),
    ("input-4d-lstm", nn.LSTM(8, 8), (torch.randn(1, 2, 3, 8),), {}, I, r"input 0: 1x2x3x8 .*LSTM"),
    ("input-wrong-features", L, (torch.randn(2, 7),), {}, I, r"fails in PyTorch itself .*input 0: 2x7 float32.*RuntimeError"),
    ("input-too-many", L, (X, X), {}, I, r"input 0: 2x8 float32, input 1: 2x8 float32\): TypeError"),
    ("input-too-few", Fn(lambda s, x, y: x + y), (X,), {}, I, r"input 0: 2x8 float32\): TypeError"),
    ("op-mask-index", Fn(lambda s, x: x[x > 0]), (X,), {}, C, r"cannot compile op 'aten.index.Tensor' at .*test_bad_inputs.py:\d+"),
    ("op-nonzero", Fn(lambda s, x: torch.nonzero(x)), (X,), {}, C, r"op 'aten.nonzero'.*depends on the input's values"),
    ("op-masked-select", Fn(lambda s, x: torch.masked_select(x, x > 0)), (X,), {}, C, r"op 'aten.masked_select'"),
    ("output-none", Fn(lambda s, x: (x, None)), (X,), {}, C, r"output 1 of the model is None, not a tensor"),
    ("output-int", Fn(lambda s, x: (x, 3)), (X,), {}, C, r"output 1 of the model is 3, not a tensor"),
    ("branch-on-value", Branches(), (X,), {}, C, r"data-dependent.*\n.*\n  at .*test_bad_inputs.py:\d+: if x.sum\(\) > 0:"),
    ("mutates-buffer", Mutates(), (X,), {}, C, r"mutates calls in forward\(\)"),
    ("op-unsupported", Fn(_zeta), (torch.rand(4) + 1,), {}, C, r"\[input\] cannot compile op 'torch.aten.special_zeta' at \S+test_bad_inputs.py"),
    ("timeout-tiny", L, (X,), dict(timeout=1e-3), C, r"ran past the time limit of 0.001 s in phase 'input'"),
]


@pytest.mark.parametrize("model,args,kw,cls,pattern", [c[1:] for c in COMPILE_CASES], ids=[c[0] for c in COMPILE_CASES])
def test_compile_refuses(model, args, kw, cls, pattern):
    with pytest.raises(cls) as info:
        wispy.compile_model(model, args, progress=False, **kw)
    for work in re.findall(r"(/\S+/wispy-[^/\s]+)/", getattr(info.value, "repro", None) or ""):
        shutil.rmtree(work, ignore_errors=True)  # the files a failed phase keeps for its repro
    assert re.search(pattern, str(info.value), re.S), str(info.value)


def test_exported_program_with_mask_index_is_refused():
    ep = torch.export.export(Fn(lambda s, x: x[x > 0]), (X,), strict=False)
    with pytest.raises(C, match=r"aten.index.Tensor.*depends on the input's values"):
        wispy.compile_model(ep, (X,), progress=False)


# ------------------------------------------------------------------ at call time


@pytest.fixture(scope="module")
def linear(tmp_path_factory):
    cm = wispy.compile_model(nn.Linear(8, 4).eval(), (X,), progress=False)
    path = cm.save(tmp_path_factory.mktemp("m") / "linear.vmfb")
    return cm, path


CALL_CASES = [
    ("count-two", (X, X), I, r"compiled for 1 input\(s\), got 2"),
    ("count-none", (), I, r"compiled for 1 input\(s\), got 0"),
    ("shape-features", (torch.randn(2, 9),), I, r"input 0 has shape 2x9, the model was compiled for 2x8"),
    ("shape-rank", (torch.randn(8),), I, r"input 0 has shape 8, the model was compiled for 2x8"),
    ("shape-batch", (torch.randn(3, 8),), I, r"input 0 has shape 3x8"),
    ("dtype-float64", (X.double(),), I, r"input 0 has dtype float64, the model was compiled for float32"),
    ("dtype-int32", (np.ones((2, 8), np.int32),), I, r"input 0 has dtype int32"),
]


@pytest.mark.parametrize("args,cls,pattern", [c[1:] for c in CALL_CASES], ids=[c[0] for c in CALL_CASES])
def test_call_refuses(linear, args, cls, pattern):
    with pytest.raises(cls, match=pattern):
        linear[0](*args)


LOADED_CASES = [
    ("shape", np.zeros((3, 8), np.float32), I, r"main: input 0 has shape 3x8, the module takes 2x8"),
    ("rank", np.zeros((8,), np.float32), I, r"main: input 0 has shape 8 \(1 dimensions\), the module takes 2 dimensions"),
    ("dtype", np.zeros((2, 8), np.float64), I, r"main: input 0 has dtype float64, the module takes float32"),
]


@pytest.mark.parametrize("arr,cls,pattern", [c[1:] for c in LOADED_CASES], ids=[c[0] for c in LOADED_CASES])
def test_loaded_module_names_the_input(linear, arr, cls, pattern):
    with pytest.raises(cls, match=pattern):
        LoadedModule(linear[1], driver="local-sync")(arr)


@pytest.mark.parametrize("make,pattern", [
    (lambda p: LoadedModule(p, driver="local-sync")(np.zeros((2, 8), np.float32), function="nope"), r"no function 'nope'"),
    (lambda p: LoadedModule(p, driver="tpu"), r"unknown driver 'tpu'"),
    (lambda p: LoadedModule(b"not a module", driver="local-sync"), r"cannot read module"),
    (lambda p: LoadedModule(p.with_name("missing.vmfb"), driver="local-sync"), r"module file not found: .*missing.vmfb"),
    (lambda p: LoadedModule(p, driver="local-sync", parameters=p.with_name("w.irpa")), r"parameter file not found"),
], ids=["function", "driver", "bytes", "file", "parameters"])
def test_loaded_module_refuses(linear, make, pattern):
    with pytest.raises(WispyRuntimeError, match=pattern):
        make(linear[1])


def test_unknown_host_driver_on_a_compiled_model(linear):
    with pytest.raises(E, match=r"unknown host driver 'gpu'"):
        linear[0].host_driver = "gpu"


# ------------------------------------------------------------------ streaming


@pytest.fixture(scope="module")
def stream():
    from wispy.compiler.streaming import compile_streaming

    model = nn.Sequential(nn.Conv1d(4, 6, 3, padding=1), nn.ReLU()).eval()
    return compile_streaming(model, torch.randn(1, 4, 10), progress=False)


@pytest.mark.parametrize("shape,pattern", [((4, 10), r"chunk has shape 4x10, the model streams chunks of 1x4x\?"),
                                           ((1, 5, 10), r"chunk has shape 1x5x10"),
                                           ((2, 4, 10), r"chunk has shape 2x4x10")], ids=["2d", "channels", "batch"])
def test_streaming_chunk_refused(stream, shape, pattern):
    with pytest.raises(I, match=pattern):
        stream.session().feed(np.zeros(shape, np.float32))


def test_compile_streaming_non_module():
    from wispy.compiler.streaming import compile_streaming

    with pytest.raises(E, match=r"compile_streaming expects a torch.nn.Module, got function"):
        compile_streaming(lambda x: x, torch.randn(1, 4, 10))


# ------------------------------------------------------------------ the command line


@pytest.fixture(scope="module")
def files(tmp_path_factory, linear):
    d = tmp_path_factory.mktemp("cli")
    (d / "ok.py").write_text("import torch\ndef make():\n    return torch.nn.Linear(8, 4)\n"
                             "def number():\n    return 3\ndef fails():\n    raise RuntimeError('no weights')\n")
    (d / "raises.py").write_text("raise ImportError('boom at import')\n")
    (d / "garbage.npy").write_text("not an array")
    (d / "pickled.npy").write_bytes(b"\x80\x04K\x01.")
    np.save(d / "x39.npy", np.zeros((3, 9), np.float32))
    np.save(d / "x64.npy", np.zeros((2, 8)))
    (d / "garbage.vmfb").write_bytes(b"\x00" * 64)
    (d / "garbage.pt2").write_bytes(b"PK nope")
    (d / "binary.mlir").write_bytes(b"\x00\xff\xfe\x80 binary")
    (d / "broken.mlir").write_text("func.func @f( {")
    (d / "ok.mlir").write_text("func.func @f() { return }")
    (d / "empty.pt").write_bytes(b"")
    (d / "corpus").mkdir()
    return d, linear[1]


def _cli(files, argv):
    d, vmfb = files
    return [a.replace("{d}", str(d)).replace("{vmfb}", str(vmfb)) for a in argv]


CLI_CASES = [
    ("compile-missing-factory", ["compile", "{d}/ok.py:missing", "--input-shape", "2x8"], r"ok.py has no callable 'missing' \(callables: .*make"),
    ("compile-file-raises", ["compile", "{d}/raises.py:make", "--input-shape", "2x8"], r"cannot import .*raises.py: ImportError: boom at import"),
    ("compile-factory-raises", ["compile", "{d}/ok.py:fails", "--input-shape", "2x8"], r"ok.py:fails\(\) raised RuntimeError: no weights"),
    ("compile-factory-not-module", ["compile", "{d}/ok.py:number", "--input-shape", "2x8"], r"ok.py:number\(\) must return an nn.Module .*got int"),
    ("compile-zoo-unknown", ["compile", "zoo:nope"], r"no model 'nope' in the zoo \(known: .*gru"),
    ("compile-no-such-file", ["compile", "{d}/nothere.py:make", "--input-shape", "2x8"], r"no such file: .*nothere.py"),
    ("compile-no-colon", ["compile", "{d}/ok.py"], r"must be PATH.py:FACTORY, PATH.pt2 or zoo:NAME"),
    ("compile-missing-pt2", ["compile", "{d}/nothere.pt2"], r"no such file: .*nothere.pt2"),
    ("compile-garbage-pt2", ["compile", "{d}/garbage.pt2"], r"garbage.pt2 is not a saved torch.export program"),
    ("compile-bad-shape", ["compile", "{d}/ok.py:make", "--input-shape", "2xq"], r"bad input shape '2xq'"),
    ("compile-bad-shape-dtype", ["compile", "{d}/ok.py:make", "--input-shape", "2x8:float99"], r"bad input shape '2x8:float99'"),
    ("compile-zero-shape", ["compile", "{d}/ok.py:make", "--input-shape", "2x0", "-q"], r"input 0 has shape 2x0 float32"),
    ("compile-no-inputs", ["compile", "{d}/ok.py:make"], r"give example inputs with --input FILE.npy or --input-shape"),
    ("compile-missing-npy", ["compile", "{d}/ok.py:make", "--input", "{d}/nothere.npy"], r"cannot read input .*nothere.npy"),
    ("compile-garbage-npy", ["compile", "{d}/ok.py:make", "--input", "{d}/garbage.npy"], r"cannot read input .*garbage.npy"),
    ("compile-wrong-features", ["compile", "{d}/ok.py:make", "--input", "{d}/x39.npy", "-q"], r"input 0: 3x9 float32"),
    ("compile-target", ["compile", "{d}/ok.py:make", "--input-shape", "2x8", "--target", "arm65"], r"unknown target 'arm65'"),
    ("compile-cpu-features", ["compile", "{d}/ok.py:make", "--input-shape", "2x8", "--target", "arm64", "--cpu-features", "dotprod"],
     r"'dotprod'"),
    ("compile-winograd-float", ["compile", "{d}/ok.py:make", "--input-shape", "2x8", "--winograd", "f23"],
     r"winograd='f23': .*quantize it first"),
    ("run-missing-vmfb", ["run", "{d}/nothere.vmfb", "--input", "{d}/x64.npy"], r"module file not found: .*nothere.vmfb"),
    ("run-garbage-vmfb", ["run", "{d}/garbage.vmfb", "--input", "{d}/x64.npy"], r"cannot read module"),
    ("run-garbage-npy", ["run", "{vmfb}", "--input", "{d}/garbage.npy"], r"input .*garbage.npy is not a .npy file"),
    ("run-pickled-npy", ["run", "{vmfb}", "--input", "{d}/pickled.npy"], r"input .*pickled.npy is not a .npy file"),
    ("run-missing-npy", ["run", "{vmfb}", "--input", "{d}/nothere.npy"], r"input file not found: .*nothere.npy"),
    ("run-wrong-shape", ["run", "{vmfb}", "--input", "{d}/x39.npy"], r"main: input 0 has shape 3x9, the module takes 2x8"),
    ("run-wrong-dtype", ["run", "{vmfb}", "--input", "{d}/x64.npy"], r"main: input 0 has dtype float64, the module takes float32"),
    ("run-two-inputs", ["run", "{vmfb}", "--input", "{d}/x64.npy", "--input", "{d}/x64.npy"], r"main takes 1 inputs, got 2"),
    ("run-function", ["run", "{vmfb}", "--input", "{d}/x64.npy", "--function", "nope"], r"no function 'nope'"),
    ("opt-binary", ["opt", "{d}/binary.mlir", "-p", "builtin.module(cse)"], r"binary.mlir is not MLIR text"),
    ("opt-missing", ["opt", "{d}/nothere.mlir", "-p", "builtin.module(cse)"], r"nothere.mlir"),
    ("opt-unparsable", ["opt", "{d}/broken.mlir", "-p", "builtin.module(cse)"], r"cannot parse .*broken.mlir"),
    ("opt-unknown-pass", ["opt", "{d}/ok.mlir", "-p", "builtin.module(wispy-nope)"], r"unknown wispy pass 'wispy-nope'"),
    ("opt-unknown-mlir-pass", ["opt", "{d}/ok.mlir", "-p", "builtin.module(no-such-pass)"], r"'no-such-pass'"),
    ("train-missing-corpus", ["train", "gru-small", "--corpus", "{d}/nocorpus", "--out", "{d}/o", "--epochs", "1", "-q"],
     r"nocorpus"),
    ("train-empty-corpus", ["train", "gru-small", "--corpus", "{d}/corpus", "--out", "{d}/o", "--epochs", "1", "-q"],
     r"corpus"),
    ("train-unknown-model", ["train", "gru", "--corpus", "{d}/corpus", "--out", "{d}/o", "--epochs", "1", "-q"],
     r"unknown model 'gru'"),
    # torch.load's own errors are the safe-loading work's (wispy.models.loading); until then one line
    ("eval-empty-checkpoint", ["eval", "{d}/empty.pt", "--corpus", "{d}/corpus", "-q"], r"EOFError|empty.pt"),
    ("eval-missing-checkpoint", ["eval", "{d}/nothere.pt", "--corpus", "{d}/corpus", "-q"], r"nothere.pt"),
]


@pytest.mark.parametrize("argv,pattern", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_cli_refuses(files, capsys, argv, pattern):
    argv = _cli(files, argv)
    rc = wispy_main(argv)
    err = capsys.readouterr().err
    assert rc != 0
    assert "Traceback" not in err
    first = err.splitlines()[0] if err else ""
    assert first.startswith(f"wispy {argv[0]}: "), err
    assert re.search(pattern, err), err

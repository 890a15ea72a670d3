"""Errors a user can act on: every failure is a `wispy.WispyError` subclass whose message
says what went wrong and where (op, source line, phase, valid choices, a repro command)."""
from __future__ import annotations

import inspect
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import wispy
from wispy.targets import Target
from wispy.passes.pipeline import PassPipeline, parse_pipeline

torch.manual_seed(0)
X = torch.randn(3, 12)


# ------------------------------------------------------------------ (a) an op IREE cannot lower


class Zeta(nn.Module):
    def forward(self, x, q):
        y = x * 2.0
        return torch.special.zeta(y, q)  # IREE 3.13 has no lowering for aten.special_zeta


def _line_of(func, needle: str) -> int:
    lines, first = inspect.getsourcelines(func)
    hits = [first + i for i, text in enumerate(lines) if needle in text]
    assert len(hits) == 1, hits
    return hits[0]


def test_unsupported_op_names_op_and_source_line():
    x = torch.rand(4) + 1.5
    q = torch.rand(4) + 0.5
    with pytest.raises(wispy.CompileError) as info:
        wispy.compile_model(Zeta(), (x, q), progress=False)
    e = info.value
    work_dirs = {Path(p).parent for p in re.findall(r"(/\S+/torch\.mlir)", e.repro or "")}
    try:
        assert e.phase == "input"
        assert e.op == "torch.aten.special_zeta"
        want = f"{Path(__file__).resolve()}:{_line_of(Zeta.forward, 'torch.special.zeta(')}"
        file, _, line = (e.location or "").rpartition(":")
        assert f"{Path(file).resolve()}:{line}" == want
        text = str(e)
        assert text.startswith("[input] cannot compile op 'torch.aten.special_zeta' at ")
        assert "reproduce with: iree-compile " in text
        assert e.repro and e.repro.startswith("iree-compile ")
        # The repro really reproduces: the input it names was kept and fails the same way.
        assert work_dirs and all(d.is_dir() for d in work_dirs)
        env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
        proc = subprocess.run(shlex.split(e.repro), capture_output=True, text=True, env=env)
        assert proc.returncode != 0
        assert "torch.aten.special_zeta" in proc.stderr
    finally:
        for d in work_dirs:
            if d.name.startswith("wispy-"):
                shutil.rmtree(d, ignore_errors=True)


# ------------------------------------------------------------------ (b) targets


def test_unknown_target_lists_valid_targets():
    with pytest.raises(wispy.TargetError) as info:
        wispy.compile_model(nn.Linear(12, 7), (X,), target="arm65", progress=False)
    msg = str(info.value)
    assert "'arm65'" in msg
    for name in ("host", "arm64", "armv7", "vulkan"):
        assert name in msg
    assert isinstance(info.value, ValueError)  # TargetError is also a ValueError


@pytest.mark.parametrize("features,bad", [("dotprod", "'dotprod'"), ("+dotprod,i8mm", "'i8mm'"),
                                          ("+dotprod,,+i8mm", "''")])
def test_malformed_cpu_features(features, bad):
    with pytest.raises(wispy.TargetError, match=r"must start with \+ or -") as info:
        wispy.compile_model(nn.Linear(12, 7), (X,), target="arm64", cpu_features=features, progress=False)
    assert bad in str(info.value)


def test_cpu_features_on_vulkan():
    with pytest.raises(wispy.TargetError, match="cpu_features applies to CPU targets"):
        Target.parse("vulkan", cpu_features="+dotprod")


@pytest.mark.parametrize("target", ["host", "arm64", "armv7"])
def test_vulkan_target_on_cpu_target(target):
    with pytest.raises(wispy.TargetError, match="vulkan_target applies only to target='vulkan'"):
        wispy.compile_model(nn.Linear(12, 7), (X,), target=target, vulkan_target="lavapipe", progress=False)


def test_unknown_vulkan_target_lists_valid_ones():
    with pytest.raises(wispy.TargetError, match=r"unknown vulkan_target 'mali'.*valhall.*lavapipe"):
        Target.parse("vulkan", vulkan_target="mali")


def test_unknown_cpu_feature_name():
    with pytest.raises(wispy.TargetError, match=r"\+dotprd"):
        wispy.compile_model(nn.Linear(12, 7).eval(), (X,), target="arm64", cpu_features="+dotprd",
                            progress=False)


# ------------------------------------------------------------------ (c) inputs of a compiled model


@pytest.fixture(scope="module")
def linear_cm():
    model = nn.Linear(12, 7).eval()
    return wispy.compile_model(model, (X,), progress=False)


def test_wrong_number_of_inputs(linear_cm):
    with pytest.raises(wispy.InputMismatchError, match=r"compiled for 1 input\(s\), got 2"):
        linear_cm(X, X)
    with pytest.raises(wispy.InputMismatchError, match=r"compiled for 1 input\(s\), got 0"):
        linear_cm()


@pytest.mark.parametrize("shape,given", [((3, 13), "3x13"), ((4, 12), "4x12"), ((1, 3, 12), "1x3x12"),
                                         ((36,), "36")])
def test_wrong_shape(linear_cm, shape, given):
    with pytest.raises(wispy.InputMismatchError) as info:
        linear_cm(torch.randn(*shape))
    msg = str(info.value)
    assert f"input 0 has shape {given}" in msg
    assert "compiled for 3x12" in msg


@pytest.mark.parametrize("arr,given", [(X.numpy().astype(np.float64), "float64"),
                                       (X.to(torch.float16), "float16"),
                                       (np.ones((3, 12), np.int32), "int32")])
def test_wrong_dtype(linear_cm, arr, given):
    with pytest.raises(wispy.InputMismatchError) as info:
        linear_cm(arr)
    msg = str(info.value)
    assert f"input 0 has dtype {given}" in msg and "compiled for float32" in msg
    assert ".astype(np.float32)" in msg  # says how to fix it


def test_input_mismatch_is_a_value_error(linear_cm):
    with pytest.raises(ValueError):
        linear_cm(X, X)


# ------------------------------------------------------------------ (d) torch.export failures


class DataDependent(nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # Python control flow on a tensor's value: not traceable
            return x * 2
        return x - 1


def test_export_failure_is_compile_error():
    with pytest.raises(wispy.CompileError) as info:
        wispy.compile_model(DataDependent(), (X,), progress=False)
    e = info.value
    assert e.phase == "export"
    assert str(e).startswith("[export] torch.export could not trace the model")
    assert "data-dependent" in str(e)
    assert isinstance(e.__cause__, Exception)  # the torch error is kept for debugging


def test_state_mutation_is_compile_error():
    class Counter(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("calls", torch.zeros(1))

        def forward(self, x):
            self.calls.add_(1)
            return x * self.calls

    with pytest.raises(wispy.CompileError, match=r"mutates calls in forward\(\)") as info:
        wispy.compile_model(Counter(), (X,), progress=False)
    assert info.value.phase == "import"


# ------------------------------------------------------------------ (e) not a model


@pytest.mark.parametrize("model", [lambda x: x * 2, torch.relu, "model.py", None],
                         ids=["lambda", "function", "str", "None"])
def test_non_module_is_model_load_error(model):
    with pytest.raises(wispy.ModelLoadError, match="expects a torch.nn.Module, got"):
        wispy.compile_model(model, (X,), progress=False)


def test_bad_example_args_is_model_load_error():
    with pytest.raises(wispy.ModelLoadError, match="example_args must be a tensor or a tuple of tensors, got dict"):
        wispy.compile_model(nn.Linear(12, 7), {"x": X}, progress=False)


def test_all_errors_are_wispy_errors():
    for cls in (wispy.CompileError, wispy.TargetError, wispy.ModelLoadError, wispy.InputMismatchError,
                wispy.PipelineError):
        assert issubclass(cls, wispy.WispyError)


# ------------------------------------------------------------------ (f) pass pipelines


@pytest.mark.parametrize("text,message", [
    ("builtin.module(wispy-conv1d-im2co)",
     r"unknown wispy pass 'wispy-conv1d-im2co' \(known: wispy-block-sparse, wispy-conv1d-im2col, wispy-dedupe-hoisted-globals, wispy-int8-vnni, wispy-recurrent-kernel, wispy-recurrent-matvec, wispy-softmax-last-dim, wispy-vulkan-pad-gather\)"),
    ("builtin.module(wispy-conv1d-im2col{max-col=16})",
     r"pass 'wispy-conv1d-im2col' has no option 'max-col' \(options: max-col-mb, packed, k-block, tile\)"),
    ("builtin.module(wispy-dedupe-hoisted-globals{x=1})",
     r"pass 'wispy-dedupe-hoisted-globals' has no option 'x' \(options: none\)"),
    ("builtin.module(wispy-conv1d-im2col{max-col-mb=lots})",
     r"pass 'wispy-conv1d-im2col': option 'max-col-mb' expects int, got 'lots'"),
    ("builtin.module(wispy-conv1d-im2col{max-col-mb=1.5})",
     r"option 'max-col-mb' expects int, got '1.5'"),
    ("builtin.module(wispy-conv1d-im2col, util.func(cse)", r"unbalanced brackets in pipeline"),
    ("builtin.module(wispy-conv1d-im2col{max-col-mb=16)", r"unbalanced brackets in pipeline"),
    ("wispy-conv1d-im2col)", r"unbalanced brackets in pipeline"),
    ("builtin.module(wispy-conv1d-im2col,,cse)", r"empty element in pipeline"),
    ("builtin.module(wispy-conv1d-im2col(cse))", r"wispy pass 'wispy-conv1d-im2col' runs on the module; "
                                                 r"it cannot nest passes"),
])
def test_pipeline_parse_errors(text, message):
    with pytest.raises(wispy.PipelineError, match=message):
        parse_pipeline(text)
    with pytest.raises(wispy.PipelineError, match=message):
        PassPipeline(text)


def test_pipeline_options_parse():
    (p,) = parse_pipeline("builtin.module(wispy-conv1d-im2col{max-col-mb=16})")
    assert p.max_col_mb == 16
    assert str(PassPipeline([p])) == "builtin.module(wispy-conv1d-im2col{max-col-mb=16})"
    items = parse_pipeline("wispy-conv1d-im2col, util.func(canonicalize, cse)")  # bare list
    assert len(items) == 2 and items[1].text == "util.func(canonicalize, cse)"


@pytest.mark.parametrize("text,message", [
    ("builtin.module(no-such-pass)", r"MLIR rejected pipeline element 'no-such-pass'.*does not refer to a registered pass"),
    ("builtin.module(canonicalize{bogus=1})", r"MLIR rejected pipeline element 'canonicalize\{bogus=1\}'.*no such option bogus"),
])
def test_pipeline_mlir_pass_errors(text, message):
    from wispy._mlir import ir, new_context

    module = ir.Module.parse("func.func @f() { return }", new_context())
    with pytest.raises(wispy.PipelineError, match=re.compile(message, re.S)):
        PassPipeline(text).run(module)


def test_compile_model_reports_bad_wispy_pipeline():
    with pytest.raises(wispy.PipelineError, match="unknown wispy pass 'wispy-nope'"):
        wispy.compile_model(nn.Linear(12, 7), (X,), wispy_pipeline="builtin.module(wispy-nope)",
                            progress=False)

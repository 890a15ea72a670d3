"""The compile pipeline as phases, each one's IR saveable (`dump_dir`).

    import    torch.export + FX importer -> torch-dialect MLIR, weights as named params
    torch     wispy passes on the torch dialect (recognising model structure)
    input     IREE input conversion -> linalg / tensor / arith
    wispy     wispy passes on linalg (conv1d -> im2col matmul, ...); on Vulkan then
              VULKAN_CORRECTNESS_PIPELINE, whatever the wispy pipeline
    dispatch  IREE global optimization and dispatch creation, then wispy clean-ups on
              what IREE hoisted (one copy of each packed weight)
    backend   IREE codegen for the target -> .vmfb
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np

from wispy._mlir import ir
from wispy.passes.base import PassContext
from wispy.passes.pipeline import PassPipeline
from wispy.errors import CompileError
from wispy.compiler.iree_tools import DEFAULT_TIMEOUT_S, run_iree_compile
from wispy.targets import Target
from wispy.ir.weights import WeightStore, parameter_key

PHASES = ("import", "torch", "input", "wispy", "dispatch", "backend")

DEFAULT_TORCH_PIPELINE = "builtin.module(wispy-softmax-last-dim, wispy-recurrent-kernel, wispy-int8-vnni)"
DEFAULT_WISPY_PIPELINE = ("builtin.module(wispy-block-sparse, wispy-recurrent-matvec, wispy-conv1d-im2col, "
                          "util.func(canonicalize, cse))")
DEFAULT_DISPATCH_PIPELINE = "builtin.module(wispy-dedupe-hoisted-globals)"
# Run on every Vulkan build after the wispy pipeline, even an empty one: work-arounds for
# IREE SPIR-V code that is silently wrong (docs/design/known-issues.md).
VULKAN_CORRECTNESS_PIPELINE = "builtin.module(wispy-vulkan-pad-gather)"



@dataclass
class PipelineOptions:
    target: Target
    torch_pipeline: Union[str, PassPipeline] = DEFAULT_TORCH_PIPELINE
    wispy_pipeline: Union[str, PassPipeline] = DEFAULT_WISPY_PIPELINE
    dispatch_pipeline: Union[str, PassPipeline] = DEFAULT_DISPATCH_PIPELINE
    external_weights: bool = False
    dump_dir: Optional[Path] = None
    explain: bool = False
    iree_flags: tuple = ()
    progress: Optional[Callable[[str], None]] = None
    timeout: float = DEFAULT_TIMEOUT_S  # seconds per iree-compile phase (math.inf: none)


@dataclass
class PipelineResult:
    vmfb: bytes
    weights: WeightStore
    remarks: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    facts: dict = field(default_factory=dict)  # PassContext.facts


class _Dumper:
    def __init__(self, dump_dir: Optional[Path]):
        self.dir = Path(dump_dir) if dump_dir else None
        if self.dir:
            self.dir.mkdir(parents=True, exist_ok=True)

    def text(self, index: int, phase: str, module) -> None:
        if self.dir:
            (self.dir / f"{index}-{phase}.mlir").write_text(_with_locations(module))


def run_pipeline(module: ir.Module, weights: WeightStore, opts: PipelineOptions) -> PipelineResult:
    """Runs phases torch..backend on an imported module; returns the .vmfb bytes."""
    dump = _Dumper(opts.dump_dir)
    ctx = PassContext(weights=weights, target=opts.target, explain=opts.explain)
    timings: dict[str, float] = {}
    flags = opts.target.iree_flags() + list(opts.iree_flags)
    say = opts.progress or (lambda s: None)
    targets_attr = opts.target.device_targets_attr()
    if targets_attr:
        with module.context:
            module.operation.attributes["hal.device.targets"] = ir.Attribute.parse(targets_attr)
    dump.text(1, "import", module)

    work = Path(tempfile.mkdtemp(prefix="wispy-"))
    keep_work = False

    def iree(phase: str, module: ir.Module, src_name: str, out_name: str, **phases) -> Path:
        """Runs one IREE phase on `module` in `work`; a failing phase's files are kept
        so the CompileError's repro command works."""
        nonlocal keep_work
        src = work / src_name
        if src_name.endswith(".mlirbc"):  # bytecode: the inlined weights are large
            with open(src, "wb") as f:
                module.operation.write_bytecode(f)
        else:
            src.write_text(_with_locations(module))
        out = work / out_name
        try:
            run_iree_compile(phase, src, out, flags, timeout=opts.timeout, **phases)
        except CompileError:
            keep_work = True
            raise
        return out

    def timed(phase: str):
        timings[phase] = time.perf_counter() - timed.start
        timed.start = time.perf_counter()

    timed.start = time.perf_counter()
    try:
        if opts.torch_pipeline:
            say("torch passes")
            PassPipeline(opts.torch_pipeline).run(module, ctx)
        dump.text(2, "torch", module)
        timed("torch")

        say("IREE input conversion")
        module = _parse(iree("input", module, "torch.mlir", "input.mlir", compile_to="input"), module.context)
        dump.text(3, "input", module)
        timed("input")

        say("wispy passes")
        if opts.wispy_pipeline:
            PassPipeline(opts.wispy_pipeline).run(module, ctx)
        if opts.target.name == "vulkan":  # a correctness work-around, not an optimization
            PassPipeline(VULKAN_CORRECTNESS_PIPELINE).run(module, ctx)
        dump.text(4, "wispy", module)
        timed("wispy")

        say("IREE dispatch creation")
        module = _parse(iree("dispatch", module, "wispy.mlir", "dispatch.mlir", compile_from="input",
                             compile_to="dispatch-creation"), module.context, portable_locations=True)
        if opts.dispatch_pipeline:
            PassPipeline(opts.dispatch_pipeline).run(module, ctx)
        dump.text(5, "dispatch", module)
        timed("dispatch")

        say(f"IREE codegen for {opts.target}")
        if not opts.external_weights:
            _inline_parameters(module, weights)
        vmfb = iree("backend", module, "dispatch.mlirbc", "module.vmfb",
                    compile_from="dispatch-creation").read_bytes()
        timed("backend")
        if opts.dump_dir:
            (Path(opts.dump_dir) / "6-backend.vmfb").write_bytes(vmfb)
    finally:
        if not keep_work:
            shutil.rmtree(work, ignore_errors=True)
    return PipelineResult(vmfb, weights, ctx.remarks, timings, ctx.facts)


def _with_locations(module: ir.Module) -> str:
    """Module text with its source locations, so IREE's diagnostics name the user's
    file and line (plain `str(module)` drops them)."""
    return module.operation.get_asm(enable_debug_info=True)


def _parse(path: Path, context: ir.Context, portable_locations: bool = False) -> ir.Module:
    text = path.read_text()
    if portable_locations:
        text = _LOC_FILE.sub(lambda m: '"%s":' % _portable_path(m.group(1)), text)
    return ir.Module.parse(text, context)


# The file of a location in MLIR text: loc("/abs/model.py":12:0), callsite("/abs/a.py":3:0 at ...)
_LOC_FILE = re.compile(r'"((?:[^"\\]|\\.)*)":(?=\d+:\d+)')


def _portable_path(path: str) -> str:
    """The name a source location keeps in the module IREE codegen sees (and the .vmfb
    embeds): relative to the longest `sys.path` entry holding it (torch/nn/modules/conv.py,
    wispy/models/acoustic.py), else the file's name alone. The same model then builds to
    the same bytes from any checkout, venv or working directory (issue 27, finding 10;
    tests/compiler/test_reproducible.py). The phases before keep absolute paths, so their
    errors name the user's file in full."""
    if not os.path.isabs(path):
        return path
    best = ""
    for entry in sys.path:
        root = os.path.abspath(entry or os.curdir)
        if path.startswith(root.rstrip(os.sep) + os.sep) and len(root) > len(best):
            best = root
    return os.path.relpath(path, best) if best else os.path.basename(path)


def _inline_parameters(module: ir.Module, weights: WeightStore) -> None:
    """Replaces `#flow.parameter.named` initial values by the arrays themselves, so the
    .vmfb is self-contained (IREE 3.13 has no flag to import a parameter archive)."""
    with module.context:
        for op in module.body.operations:
            op = op.operation
            if op.name != "util.global" or "initial_value" not in op.attributes:
                continue
            key = parameter_key(op.attributes["initial_value"])
            if key is None or key[1] not in weights:
                continue
            array = weights[key[1]]
            ttype = ir.TypeAttr(op.attributes["type"]).value
            blob_name = "wispy_" + "".join(c if c.isalnum() else "_" for c in key[1])
            op.attributes["initial_value"] = ir.DenseResourceElementsAttr.get_from_buffer(
                memoryview(np.ascontiguousarray(array)), blob_name, ttype)

"""`CompileOptions`: compile_model's arguments, checked once, and the phase pipelines they
make. The options edit pipeline objects (`without`, `replace`), never pipeline text; the text
form is what the CLI and `wispy opt` parse, and what `--dump-dir` and errors print."""
from __future__ import annotations

import dataclasses
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from wispy.compiler.iree_tools import resolve_timeout
from wispy.compiler.pipeline import (DEFAULT_DISPATCH_PIPELINE, DEFAULT_TORCH_PIPELINE, DEFAULT_WISPY_PIPELINE,
                                     PipelineOptions)
from wispy.dialects import LoweringOptions
from wispy.dialects.recurrent import MODES as RECURRENT_KERNEL_MODES, select as recurrent_select
from wispy.errors import WispyError
from wispy.passes.pipeline import PassPipeline
from wispy.passes.recurrent_kernel import kernel_takes
from wispy.targets import Target

HOST_DRIVERS = ("local-task", "local-sync")
RECURRENT_KERNEL = "wispy-recurrent-kernel"
BLOCK_SPARSE = "wispy-block-sparse"
INT8_VNNI = "wispy-int8-vnni"


def _pipeline(text_or_pipeline) -> PassPipeline:
    return PassPipeline(text_or_pipeline or "")


@dataclass(frozen=True)
class CompileOptions:
    """Everything compile_model takes besides the model and its example inputs (see its
    docstring for each option). `CompileOptions.create(...)` takes the same keywords as
    compile_model; a bad value is a WispyError naming the option and its choices."""

    target: Target
    dynamic_shapes: object = None
    external_weights: bool = False
    dump_dir: Optional[Path] = None
    torch_pipeline: PassPipeline = field(default_factory=lambda: PassPipeline(DEFAULT_TORCH_PIPELINE))
    wispy_pipeline: PassPipeline = field(default_factory=lambda: PassPipeline(DEFAULT_WISPY_PIPELINE))
    dispatch_pipeline: PassPipeline = field(default_factory=lambda: PassPipeline(DEFAULT_DISPATCH_PIPELINE))
    iree_flags: tuple = ()
    explain: bool = False
    rnn_loops: bool = True
    block_sparse: bool = True
    recurrent_kernel: str = "auto"
    recurrent_workers: Union[str, int] = "auto"
    int8_kernel: str = "auto"
    host_driver: str = "local-task"
    progress: Optional[bool] = None
    timeout: Optional[float] = None  # per iree-compile phase; None: $WISPY_COMPILE_TIMEOUT or 600 s

    @classmethod
    def create(cls, *, target="host", cpu_features: str = "", vulkan_target: Optional[str] = None,
               torch_pipeline=DEFAULT_TORCH_PIPELINE, wispy_pipeline=DEFAULT_WISPY_PIPELINE,
               dispatch_pipeline=DEFAULT_DISPATCH_PIPELINE, dump_dir=None, iree_flags=(),
               **options) -> "CompileOptions":
        tgt = target if isinstance(target, Target) else Target.parse(
            target, cpu_features=cpu_features, vulkan_target=vulkan_target)
        unknown = sorted(set(options) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise TypeError(f"compile_model() got an unexpected keyword argument {unknown[0]!r}")
        return cls(target=tgt, torch_pipeline=_pipeline(torch_pipeline), wispy_pipeline=_pipeline(wispy_pipeline),
                   dispatch_pipeline=_pipeline(dispatch_pipeline), dump_dir=Path(dump_dir) if dump_dir else None,
                   iree_flags=tuple(iree_flags), **options)

    def __post_init__(self):
        _choice("recurrent_kernel", self.recurrent_kernel, RECURRENT_KERNEL_MODES)
        _choice("int8_kernel", self.int8_kernel, ("auto", "off"))
        resolve_timeout(self.timeout)
        if self.host_driver not in HOST_DRIVERS + ("auto",):
            raise WispyError(f"unknown host_driver {self.host_driver!r}: choose among "
                             f"{', '.join(HOST_DRIVERS)} or 'auto'")
        workers = self.recurrent_workers
        if workers != "auto" and (isinstance(workers, bool) or not isinstance(workers, int) or
                                  not 1 <= workers <= 32):
            raise WispyError(f"recurrent_workers must be 'auto' or a whole number from 1 to 32, not {workers!r}")
        if workers != "auto" and self.torch_pipeline.get(RECURRENT_KERNEL) != _default(RECURRENT_KERNEL):
            raise WispyError(f"recurrent_workers needs {RECURRENT_KERNEL} in the torch pipeline without options "
                             f"of its own (got {str(self.torch_pipeline)!r}); give it workers=N there instead")

    # -- what the options make -------------------------------------------------------
    def phase_pipelines(self) -> tuple[PassPipeline, PassPipeline, PassPipeline]:
        """The torch, wispy and dispatch pipelines with the options applied."""
        torch_pipeline, wispy_pipeline = self.torch_pipeline, self.wispy_pipeline
        if self.recurrent_workers != "auto":
            torch_pipeline = torch_pipeline.replace(RECURRENT_KERNEL, workers=self.recurrent_workers)
        if not self.block_sparse:
            # the kernel (where it runs) takes every matrix whole, zeros included
            if RECURRENT_KERNEL in torch_pipeline:
                torch_pipeline = torch_pipeline.replace(RECURRENT_KERNEL, dense=True)
            wispy_pipeline = wispy_pipeline.without(BLOCK_SPARSE)
        return torch_pipeline, wispy_pipeline, self.dispatch_pipeline

    def pipeline_options(self, progress=None) -> PipelineOptions:
        torch_pipeline, wispy_pipeline, dispatch_pipeline = self.phase_pipelines()
        return PipelineOptions(self.target, torch_pipeline, wispy_pipeline, dispatch_pipeline,
                               self.external_weights, self.dump_dir, self.explain, self.iree_flags, progress,
                               resolve_timeout(self.timeout))

    def lowering(self) -> LoweringOptions:
        """How the int8 ops lower at export, for this target."""
        tgt = self.target
        arm = tgt.name in ("arm64", "armv7")
        return LoweringOptions(
            vnni=self.int8_kernel == "auto" and tgt.name == "host" and INT8_VNNI in self.torch_pipeline
            and any("+avx512vnni" in f for f in tgt.iree_flags()),
            # x86 only: on arm64 (frintn) the add and subtract cost more instructions than roundeven
            magic_round=tgt.name == "host" and platform.machine().lower() in ("x86_64", "amd64"),
            fused_winograd=arm, pad_ragged=arm)

    def recurrent_selector(self):
        """w_hh -> whether that GRU/LSTM layer exports as one wispy sequence op (None: none)."""
        if not (self.rnn_loops and self.dynamic_shapes is None and RECURRENT_KERNEL in self.torch_pipeline):
            return None
        return recurrent_select(self.target, self.recurrent_kernel, workers=self.recurrent_workers,
                                sparse=self.block_sparse, takes=kernel_takes(self.target))


def _choice(option: str, value, choices) -> None:
    if value not in choices:
        raise WispyError(f"unknown {option} {value!r}: choose among {', '.join(map(str, choices))}")


def _default(name: str):
    from wispy.passes.registry import get_pass_class

    return get_pass_class(name)()

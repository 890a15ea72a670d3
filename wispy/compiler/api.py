"""`compile_model()`: a PyTorch model in, a compiled IREE module out."""
from __future__ import annotations

import dataclasses
import sys
import time
from typing import Optional, Sequence

import torch

from wispy._mlir import new_context
from wispy.compiler.checks import check_exported
from wispy.compiler.compiled import CompiledModel
from wispy.compiler.float64 import float64_flags
from wispy.compiler.importer import ImportedModule, decomposition_table, import_exported, import_model, normalize_args
from wispy.compiler.options import HOST_DRIVERS, CompileOptions  # noqa: F401  (HOST_DRIVERS: public here too)
from wispy.compiler.pipeline import (DEFAULT_DISPATCH_PIPELINE, DEFAULT_TORCH_PIPELINE, DEFAULT_WISPY_PIPELINE,
                                     PHASES, run_pipeline)


def _progress_reporter(progress):
    """A tqdm bar over the phases when asked (or when stderr is a terminal)."""
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=len(PHASES), desc="wispy", unit="phase", leave=False)

    def step(label: str):
        bar.set_description(f"wispy: {label}")
        bar.update(1)

    return step, bar.close


def compile_model(model, example_args: Sequence = (), *, target="host", cpu_features: str = "",
                  vulkan_target: Optional[str] = None, dynamic_shapes=None,
                  external_weights: bool = False, dump_dir=None,
                  torch_pipeline: str = DEFAULT_TORCH_PIPELINE,
                  wispy_pipeline: str = DEFAULT_WISPY_PIPELINE,
                  dispatch_pipeline: str = DEFAULT_DISPATCH_PIPELINE,
                  iree_flags: Sequence[str] = (), explain: bool = False,
                  rnn_loops: bool = True, block_sparse: bool = True, recurrent_kernel: str = "auto",
                  recurrent_workers="auto", int8_kernel: str = "auto",
                  host_driver: str = "local-task", progress: Optional[bool] = None,
                  timeout: Optional[float] = None) -> CompiledModel:
    """Compiles a `torch.nn.Module` (or a `torch.export.ExportedProgram`) for `target`.

    target            "host", "arm64", "armv7" or "vulkan" (or a `Target`)
    cpu_features      CPU targets: LLVM features, e.g. "+dotprod,+i8mm" on arm64
    vulkan_target     vulkan: "valhall" (Mali, default), "adreno", ...
    dynamic_shapes    as for `torch.export.export`
    external_weights  keep weights in a `.irpa` beside the `.vmfb` instead of inside it
    dump_dir          write the IR after every phase there (1-import.mlir ... 6-backend.vmfb)
    *_pipeline        textual pass pipelines per phase ("" skips wispy's passes there)
    explain           collect remarks on why passes declined (`CompiledModel.remarks`)
    rnn_loops         nn.GRU/nn.LSTM as loops over time (one module for every length);
                      False unrolls them per frame (the stock torch.export route)
    block_sparse      products with a block-structured sparse weight (RTMobile pruning,
                      wispy.compress) run on the survivors only (wispy-block-sparse);
                      False keeps every weight dense
    recurrent_kernel  GRU and LSTM layers (no proj_size) whose recurrent matrix is
                      block-sparse, or dense and at most 1 MiB (16 MiB on two workers or
                      more), run their whole recurrence in one hand-written dispatch on CPU
                      targets (wispy-recurrent-kernel): "auto" (default), "on" (every such
                      layer), "off"; needs rnn_loops, static shapes and block_sparse
    recurrent_workers that kernel's workgroups (cores) per sequence: "auto" (default: on
                      a host with two cores or more, two, or as many as it takes for each
                      part of a layer's W_hh to fit a core's L2; one on other targets) or
                      a count, the hidden units cut in as many parts that each step's
                      workers claim (parts must be whole row tiles, else one worker).
                      Why: docs/design/recurrent-kernel.md#several-workers-per-sequence
    int8_kernel       int8 products of quantized layers (static shapes) on hosts with AVX-512
                      VNNI: "auto" runs them on wispy's own kernel (wispy-int8-vnni: unsigned
                      by signed bytes, twice IREE's int8 matmul), "off" on IREE's
    host_driver       the IREE driver `run()` uses on this host: "local-task" (IREE's
                      default, a worker per core), "local-sync" (the caller's thread), or
                      "auto": both timed on `example_args` after compiling, the faster kept
                      (`CompiledModel.choose_host_driver`; the times in `remarks`)
    timeout           seconds each iree-compile phase may take before it is stopped (its
                      whole process tree) with a CompileError naming the phase; None (default):
                      $WISPY_COMPILE_TIMEOUT if set ("0": no limit), else 600; math.inf: no limit
    """
    options = CompileOptions.create(
        target=target, cpu_features=cpu_features, vulkan_target=vulkan_target, dynamic_shapes=dynamic_shapes,
        external_weights=external_weights, dump_dir=dump_dir, torch_pipeline=torch_pipeline,
        wispy_pipeline=wispy_pipeline, dispatch_pipeline=dispatch_pipeline, iree_flags=iree_flags,
        explain=explain, rnn_loops=rnn_loops, block_sparse=block_sparse, recurrent_kernel=recurrent_kernel,
        recurrent_workers=recurrent_workers, int8_kernel=int8_kernel, host_driver=host_driver,
        progress=progress, timeout=timeout)
    return compile_with_options(model, example_args, options)


def compile_with_options(model, example_args: Sequence, options: CompileOptions) -> CompiledModel:
    """compile_model with its options as one `CompileOptions`."""
    step, close = _progress_reporter(options.progress)
    try:
        t0 = time.perf_counter()
        if step:
            step("import")
        imported = _import(model, example_args, options)
        t_import = time.perf_counter() - t0
        popts = options.pipeline_options(step)
        popts = dataclasses.replace(popts, iree_flags=tuple(popts.iree_flags) + tuple(
            float64_flags(*imported.float64, options.target.name)))
        result = run_pipeline(imported.module, imported.weights, popts)
    finally:
        close()
    cm = CompiledModel(result.vmfb, result.weights, options.target, imported.input_specs,
                       imported.output_count, external_weights=options.external_weights,
                       remarks=list(result.remarks), timings={"import": t_import, **result.timings},
                       host_driver=options.host_driver if options.host_driver != "auto" else "local-task",
                       kernel_workers=result.facts.get("kernel_workers", 1))
    if options.host_driver == "auto":
        _choose_host_driver(cm, list(normalize_args(example_args)))
    return cm


def _import(model, example_args: Sequence, options: CompileOptions) -> ImportedModule:
    """torch.export and the FX importer, with the int8 ops lowered for the target."""
    ctx = new_context()
    if isinstance(model, torch.export.ExportedProgram):
        ep = model.run_decompositions(decomposition_table(options.lowering()))
        check_exported(ep)
        with ctx:
            return import_exported(ep, ctx)
    return import_model(model, normalize_args(example_args), ctx, options.dynamic_shapes, options.rnn_loops,
                        options.recurrent_selector(), options.lowering())


def _choose_host_driver(cm: CompiledModel, args: list) -> None:
    if cm.target.runs_here != "host":
        cm.remarks.append(f"host driver: not chosen, {cm.target.name} modules do not run on this host's CPU")
    elif not args:
        cm.remarks.append("host driver: local-task (no example inputs to time the drivers on)")
    else:
        t = time.perf_counter()
        cm.choose_host_driver(*args)
        cm.timings["host_driver"] = time.perf_counter() - t

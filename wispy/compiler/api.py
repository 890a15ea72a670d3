"""`compile_model()`: a PyTorch model in, a compiled IREE module out."""
from __future__ import annotations

import platform
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from wispy._mlir import new_context
from wispy.errors import InputMismatchError, WispyError
from wispy.compiler.importer import (ImportedModule, decomposition_table, import_exported, import_model,
                                    normalize_args)
from wispy.compiler.pipeline import (DEFAULT_DISPATCH_PIPELINE, DEFAULT_TORCH_PIPELINE, DEFAULT_WISPY_PIPELINE,
                       PHASES, PipelineOptions, run_pipeline, without_pass)
from wispy.dialects import LoweringOptions
from wispy.dialects.recurrent import MODES as RECURRENT_KERNEL_MODES, select as recurrent_select
from wispy.passes.recurrent_kernel import kernel_takes
from wispy.targets import Target
from wispy.ir.weights import WeightStore


HOST_DRIVERS = ("local-task", "local-sync")
# With a recurrent kernel on several workers, local-sync (which runs them one after the
# other, as one) is chosen only when it is this much faster than local-task: the LSTM
# 2x512 (two workers) on local-sync was once chosen from a noisy spell, 9.12 ms side by
# side afterwards against 6.30-6.53 on local-task in two other runs
# (benchmarks/dense_vs_peers.py --models lstm).
SERIAL_DRIVER_MARGIN = 0.85


class CompiledModel:
    """A compiled module: call it like the model (numpy arrays or torch tensors) where the
    target runs here (host; arm64 through qemu; vulkan on any Vulkan driver), `.save()` it
    for `iree-run-module`."""

    def __init__(self, vmfb: bytes, weights: WeightStore, target: Target, input_specs: list,
                 output_count: int, *, external_weights: bool = False, remarks=(), timings=None,
                 function: str = "main", host_driver: str = "local-task", kernel_workers: int = 1):
        self.vmfb = vmfb
        self.weights = weights
        self.target = target
        self.input_specs = input_specs
        self.output_count = output_count
        self.external_weights = external_weights
        self.remarks = list(remarks)
        self.timings = dict(timings or {})
        self.function = function
        self.kernel_workers = kernel_workers  # the most workers of a recurrent kernel in the module
        self._loaded = None
        self._files: Optional[tempfile.TemporaryDirectory] = None
        self.host_driver = host_driver

    # -- the host driver -----------------------------------------------------------
    @property
    def host_driver(self) -> str:
        """IREE's CPU driver `run()` uses where the target runs on this host: "local-task"
        (a worker per core, IREE's default) or "local-sync" (inline on the caller's
        thread). `iree-run-module --device=...` takes the same names."""
        return self._host_driver

    @host_driver.setter
    def host_driver(self, driver: str) -> None:
        if driver not in HOST_DRIVERS:
            raise WispyError(f"unknown host driver {driver!r}: choose among {', '.join(HOST_DRIVERS)} "
                             "(or host_driver='auto' in compile_model)")
        if getattr(self, "_host_driver", None) != driver and self.target.runs_here == "host":
            self._loaded = None
        self._host_driver = driver

    def release(self) -> None:
        """Lets go of the loaded module and its device (a Vulkan device's threads with it);
        the next call loads them again."""
        self._loaded = None

    def choose_host_driver(self, *args, calls: int = 15, settle_s: float = 0.02) -> dict:
        """Times the module on `args` with each host driver (interleaved calls, each after
        `settle_s` of idle time, as an application calling once per utterance sees it),
        keeps the faster in `host_driver` and returns {driver: median ms}. A small model's
        steps are shorter than waking IREE's workers: the shipped gru-small took 6.2-6.4
        ms on local-sync against 7.7-9.1 ms on local-task, called after 0.1 s idle; larger
        models gain from the second core (LSTM 2x512: 15 against 34 ms;
        benchmarks/host_drivers.py). Fifteen calls each: with five, a noisy spell once gave
        the LSTM 2x512 local-sync, 14.1 ms against 6.3-6.7 on local-task; with nine, once
        the GRU 2x1024 pruned 10x on two workers (3.41 ms side by side afterwards, against
        2.1-2.9 on local-task in six later choices of 2.09-2.85 against 3.26-3.45 ms)."""
        if self.target.runs_here != "host":
            raise WispyError(f"modules for target {self.target.name} do not run on this host's CPU drivers")
        arrays = self._check_inputs(args)
        from wispy._timing import time_round_robin as _time_round_robin
        from wispy.runtime.host import LoadedModule

        vmfb, irpa = self._saved() if self.external_weights else (self.vmfb, None)
        mods = {d: LoadedModule(vmfb, driver=d, parameters=irpa) for d in HOST_DRIVERS}
        runners = {d: (lambda m=m: m(*arrays, function=self.function)) for d, m in mods.items()}

        def medians_of_a_round() -> dict:
            times = _time_round_robin(runners, calls, warmup=1, settle_s=settle_s)
            return {d: float(np.median(v)) for d, v in times.items()}

        medians = medians_of_a_round()
        best = min(medians, key=medians.get)
        why = ""
        if self.kernel_workers > 1:
            why = f"; local-sync runs the recurrent kernel's {self.kernel_workers} workers as one, so it " \
                  f"must take under {SERIAL_DRIVER_MARGIN:.0%} of local-task's time in two rounds"
            serial = lambda m: m["local-sync"] < SERIAL_DRIVER_MARGIN * m["local-task"]  # noqa: E731
            best = "local-task"
            if serial(medians):
                # A spell in which the host lends the second core elsewhere slows local-task's
                # workers alone: a second round must agree (the GRU 2x1024 pruned 20x once got
                # local-sync at 1.38 against 1.70 ms, then ran 1.31 ms against ~0.9 on
                # local-task beside it).
                again = medians_of_a_round()
                why += f" (second round: local-task {again['local-task']:.2f} ms, local-sync {again['local-sync']:.2f} ms)"
                best = "local-sync" if serial(again) else "local-task"
        self.host_driver = best
        self._loaded = mods[best]
        self.remarks.append("host driver: " + best + " (" + ", ".join(
            f"{d} {ms:.2f} ms" for d, ms in medians.items()) + f", median of {calls} calls each{why})")
        return medians

    # -- saving ------------------------------------------------------------------
    def save(self, path) -> Path:
        """Writes the `.vmfb` (and, for external weights, `<name>.irpa` beside it)."""
        path = Path(path)
        if path.suffix != ".vmfb":
            path = path.with_suffix(".vmfb")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.vmfb)
        if self.external_weights:
            self.weights.save_irpa(path.with_suffix(".irpa"))
        return path

    @property
    def parameters_path(self) -> Optional[Path]:
        return self._saved()[1]

    def _saved(self) -> tuple[Path, Optional[Path]]:
        if self._files is None:
            self._files = tempfile.TemporaryDirectory(prefix="wispy-model-")
            self.save(Path(self._files.name) / "model.vmfb")
        vmfb = Path(self._files.name) / "model.vmfb"
        irpa = vmfb.with_suffix(".irpa") if self.external_weights else None
        return vmfb, irpa

    # -- running -----------------------------------------------------------------
    def _check_inputs(self, args) -> list[np.ndarray]:
        if len(args) != len(self.input_specs):
            raise InputMismatchError(
                f"the model was compiled for {len(self.input_specs)} input(s), got {len(args)}")
        arrays = []
        for i, (arg, (shape, dtype)) in enumerate(zip(args, self.input_specs)):
            if isinstance(arg, torch.Tensor):
                arg = arg.detach().cpu().numpy()
            arr = np.asarray(arg)
            if arr.dtype != dtype:
                raise InputMismatchError(
                    f"input {i} has dtype {arr.dtype}, the model was compiled for {dtype} "
                    f"(convert with .astype(np.{dtype}))")
            if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
                want = "x".join("?" if s is None else str(s) for s in shape)
                raise InputMismatchError(
                    f"input {i} has shape {'x'.join(map(str, arr.shape)) or 'scalar'}, the model was "
                    f"compiled for {want}; recompile with dynamic_shapes= for other shapes")
            arrays.append(np.ascontiguousarray(arr))
        return arrays

    def run(self, *args) -> list[np.ndarray]:
        """Runs on numpy arrays; always returns a list of numpy arrays."""
        arrays = self._check_inputs(args)
        how = self.target.runs_here
        if how == "":
            raise WispyError(f"modules for target {self.target.name} cannot run on this machine "
                             "(no armv7 runtime); copy the saved .vmfb to a device and use iree-run-module")
        if how == "qemu":
            from wispy.runtime.arm64 import run_module_arm64

            vmfb, irpa = self._saved()
            return run_module_arm64(vmfb, arrays, function=self.function, parameters=irpa)
        if how == "vulkan":
            _check_vulkan_device(self.target)
        if self._loaded is None:
            from wispy.runtime.host import LoadedModule

            driver = "vulkan" if how == "vulkan" else self.host_driver
            irpa = self._saved()[1] if self.external_weights else None
            self._loaded = LoadedModule(self.vmfb, driver=driver, parameters=irpa)
        return self._loaded(*arrays, function=self.function)

    def __call__(self, *args):
        as_torch = any(isinstance(a, torch.Tensor) for a in args)
        outs = self.run(*args)
        if as_torch:
            outs = [torch.from_numpy(np.ascontiguousarray(o)) for o in outs]
        return outs[0] if len(outs) == 1 else tuple(outs)

    def __repr__(self) -> str:
        ins = ", ".join("x".join("?" if d is None else str(d) for d in s) + f":{t}" for s, t in self.input_specs)
        return f"<CompiledModel target={self.target} inputs=({ins}) vmfb={len(self.vmfb) / 1e6:.1f} MB>"


def _check_vulkan_device(target: Target) -> None:
    """Refuses to run a module built for a GPU's subgroup size on lavapipe, where its
    reductions would be silently wrong."""
    try:
        import iree.runtime as rt

        names = [d["name"] for d in rt.get_driver("vulkan").query_available_devices()]
    except Exception:
        return  # the runtime reports the missing driver itself
    if names and all("llvmpipe" in n for n in names) and target.vulkan_target != "lavapipe":
        raise WispyError(
            f"this module targets {target.vulkan_target} but the only Vulkan device here is lavapipe "
            f"({names[0]}), whose subgroup size differs: results would be wrong. Compile with "
            "vulkan_target='lavapipe' to run here, or run the saved .vmfb on the device.")


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
                  host_driver: str = "local-task", progress: Optional[bool] = None) -> CompiledModel:
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
                      Measured here: README, "A GRU or LSTM layer's whole recurrence"
    int8_kernel       int8 products of quantized layers (static shapes) on hosts with AVX-512
                      VNNI: "auto" runs them on wispy's own kernel (wispy-int8-vnni: unsigned
                      by signed bytes, twice IREE's int8 matmul), "off" on IREE's
    host_driver       the IREE driver `run()` uses on this host: "local-task" (IREE's
                      default, a worker per core), "local-sync" (the caller's thread), or
                      "auto": both timed on `example_args` after compiling, the faster kept
                      (`CompiledModel.choose_host_driver`; the times in `remarks`)
    """
    if recurrent_kernel not in RECURRENT_KERNEL_MODES:
        raise WispyError(f"unknown recurrent_kernel {recurrent_kernel!r}: choose among "
                         f"{', '.join(RECURRENT_KERNEL_MODES)}")
    if recurrent_workers != "auto" and (isinstance(recurrent_workers, bool) or
                                        not isinstance(recurrent_workers, int) or
                                        not 1 <= recurrent_workers <= 32):
        raise WispyError(f"recurrent_workers must be 'auto' or a whole number from 1 to 32, "
                         f"not {recurrent_workers!r}")
    if recurrent_workers != "auto":
        if not re.search(r"wispy-recurrent-kernel(?![{\w-])", torch_pipeline):
            raise WispyError("recurrent_workers needs wispy-recurrent-kernel in the torch pipeline without "
                             f"options of its own (got {torch_pipeline!r}); give it workers=N there instead")
        torch_pipeline = re.sub(r"wispy-recurrent-kernel(?![{\w-])",
                                f"wispy-recurrent-kernel{{workers={recurrent_workers}}}", torch_pipeline)
    if not block_sparse:  # the kernel (where it runs) takes every matrix whole, zeros included
        torch_pipeline = re.sub(r"wispy-recurrent-kernel(?![\w-])(\{)?",
                                lambda m: "wispy-recurrent-kernel{dense=true" + (" " if m.group(1) else "}"),
                                torch_pipeline)
    if int8_kernel not in ("auto", "off"):
        raise WispyError(f"unknown int8_kernel {int8_kernel!r}: choose among auto, off")
    if host_driver not in HOST_DRIVERS + ("auto",):
        raise WispyError(f"unknown host_driver {host_driver!r}: choose among "
                         f"{', '.join(HOST_DRIVERS)} or 'auto'")
    tgt = Target.parse(target, cpu_features=cpu_features, vulkan_target=vulkan_target) \
        if not isinstance(target, Target) else target
    step, close = _progress_reporter(progress)
    t0 = time.perf_counter()
    arm = tgt.name in ("arm64", "armv7")
    lowering_options = LoweringOptions(
        vnni=int8_kernel == "auto" and tgt.name == "host" and "wispy-int8-vnni" in torch_pipeline
        and any("+avx512vnni" in f for f in tgt.iree_flags()),
        # x86 only: on arm64 (frintn) the add and subtract cost Wav2letter's direct build more
        # instructions than math.roundeven
        magic_round=tgt.name == "host" and platform.machine().lower() in ("x86_64", "amd64"),
        fused_winograd=arm, pad_ragged=arm)
    try:
        if step:
            step("import")
        ctx = new_context()
        if isinstance(model, torch.export.ExportedProgram):
            with ctx:
                imported: ImportedModule = import_exported(
                    model.run_decompositions(decomposition_table(lowering_options)), ctx)
        else:
            kernel = None
            if rnn_loops and dynamic_shapes is None and "wispy-recurrent-kernel" in torch_pipeline:
                kernel = recurrent_select(tgt, recurrent_kernel, workers=recurrent_workers, sparse=block_sparse,
                                          takes=kernel_takes(tgt))
            imported = import_model(model, normalize_args(example_args), ctx, dynamic_shapes, rnn_loops,
                                    kernel, lowering_options)
        t_import = time.perf_counter() - t0
        if not block_sparse:
            wispy_pipeline = without_pass(wispy_pipeline, "wispy-block-sparse")
        opts = PipelineOptions(tgt, torch_pipeline, wispy_pipeline, dispatch_pipeline,
                               external_weights, Path(dump_dir) if dump_dir else None, explain,
                               tuple(iree_flags), step)
        result = run_pipeline(imported.module, imported.weights, opts)
    finally:
        close()
    timings = {"import": t_import, **result.timings}
    cm = CompiledModel(result.vmfb, result.weights, tgt, imported.input_specs,
                       imported.output_count, external_weights=external_weights,
                       remarks=list(result.remarks), timings=timings,
                       host_driver=host_driver if host_driver != "auto" else "local-task",
                       kernel_workers=result.facts.get("kernel_workers", 1))
    if host_driver == "auto":
        args = list(normalize_args(example_args))
        if tgt.runs_here != "host":
            cm.remarks.append(f"host driver: not chosen, {tgt.name} modules do not run on this host's CPU")
        elif not args:
            cm.remarks.append("host driver: local-task (no example inputs to time the drivers on)")
        else:
            t = time.perf_counter()
            cm.choose_host_driver(*args)
            cm.timings["host_driver"] = time.perf_counter() - t
    return cm

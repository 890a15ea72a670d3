"""`CompiledModel`: a compiled module to call like the model, save for `iree-run-module`, or
run on another driver."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from wispy.compiler.options import HOST_DRIVERS
from wispy.errors import InputMismatchError, WispyError
from wispy.ir.weights import WeightStore
from wispy.targets import Target

# With a recurrent kernel on several workers, local-sync (which runs them one after the
# other, as one) is chosen only when it is this much faster than local-task: a noisy spell
# once made it look faster (docs/design/host-runtime.md#host-driver).
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
        steps are shorter than waking IREE's workers, so it runs faster on local-sync;
        larger models gain from the second core. Fifteen calls each, as fewer let a noisy
        spell pick the wrong driver (docs/design/host-runtime.md#host-driver)."""
        if self.target.runs_here != "host":
            raise WispyError(f"modules for target {self.target.name} do not run on this host's CPU drivers")
        arrays = self._check_inputs(args)
        from wispy._timing import time_round_robin
        from wispy.runtime.host import LoadedModule

        vmfb, irpa = self._saved() if self.external_weights else (self.vmfb, None)
        mods = {d: LoadedModule(vmfb, driver=d, parameters=irpa) for d in HOST_DRIVERS}
        runners = {d: (lambda m=m: m(*arrays, function=self.function)) for d, m in mods.items()}

        def medians_of_a_round() -> dict:
            times = time_round_robin(runners, calls, warmup=1, settle_s=settle_s)
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
                # workers alone: a second round must agree (docs/design/host-runtime.md#host-driver).
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
                raise InputMismatchError(
                    f"input {i} has shape {_shape_text(arr.shape)}, the model was compiled for "
                    f"{_shape_text(shape)}; recompile with dynamic_shapes= for other shapes")
            arrays.append(np.asarray(arr, order="C"))  # not ascontiguousarray: it makes a 0-d array 1-d
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
            outs = [torch.from_numpy(np.asarray(o, order="C")) for o in outs]
        return outs[0] if len(outs) == 1 else tuple(outs)

    def __repr__(self) -> str:
        ins = ", ".join(f"{_shape_text(s)}:{t}" for s, t in self.input_specs)
        return f"<CompiledModel target={self.target} inputs=({ins}) vmfb={len(self.vmfb) / 1e6:.1f} MB>"


def _shape_text(shape) -> str:
    """3x4, 1x?x40 (a dynamic dim) or scalar."""
    return "x".join("?" if d is None else str(d) for d in shape) or "scalar"


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

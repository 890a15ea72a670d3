"""Loading a .vmfb in-process with iree.runtime and calling it on numpy arrays.

`LoadedModule` is what a compiled model wraps: it keeps the VM instance, the
(cached, shared) HAL device and the VM context alive across calls. Inputs are
copied into device buffers and results copied back (see `vulkan.py` for why
Vulkan needs this); the same path serves local-task, local-sync and vulkan.
"""
from __future__ import annotations

import atexit
import os
import queue
import shutil
import threading
import weakref
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from wispy.errors import InputMismatchError
from wispy.runtime._io import function_cconv
from wispy.runtime.errors import WispyRuntimeError
from wispy.runtime.vulkan import PathOrBytes, read_output, stage_input, vulkan_available

DRIVERS = ("local-task", "local-sync", "vulkan")

# local-task calls wait on a thread of low priority (nice 19), see _Waiter; "0" turns it off
WAITER_ENV = "WISPY_LOW_PRIORITY_WAIT"


class _Waiter:
    """A thread of the lowest normal priority (nice 19) that makes a module's calls on
    local-task and waits for them, while the caller blocks.

    Waiting for local-task's workers, IREE 3.13's calling thread spins (a `pause` loop) for
    much of a call; with as many workers as cores it takes a core from one of them. This
    thread's spin yields the core to the workers; the caller's own wait is a futex, which
    does not spin (docs/design/host-runtime.md#who-waits-for-a-call)."""

    def __init__(self) -> None:
        self._jobs: "queue.SimpleQueue" = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="wispy-iree-wait", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except (AttributeError, OSError):  # not Linux: the thread keeps its priority
            pass
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, box, done = job
            try:
                box.append((True, fn()))
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller
                box.append((False, e))
            del fn, job
            done.set()
            del box, done

    def run(self, fn):
        """fn() on the waiter thread; its result, or its exception raised here."""
        box: list = []
        done = threading.Event()
        self._jobs.put((fn, box, done))
        done.wait()
        ok, value = box[0]
        if ok:
            return value
        raise value

    def close(self) -> None:
        self._jobs.put(None)


# Every LoadedModule not yet collected: `_close_all` lets go of their IREE objects at exit.
_LIVE: "weakref.WeakSet[LoadedModule]" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """Closes the modules still loaded when Python exits. A module still referenced then (a
    global of the script, kept past the clearing of globals by a traceback that torch holds
    after a failed export) would otherwise outlive iree.runtime's bindings, which then print
    some 60 lines of `nanobind: leaked ...` at exit."""
    for module in list(_LIVE):
        module.close()


class LoadedModule:
    """A vmfb loaded for one driver, callable on numpy arrays (or CPU torch tensors).

        m = LoadedModule("model.vmfb", driver="local-task", parameters="model.irpa")
        y0, y1 = m(x0, x1)                  # always a list of np.ndarray
        m(x, function="other")
        m.function_names                    # ['main', ...]

    `parameters` is an optional .irpa (or .gguf/.safetensors) archive served to
    the module under `parameter_scope` ("model": `#flow.parameter.named<"model"::"w">`).
    Calls are serialised with a lock; the device is shared by all modules of a
    driver (iree.runtime caches it).
    """

    def __init__(
        self,
        vmfb: PathOrBytes,
        driver: str = "local-task",
        parameters: Optional[Union[str, os.PathLike]] = None,
        *,
        parameter_scope: str = "model",
    ) -> None:
        import iree.runtime as ireert

        if driver not in DRIVERS:
            raise WispyRuntimeError(f"unknown driver {driver!r}; expected one of {DRIVERS}")
        if driver == "vulkan" and not vulkan_available():
            raise WispyRuntimeError(
                "no Vulkan device: install a Vulkan driver and loader "
                "(`make setup`, or apt-get install mesa-vulkan-drivers libvulkan1)"
            )
        self.driver = driver
        self.parameters = Path(parameters) if parameters is not None else None
        self._lock = threading.Lock()
        self._instance = ireert.VmInstance()
        try:
            # A Vulkan device of its own, released with this module: on lavapipe two of
            # IREE's threads per device spin while it lives and take the cores from host
            # code (docs/design/host-runtime.md#a-vulkan-device-per-module).
            # CPU devices stay shared (one task system per process).
            self._device = ireert.get_device(driver, cache=driver != "vulkan")
        except Exception as e:  # noqa: BLE001
            raise WispyRuntimeError(f"cannot create an IREE {driver} device: {e}") from e

        modules = [ireert.create_hal_module(self._instance, self._device)]
        self._parameter_index = None
        if self.parameters is not None:
            if not self.parameters.is_file():
                raise WispyRuntimeError(f"parameter file not found: {self.parameters}")
            index = ireert.ParameterIndex()
            try:
                index.load(str(self.parameters))
            except Exception as e:  # noqa: BLE001
                raise WispyRuntimeError(f"cannot load parameters {self.parameters}: {e}") from e
            provider = index.create_provider(scope=parameter_scope)
            modules.append(ireert.create_io_parameters_module(self._instance, provider))
            self._parameter_index = index  # keeps the mapped archive alive

        try:
            if isinstance(vmfb, (bytes, bytearray, memoryview)):
                self._module = ireert.VmModule.copy_buffer(self._instance, bytes(vmfb))
                self.path: Optional[Path] = None
            else:
                self.path = Path(vmfb)
                if not self.path.is_file():
                    raise WispyRuntimeError(f"module file not found: {self.path}")
                self._module = ireert.VmModule.mmap(self._instance, str(self.path))
        except WispyRuntimeError:
            raise
        except Exception as e:  # noqa: BLE001
            raise WispyRuntimeError(f"cannot read module: {e}") from e
        modules.append(self._module)
        try:
            self._context = ireert.VmContext(self._instance, modules)
        except Exception as e:  # noqa: BLE001
            hint = ""
            if self.parameters is None and "parameter" in str(e).lower():
                hint = " (the module reads external parameters: pass parameters=PATH.irpa)"
            raise WispyRuntimeError(
                f"cannot load the module on {driver}{hint}: {e}"
            ) from e
        self._functions: Dict[str, Tuple[Any, Optional[Tuple[str, str]]]] = {}
        self._waiter: Optional[_Waiter] = None
        if driver == "local-task" and os.environ.get(WAITER_ENV, "1") != "0":
            self._waiter = _Waiter()
        _LIVE.add(self)

    def close(self) -> None:
        """Lets go of the module's IREE objects (context, module, device, instance); calling
        it afterwards raises a WispyRuntimeError. Done for every live module at exit."""
        with self._lock:
            if self._waiter is not None:
                self._waiter.close()
                self._waiter = None
            self._functions.clear()
            self._context = self._module = self._parameter_index = self._device = self._instance = None

    def __del__(self) -> None:
        waiter = getattr(self, "_waiter", None)
        if waiter is not None:
            waiter.close()

    @property
    def device(self) -> Any:
        return self._device

    @property
    def function_names(self) -> List[str]:
        """The callable (synchronous) exported functions, e.g. ['main']."""
        if self._module is None:
            return []
        return [
            n
            for n in self._module.function_names
            if not n.startswith("__") and not n.endswith("$async")
        ]

    def _lookup(self, function: str) -> Tuple[Any, Optional[Tuple[str, str]]]:
        cached = self._functions.get(function)
        if cached is None:
            if self._module is None:
                raise WispyRuntimeError("this module was closed (LoadedModule.close): load the .vmfb again")
            fn = self._module.lookup_function(function)
            if fn is None:
                raise WispyRuntimeError(
                    f"module has no function {function!r}; it has {self.function_names}"
                )
            cached = (fn, function_cconv(fn))
            self._functions[function] = cached
        return cached

    def __call__(self, *inputs: Any, function: str = "main") -> List[np.ndarray]:
        import iree.runtime as ireert

        fn, cconv = self._lookup(function)
        if cconv is not None and len(cconv[0]) != len(inputs):
            raise WispyRuntimeError(
                f"{function} takes {len(cconv[0])} inputs, got {len(inputs)}"
            )
        with self._lock:
            args = ireert.VmVariantList(len(inputs))
            for i, x in enumerate(inputs):
                kind = cconv[0][i] if cconv is not None else "r"
                if kind in "iI":
                    args.push_int(int(np.asarray(x)))
                elif kind in "fF":
                    args.push_float(float(np.asarray(x)))
                else:
                    args.push_ref(stage_input(self._device, x).ref)
            n_results = len(cconv[1]) if cconv is not None else 4
            results = ireert.VmVariantList(max(n_results, 1))
            try:
                if self._waiter is not None:
                    self._waiter.run(lambda: self._context.invoke(fn, args, results))
                else:
                    self._context.invoke(fn, args, results)
            except Exception as e:  # noqa: BLE001
                mismatch = input_mismatch(function, str(e), inputs)
                if mismatch:
                    raise InputMismatchError(mismatch) from e
                raise WispyRuntimeError(f"{function} failed on {self.driver}: {e}") from e
            return [self._result(results, i) for i in range(len(results))]

    def _result(self, results: Any, i: int) -> np.ndarray:
        import iree.runtime as ireert

        try:
            view = results.get_as_object(i, ireert.HalBufferView)
        except Exception:  # noqa: BLE001 - not a buffer view: a primitive value
            return np.asarray(results.get_variant(i))
        return read_output(self._device, view)

    def __repr__(self) -> str:
        src = str(self.path) if self.path else "<bytes>"
        return f"LoadedModule({src!r}, driver={self.driver!r}, functions={self.function_names})"


_IREE_TYPES = {"f32": "float32", "f16": "float16", "f64": "float64", "bf16": "bfloat16", "i8": "int8",
               "i16": "int16", "i32": "int32", "i64": "int64", "i1": "bool", "ui8": "uint8"}


def input_mismatch(function: str, message: str, inputs: Sequence[Any]) -> Optional[str]:
    """IREE's "buffer_diagnostics.c: INVALID_ARGUMENT; tensor shape rank mismatch; expected
    shape `12x12`, actual shape `12`" in the caller's terms: which input, the shape (or dtype)
    the module takes and the one it was given; None for other errors."""
    import re

    m = re.search(r"tensor (shape rank|shape dimension \d+|element type) mismatch; expected (\S+?)(?: \(\w+\))? "
                  r"but have (\S+?)(?: \(\w+\))?;(?: expected shape `([^`]*)`, actual shape `([^`]*)`)?", message)
    if not m:
        return None
    arrays = [np.asarray(x) for x in inputs]
    if m.group(1) == "element type":
        want, have = (_IREE_TYPES.get(t, t) for t in (m.group(2), m.group(3)))
        index = next((i for i, a in enumerate(arrays) if a.dtype.name == have), None)
        what = f"has dtype {have}, the module takes {want} (convert with .astype(np.{want}))"
    else:
        have = m.group(5) or ""
        index = next((i for i, a in enumerate(arrays) if "x".join(map(str, a.shape)) == have), None)
        if m.group(1) == "shape rank":  # IREE's "expected shape" is then not the module's
            what = f"has shape {have or 'scalar'} ({m.group(3)} dimensions), the module takes {m.group(2)} dimensions"
        else:
            what = f"has shape {have or 'scalar'}, the module takes {m.group(4)}"
    return f"{function}: input {index if index is not None else '?'} {what}"


def iree_tool(name: str) -> str:
    """Path of a host IREE tool (iree-run-module, ...) from the iree-base-runtime wheel."""
    try:
        import iree._runtime_libs as libs  # the wheel's tool binaries live here

        candidate = Path(libs.__file__).parent / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    except ImportError:
        pass
    found = shutil.which(name)
    if found:
        return found
    raise WispyRuntimeError(f"{name} not found: pip install iree-base-runtime")


def run_module_cli(
    vmfb_path: Union[str, os.PathLike],
    inputs: Sequence[Any],
    function: str = "main",
    *,
    device: str = "local-task",
    parameters: Optional[Union[str, os.PathLike]] = None,
    timeout: Optional[float] = None,
) -> List[np.ndarray]:
    """Run a vmfb with the host `iree-run-module` binary (e.g. device='vulkan').

    The same path as users take with the saved .vmfb; handy to cross-check the
    in-process runner.
    """
    from wispy.runtime._cli import run_module_tool

    return run_module_tool(
        [iree_tool("iree-run-module")], vmfb_path, inputs, function,
        device=device, parameters=parameters, timeout=timeout,
    )

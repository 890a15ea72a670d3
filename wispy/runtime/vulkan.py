"""Running modules on IREE's Vulkan driver (lavapipe, Mesa's CPU Vulkan, on this machine).

Staging: the Python binding's default path imports numpy memory straight into
the device, which Vulkan refuses ("host allocation import pointer does not
satisfy Vulkan minImportedHostPointerAlignment 4096"); `DeviceArray.to_host()`
fails the same way on results. So inputs are copied into device buffers
(`HalAllocator.allocate_buffer_copy`) and results that the host cannot map are
copied into a host-visible staging buffer with a queue copy, then read. These
helpers work for every driver; `LoadedModule` uses them for all of them.

Targets on lavapipe (measured, IREE 3.13, Mesa 22.3 lavapipe, subgroup size 8):
elementwise code runs correctly for every `--iree-vulkan-target` tried, but
named GPU targets assume their own subgroup size (valhall 16, adreno 64,
ampere 32, ...) and subgroup reductions then return WRONG numbers without
any error; rdna3 int8 kernels fail to load ("requires subgroup size 32 outside
device range [8, 8]"). The default target (no `--iree-vulkan-target`) gets
reductions right but int8 matmuls wrong. To test numerics on lavapipe,
compile with `LAVAPIPE_DEVICE_TARGETS` (below) as the module's
`hal.device.targets` attribute: a valhall-like target with subgroup size 8.
"""
from __future__ import annotations

import functools
import os
from typing import Any, List, Optional, Sequence, Union

import numpy as np

from wispy.runtime._io import to_numpy
from wispy.runtime.errors import WispyRuntimeError

#: `#iree_gpu.target` matching lavapipe (Mesa 22.3): Mali-valhall features with
#: lavapipe's subgroup size of 8. Verified correct on lavapipe for f32 matmul,
#: row reductions and int8 matmul.
LAVAPIPE_TARGET_INFO = (
    '#iree_gpu.target<arch = "valhall1", features = "spirv:v1.6,cap:Shader", '
    "wgp = <compute = fp32|fp16|int32|int16|int8, storage = b64|b32|b16|b8, "
    "subgroup = shuffle|arithmetic, dot = dp4xi8toi32, mma = [], "
    "subgroup_size_choices = [8], max_workgroup_sizes = [1024, 1024, 1024], "
    "max_thread_count_per_workgroup = 1024, max_workgroup_memory_bytes = 32768, "
    "max_workgroup_counts = [65535, 65535, 65535]>>"
)

#: Value for `module attributes {hal.device.targets = ...}`; compile such a
#: module with iree-compile and no --iree-hal-target-device flag.
LAVAPIPE_DEVICE_TARGETS = (
    '[#hal.device.target<"vulkan", [#hal.executable.target<"vulkan-spirv", '
    f'"vulkan-spirv-fb", {{iree_codegen.target_info = {LAVAPIPE_TARGET_INFO}}}>]> : !hal.device]'
)

PathOrBytes = Union[str, os.PathLike, bytes, bytearray, memoryview]


def stage_input(device: Any, value: Any) -> Any:
    """Copy one input into a new device-local buffer; returns its HalBufferView."""
    import iree.runtime as ireert

    arr = to_numpy(value)
    element_type = ireert.dtypes.map_dtype_to_hal_element_type(arr.dtype)
    if element_type is None:
        raise WispyRuntimeError(f"unsupported input dtype {arr.dtype}")
    try:
        view = device.allocator.allocate_buffer_copy(
            memory_type=ireert.MemoryType.DEVICE_LOCAL,
            allowed_usage=ireert.BufferUsage.DEFAULT,
            device=device,
            buffer=arr,
            element_type=element_type,
        )
    except Exception as e:  # noqa: BLE001
        raise WispyRuntimeError(f"cannot copy a {arr.dtype}{list(arr.shape)} input to the device: {e}") from e
    return view


def _mappable(buffer: Any) -> bool:
    import iree.runtime as ireert

    host_visible = int(ireert.MemoryType.HOST_VISIBLE)
    scoped = int(ireert.BufferUsage.MAPPING_SCOPED)
    return (buffer.memory_type() & host_visible) == host_visible and (
        buffer.allowed_usage() & scoped
    ) == scoped


def read_output(device: Any, view: Any) -> np.ndarray:
    """A fresh numpy array holding the contents of a result HalBufferView.

    Maps the buffer when the host may (local-task/local-sync); otherwise copies it
    into a host-visible staging buffer on the device's queue and waits (vulkan).
    """
    import iree.runtime as ireert

    dtype = ireert.HalElementType.map_to_dtype(view.element_type)
    shape = list(view.shape)
    buffer = view.get_buffer()
    if _mappable(buffer):
        mapped = view.map()
        return np.array(mapped.asarray(shape, dtype), copy=True)
    nbytes = buffer.byte_length()
    staging = device.allocator.allocate_buffer(
        memory_type=int(ireert.MemoryType.HOST_LOCAL | ireert.MemoryType.DEVICE_VISIBLE),
        allowed_usage=int(ireert.BufferUsage.TRANSFER_TARGET | ireert.BufferUsage.MAPPING_SCOPED),
        allocation_size=max(nbytes, 1),
    )
    if nbytes:
        sem = device.create_semaphore(0)
        device.queue_copy(
            buffer,
            staging,
            wait_semaphores=ireert.HalFence.create_at(sem, 0),
            signal_semaphores=ireert.HalFence.create_at(sem, 1),
        )
        ireert.HalFence.create_at(sem, 1).wait()
    mapped = staging.map()
    return np.array(mapped.asarray(shape, dtype), copy=True)


@functools.lru_cache(maxsize=None)
def vulkan_available() -> bool:
    """True if iree.runtime can create a Vulkan device here (lavapipe counts)."""
    try:
        import iree.runtime as ireert

        if "vulkan" not in ireert.query_available_drivers():
            return False
        if not ireert.get_driver("vulkan").query_available_devices():
            return False
        ireert.get_device("vulkan", cache=False)  # created and let go (see LoadedModule)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not available"
        return False


def run_module_vulkan(
    vmfb: PathOrBytes,
    inputs: Sequence[Any],
    function: str = "main",
    *,
    parameters: Optional[Union[str, os.PathLike]] = None,
    parameter_scope: str = "model",
) -> List[np.ndarray]:
    """Run `function` of a Vulkan vmfb (bytes or path) in-process; always returns a list.

    `parameters` is an optional .irpa archive served under `parameter_scope`
    (the scope of `#flow.parameter.named<"model"::...>` globals).
    """
    if not vulkan_available():
        raise WispyRuntimeError(
            "no Vulkan device: install a Vulkan driver and loader "
            "(`make setup`, or apt-get install mesa-vulkan-drivers libvulkan1)"
        )
    from wispy.runtime.host import LoadedModule

    return LoadedModule(vmfb, driver="vulkan", parameters=parameters, parameter_scope=parameter_scope)(
        *inputs, function=function
    )

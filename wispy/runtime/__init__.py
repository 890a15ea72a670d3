"""Loading and running wispy's modules: in-process (local-task, local-sync,
vulkan), and aarch64 modules under qemu-user, with instruction counts."""
from wispy.runtime.arm64 import (
    aarch64_tools_dir,
    compile_plugin,
    count_instructions_arm64,
    qemu_available,
    qemu_command,
    run_module_arm64,
)
from wispy.runtime.errors import WispyRuntimeError
from wispy.runtime.host import LoadedModule, iree_tool, run_module_cli
from wispy.runtime.vulkan import (
    LAVAPIPE_DEVICE_TARGETS,
    LAVAPIPE_TARGET_INFO,
    run_module_vulkan,
    vulkan_available,
)



def run_vmfb(module, inputs, *, device: str = "host", function: str = "main", parameters=None):
    """Runs a saved .vmfb on numpy inputs: device "host" (local-task), "local-sync" (the
    host CPU on the calling thread), "arm64" (under qemu-user here) or "vulkan"; returns
    a list of numpy arrays."""
    if device == "arm64":
        return run_module_arm64(module, inputs, function=function, parameters=parameters)
    if device == "vulkan":
        return run_module_vulkan(module, inputs, function=function, parameters=parameters)
    if device not in ("host", "local-sync"):
        raise WispyRuntimeError(f"unknown device {device!r}: host, local-sync, arm64 or vulkan")
    driver = "local-sync" if device == "local-sync" else "local-task"
    return LoadedModule(module, driver=driver, parameters=parameters)(*inputs, function=function)


__all__ = [
    "run_vmfb",
    "LAVAPIPE_DEVICE_TARGETS",
    "LAVAPIPE_TARGET_INFO",
    "LoadedModule",
    "WispyRuntimeError",
    "aarch64_tools_dir",
    "compile_plugin",
    "count_instructions_arm64",
    "iree_tool",
    "qemu_available",
    "qemu_command",
    "run_module_arm64",
    "run_module_cli",
    "run_module_vulkan",
    "vulkan_available",
]

"""wispy: PyTorch speech models compiled to fast ARM and Vulkan binaries with IREE.

The public names load lazily, so `wispy --help` and `wispy.runtime` do not import torch.
"""
from wispy.errors import WispyError

__version__ = "0.1.0"
__all__ = ["compile_model", "compile_streaming", "StreamingModel", "StreamingSession", "CompiledModel", "Target", "TARGET_NAMES", "CompileError", "WispyError",
           "TargetError", "ModelLoadError", "InputMismatchError", "PipelineError", "__version__"]

_LAZY = {
    "compile_model": "wispy.api", "CompiledModel": "wispy.compiler.api",
    "compile_streaming": "wispy.compiler.streaming", "StreamingModel": "wispy.compiler.streaming",
    "StreamingSession": "wispy.compiler.streaming",
    "Target": "wispy.targets", "TARGET_NAMES": "wispy.targets",
    "CompileError": "wispy.errors", "TargetError": "wispy.errors",
    "ModelLoadError": "wispy.errors", "InputMismatchError": "wispy.errors",
    "PipelineError": "wispy.errors",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'wispy' has no attribute {name!r}")

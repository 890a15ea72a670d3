"""wispy: PyTorch speech models compiled to fast ARM and Vulkan binaries with IREE."""
from .compiler import (TARGET_NAMES, CompiledModel, CompileError, InputMismatchError, ModelLoadError,
                       PipelineError, Target, TargetError, WispyError, compile_model)

__version__ = "0.1.0"
__all__ = ["compile_model", "CompiledModel", "Target", "TARGET_NAMES", "CompileError", "WispyError",
           "TargetError", "ModelLoadError", "InputMismatchError", "PipelineError", "__version__"]

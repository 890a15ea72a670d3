from .api import CompiledModel, compile_model
from .errors import CompileError, InputMismatchError, ModelLoadError, PipelineError, TargetError, WispyError
from .targets import TARGET_NAMES, Target

__all__ = ["compile_model", "CompiledModel", "Target", "TARGET_NAMES", "CompileError", "WispyError",
           "TargetError", "ModelLoadError", "InputMismatchError", "PipelineError"]

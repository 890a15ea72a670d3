"""compile_model and its parts; names load lazily (see wispy/__init__.py)."""
_LAZY = {
    "compile_model": ".api", "CompiledModel": ".api", "Target": ".targets", "TARGET_NAMES": ".targets",
    "CompileError": ".errors", "WispyError": ".errors", "TargetError": ".errors",
    "ModelLoadError": ".errors", "InputMismatchError": ".errors", "PipelineError": ".errors",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'wispy.compiler' has no attribute {name!r}")

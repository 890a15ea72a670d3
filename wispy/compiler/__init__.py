"""The compiler: export, phases, options, compile_model (without the training side: see
wispy.api) and streaming; names load lazily (see wispy/__init__.py)."""
_LAZY = {
    "compile_model": "wispy.compiler.api", "CompiledModel": "wispy.compiler.api",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'wispy.compiler' has no attribute {name!r}")

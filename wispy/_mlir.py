"""The one module that imports the MLIR Python bindings shipped by iree-base-compiler.

Everything else in wispy imports `ir`, `passmanager` and the dialects from here, so a
change in the bindings' API between IREE releases is fixed in one place.
"""
from iree.compiler import ir, passmanager  # noqa: F401
from iree.compiler.dialects import arith, func, linalg, tensor, util  # noqa: F401

__all__ = ["ir", "passmanager", "arith", "func", "linalg", "tensor", "util", "new_context"]


def new_context() -> ir.Context:
    """A context with every dialect IREE and torch-mlir register (torch, linalg, util...)."""
    ctx = ir.Context()
    ctx.allow_unregistered_dialects = False
    return ctx

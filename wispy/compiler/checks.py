"""What cannot compile, refused before IREE sees it, in the user's terms.

IREE 3.13 crashes on zero-size tensors, spins for minutes on outputs whose size depends on
the data (`x[x > 0]`), and names neither the input nor the line at fault; torch.export's
own errors name the line only deep in their text. These checks run before and after the
export and raise a WispyError naming the input, or the op and the user's source line.
"""
from __future__ import annotations

import re
import traceback
from pathlib import Path
from typing import Optional

import torch

from wispy.errors import CompileError, InputMismatchError

# dtypes numpy (and so IREE's Python runtime) can hold
_NUMPY_DTYPES = {torch.float32, torch.float16, torch.float64, torch.int8, torch.uint8, torch.int16,
                 torch.int32, torch.int64, torch.bool}
_LIBRARY_DIRS = tuple(str(Path(m.__file__).resolve().parent) for m in (torch,)) + (
    str(Path(__file__).resolve().parents[1]),)


def describe(t: torch.Tensor) -> str:
    return f"{'x'.join(map(str, t.shape)) or 'scalar'} {str(t.dtype).replace('torch.', '')}"


def check_example_args(args: tuple) -> None:
    """Example inputs IREE can compile for: dtypes numpy has, no dimension of size 0."""
    for i, a in enumerate(args):
        if not isinstance(a, torch.Tensor):
            continue
        if a.dtype not in _NUMPY_DTYPES:
            raise InputMismatchError(
                f"input {i} has dtype {a.dtype}, which compiled models cannot take (numpy has no such type): "
                "compile in float32 or float16 (model.float() and x.float())")
        if any(isinstance(d, int) and d == 0 for d in a.shape):
            raise InputMismatchError(
                f"input {i} has shape {describe(a)} with a dimension of size 0: IREE cannot compile zero-size "
                "tensors (its compiler crashes); give example inputs with at least one element along every "
                "dimension (a sequence: one frame or more)")


def user_line(exc: BaseException) -> Optional[tuple[str, str]]:
    """('file:line', code) of the user's code that raised `exc` (torch's "The following call
    raised this error", else the innermost traceback frame outside torch and wispy)."""
    m = re.search(r'The following call raised this error:\s*\n\s*File "([^"]+)", line (\d+), in \w+\s*\n\s*(.*)',
                  str(exc))
    if m:
        return f"{m.group(1)}:{m.group(2)}", m.group(3).strip()
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith(_LIBRARY_DIRS) and "/lib/python" not in f.filename
              and not f.filename.startswith("<")]
    if frames:
        f = frames[-1]
        return f"{f.filename}:{f.lineno}", (f.line or "").strip()
    return None


def _first_line(exc: BaseException) -> str:
    lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def export_failure(exc: Exception, model: torch.nn.Module, args: tuple) -> Exception:
    """The error to raise for a torch.export failure: an InputMismatchError when the model fails
    in PyTorch itself on the example inputs, else a CompileError; both with the user's line."""
    try:
        with torch.no_grad():
            model(*args)
    except Exception as eager:  # noqa: BLE001 - any error of the user's model
        where = user_line(eager)
        ins = ", ".join(f"input {i}: {describe(a)}" for i, a in enumerate(args) if isinstance(a, torch.Tensor))
        return InputMismatchError(f"the model fails in PyTorch itself on the example inputs ({ins}): "
                                  f"{type(eager).__name__}: {_first_line(eager)}" + _at(where))
    where = user_line(exc)
    msg = "torch.export could not trace the model: " + _first_line(exc)
    if "data-dependent" in msg:
        msg += ("\n  (Python control flow on a tensor's value: use torch.where, or torch.cond for branches)")
    return CompileError("export", msg + _at(where), location=where[0] if where else None)


def _at(where: Optional[tuple[str, str]]) -> str:
    return f"\n  at {where[0]}: {where[1]}" if where else ""


def check_exported(ep) -> None:
    """Refuses an exported program wispy cannot compile: outputs that are not tensors, and ops
    whose output size depends on the input's values (IREE hangs on them)."""
    user_inputs = [s.arg.name for s in ep.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    vals = {n.name: n.meta.get("val") for n in ep.graph.nodes if n.op == "placeholder"}
    check_example_args(tuple(vals.get(name) for name in user_inputs))
    for n in ep.graph.nodes:
        val = n.meta.get("val")
        if n.op != "call_function" or not isinstance(val, torch.Tensor):
            continue
        if any(isinstance(d, torch.SymInt) and _unbacked(d) for d in val.shape):
            where = _stack_line(n)
            op = f"aten.{getattr(n.target, '__name__', str(n.target))}".replace(".default", "")
            raise CompileError(
                "export", f"the output size of {op} depends on the input's values (a boolean-mask index such as "
                "x[x > 0], nonzero, masked_select or unique): wispy compiles only shapes that follow from the input "
                "shapes; keep the shape, e.g. torch.where(mask, x, 0)" + (f"\n  the line: {where[1]}" if where else ""),
                op=op, location=where[0] if where else None)
    outs = [s for s in ep.graph_signature.output_specs if s.kind.name == "USER_OUTPUT"]
    for i, spec in enumerate(outs):
        if not hasattr(spec.arg, "name") or type(spec.arg).__name__ != "TensorArgument":
            value = getattr(spec.arg, "value", spec.arg)
            raise CompileError("export", f"output {i} of the model is {value!r}, not a tensor: a compiled model "
                               "returns tensors only; leave it out of forward()'s result (or return a tensor)")


def _unbacked(d: torch.SymInt) -> bool:
    from torch.fx.experimental.symbolic_shapes import free_unbacked_symbols

    return bool(free_unbacked_symbols(d))


def _stack_line(node) -> Optional[tuple[str, str]]:
    """('file:line', code) of the innermost frame of an FX node's stack trace."""
    found = re.findall(r'File "([^"]+)", line (\d+), in \w+\n\s*(.*)', node.meta.get("stack_trace") or "")
    if not found:
        return None
    file, line, code = found[-1]
    return f"{file}:{line}", code.strip()

"""What every wispy pass is: a frozen dataclass with a kebab-case `name`, options as typed
fields (spelled kebab-case in pipelines: `wispy-conv1d-im2col{min-reduction=16}`) and a
`run(module, context)` method that rewrites a `builtin.module` in place.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import ClassVar, Optional

from wispy._mlir import ir
from wispy.errors import PipelineError


class PassFailure(Exception):
    """Raised inside a pass for input it must reject; carries the offending op's location."""

    def __init__(self, message: str, location: Optional[ir.Location] = None):
        super().__init__(message)
        self.location = location


@dataclass
class PassContext:
    """What passes share beyond the IR: the weights, the target and the remarks log."""

    weights: Optional[object] = None  # wispy.ir.weights.WeightStore
    target: Optional[object] = None   # wispy.targets.Target
    explain: bool = False             # passes record why they declined a match
    remarks: list = field(default_factory=list)
    # What passes learned that the compiled model keeps (e.g. "kernel_workers": the most
    # workers of a recurrent kernel, which the host driver choice weighs).
    facts: dict = field(default_factory=dict)

    def remark(self, pass_name: str, location, message: str) -> None:
        if self.explain:
            self.remarks.append(f"{pass_name}: {location}: {message}")


@dataclass(frozen=True)
class WispyPass:
    """Base of wispy's passes; a pass's documentation is its module's docstring."""

    name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # Set before @dataclass runs, which would otherwise fill __doc__ with the signature.
        if not cls.__dict__.get("__doc__"):
            import sys

            cls.__doc__ = sys.modules[cls.__module__].__doc__

    def run(self, module: ir.Operation, context: PassContext) -> None:
        raise NotImplementedError

    # -- options -----------------------------------------------------------------
    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name.replace("_", "-") for f in dataclasses.fields(cls)]

    @classmethod
    def from_options(cls, options: dict[str, str]) -> "WispyPass":
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for key, text in options.items():
            attr = key.replace("-", "_")
            if attr not in fields:
                valid = ", ".join(cls.option_names()) or "none"
                raise PipelineError(f"pass '{cls.name}' has no option '{key}' (options: {valid})")
            kwargs[attr] = _parse_value(cls.name, key, text, hints[attr])
        return cls(**kwargs)

    def pipeline_text(self) -> str:
        opts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value != f.default:
                opts.append(f"{f.name.replace('_', '-')}={_format_value(value)}")
        return self.name + ("{" + " ".join(opts) + "}" if opts else "")


def _parse_value(pass_name: str, key: str, text: str, hint):
    origin = typing.get_origin(hint)
    try:
        if hint is bool:
            if text.lower() in ("1", "true", "on", "yes"):
                return True
            if text.lower() in ("0", "false", "off", "no"):
                return False
            raise ValueError(text)
        if hint is int:
            return int(text)
        if hint is float:
            return float(text)
        if hint is str:
            return text
        if origin is tuple:  # "64x64" -> (64, 64)
            return tuple(int(p) for p in text.lower().split("x"))
        if origin is typing.Union:  # Optional[...]
            inner = [a for a in typing.get_args(hint) if a is not type(None)][0]
            return None if text.lower() == "none" else _parse_value(pass_name, key, text, inner)
    except ValueError:
        raise PipelineError(f"pass '{pass_name}': option '{key}' expects {getattr(hint, '__name__', hint)}, "
                            f"got '{text}'") from None
    raise PipelineError(f"pass '{pass_name}': option '{key}' has an unsupported type {hint}")


def _format_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "x".join(str(v) for v in value)
    return str(value)


def functions(module: ir.Operation):
    """The function-like ops of a module (func.func and util.func), walked by hand because
    `PassManager.add(op_name=...)` crashes the process in these bindings."""
    for op in module.regions[0].blocks[0].operations:
        if op.operation.name in ("func.func", "util.func"):
            yield op.operation


def walk_ops(root: ir.Operation, name: str) -> list:
    """Every op called `name` below `root`, collected first so callers may rewrite."""
    found = []

    def visit(op):
        if op.name == name:
            found.append(op)
        return ir.WalkResult.ADVANCE

    root.walk(visit)
    return found

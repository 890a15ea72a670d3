"""Textual pass pipelines that mix wispy passes and MLIR/IREE passes.

    builtin.module(wispy-conv1d-im2col{min-reduction=16}, canonicalize, util.func(cse))

Top-level items naming a wispy pass run as Python passes registered in the same MLIR
`PassManager` (so IR printing, timing and the verifier apply to them); every other item
is handed to MLIR's own parser, which rejects unknown passes and options loudly.
"""
from __future__ import annotations

import dataclasses
import os
import re
import traceback
from dataclasses import dataclass
from typing import Optional, Union

from wispy._mlir import ir, passmanager
from wispy.errors import CompileError, PipelineError
from wispy.passes.base import PassContext, PassFailure, WispyPass
from wispy.passes.registry import get_pass_class, is_wispy_pass, pass_names


@dataclass
class TextItem:
    text: str  # an MLIR pipeline element, e.g. "canonicalize" or "util.func(cse)"


Item = Union[WispyPass, TextItem]


def _split_top_level(text: str) -> list[str]:
    items, depth, cur = [], 0, []
    for ch in text:
        if ch in "({":
            depth += 1
        elif ch in ")}":
            depth -= 1
            if depth < 0:
                raise PipelineError(f"unbalanced brackets in pipeline: {text!r}")
        if ch == "," and depth == 0:
            items.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if depth != 0:
        raise PipelineError(f"unbalanced brackets in pipeline: {text!r}")
    last = "".join(cur).strip()
    if last:
        items.append(last)
    if any(not i for i in items):
        raise PipelineError(f"empty element in pipeline: {text!r}")
    return items


_ITEM_RE = re.compile(r"^(?P<name>[\w.\-]+)\s*(?:\{(?P<opts>[^{}]*)\})?\s*(?P<rest>\(.*\))?$", re.S)


def _parse_options(text: str) -> dict[str, str]:
    opts = {}
    for tok in text.split():
        if "=" not in tok:
            opts[tok] = "true"
        else:
            k, v = tok.split("=", 1)
            opts[k.strip()] = v.strip()
    return opts


def parse_pipeline(text: str) -> list[Item]:
    """Parses `builtin.module(...)` (or a bare comma-separated list) into items."""
    text = text.strip()
    m = re.match(r"^builtin\.module\s*\((.*)\)\s*$", text, re.S)
    body = m.group(1) if m else text
    items: list[Item] = []
    for raw in _split_top_level(body):
        mm = _ITEM_RE.match(raw)
        if not mm:
            raise PipelineError(f"cannot parse pipeline element {raw!r}")
        name = mm.group("name")
        if is_wispy_pass(name):
            if mm.group("rest"):
                raise PipelineError(f"wispy pass '{name}' runs on the module; it cannot nest passes")
            items.append(get_pass_class(name).from_options(_parse_options(mm.group("opts") or "")))
        elif name.startswith("wispy-"):
            raise PipelineError(f"unknown wispy pass '{name}' (known: {', '.join(pass_names())})")
        else:
            items.append(TextItem(raw))
    return items


def format_pipeline(items: list[Item]) -> str:
    parts = [i.pipeline_text() if isinstance(i, WispyPass) else i.text for i in items]
    return "builtin.module(" + ", ".join(parts) + ")"


class PassPipeline:
    """A parsed pipeline, runnable on a module with a PassContext."""

    def __init__(self, items: Union[str, "PassPipeline", list[Item]]):
        if isinstance(items, PassPipeline):
            items = items.items
        self.items = parse_pipeline(items) if isinstance(items, str) else list(items)

    def __str__(self) -> str:
        return format_pipeline(self.items)

    def __repr__(self) -> str:
        return f"PassPipeline({str(self)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, PassPipeline) and str(self) == str(other)

    def __bool__(self) -> bool:
        return bool(self.items)

    def __contains__(self, name: str) -> bool:
        """Whether a wispy pass (or an MLIR element starting with) `name` is in the pipeline."""
        return any(_item_name(item) == name for item in self.items)

    def get(self, name: str) -> Optional[WispyPass]:
        """The first wispy pass called `name`, or None."""
        return next((i for i in self.items if isinstance(i, WispyPass) and i.name == name), None)

    def without(self, name: str) -> "PassPipeline":
        """This pipeline with every `name` item removed (a wispy pass or an MLIR pass)."""
        return PassPipeline([i for i in self.items if _item_name(i) != name])

    def replace(self, name: str, **options) -> "PassPipeline":
        """This pipeline with the options of every wispy pass `name` set to `options`
        (Python field names: `workers=2`, `dense=True`); an unknown option or a pass that is
        not in the pipeline is a PipelineError."""
        if name not in self:
            raise PipelineError(f"pass '{name}' is not in the pipeline {self}")
        cls = get_pass_class(name)
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - fields)
        if unknown:
            raise PipelineError(f"pass '{name}' has no option {', '.join(unknown)} "
                                f"(options: {', '.join(cls.option_names()) or 'none'})")
        return PassPipeline([dataclasses.replace(i, **options) if _item_name(i) == name else i
                             for i in self.items])

    def build(self, context: PassContext, errors: list) -> passmanager.PassManager:
        pm = passmanager.PassManager("builtin.module")
        for item in self.items:
            if isinstance(item, TextItem):
                try:
                    pm.add(item.text)
                except ValueError as e:
                    raise PipelineError(f"MLIR rejected pipeline element '{item.text}': {e}") from None
            else:
                pm.add(_as_callback(item, context, errors), name=item.name, argument=item.name)
        return pm

    def run(self, module: ir.Module, context: Optional[PassContext] = None,
            print_ir_after_all: bool = False, timing: bool = False) -> PassContext:
        context = context or PassContext()
        errors: list = []
        with module.context:
            pm = self.build(context, errors)
            if print_ir_after_all:
                pm.enable_ir_printing(print_after_all=True)
            if timing:
                pm.enable_timing()
            try:
                pm.run(module.operation)
            except ir.MLIRError as e:
                if errors:
                    name, msg, loc = errors[0]
                    raise CompileError("wispy", msg, op=None, location=loc,
                                       repro=f"wispy opt --pipeline='{self}' INPUT.mlir") from None
                raise CompileError("wispy", _mlir_error_text(e),
                                   repro=f"wispy opt --pipeline='{self}' INPUT.mlir") from None
        if errors:  # a failure the pass manager did not surface
            name, msg, loc = errors[0]
            raise CompileError("wispy", f"pass {name}: {msg}", location=loc)
        return context


def _item_name(item: Item) -> str:
    if isinstance(item, WispyPass):
        return item.name
    return _ITEM_RE.match(item.text).group("name") if _ITEM_RE.match(item.text) else item.text


def _mlir_error_text(e: ir.MLIRError) -> str:
    diags = getattr(e, "error_diagnostics", None) or []
    if diags:
        d = diags[0]
        return f"{d.message} ({d.location})"
    return str(e)


def _as_callback(p: WispyPass, context: PassContext, errors: list):
    def run(op, pass_):
        try:
            p.run(op, context)
        except PassFailure as e:
            loc = str(e.location) if e.location is not None else None
            errors.append((p.name, f"pass {p.name}: {e}", loc))
            pass_.signal_pass_failure()
        except Exception as e:  # a bug in a pass: report it, never crash the process
            if os.environ.get("WISPY_DEBUG"):
                traceback.print_exc()
            errors.append((p.name, f"pass {p.name} raised {type(e).__name__}: {e} "
                                   "(set WISPY_DEBUG=1 for the traceback)", None))
            pass_.signal_pass_failure()

    run.__name__ = p.name.replace("-", "_")
    return run

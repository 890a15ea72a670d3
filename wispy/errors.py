"""Errors a user can act on.

Every failure that crosses the API boundary is a `WispyError`. A compile failure is a
`CompileError` that names the phase, the offending op and its source location when the
diagnostics give them, and a command that reproduces it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional


class WispyError(Exception):
    """Base of every error wispy raises on purpose."""


class TargetError(WispyError, ValueError):
    """An unknown target name or a malformed target option."""


class ModelLoadError(WispyError):
    """A model file, factory or exported program that cannot be loaded."""


class InputMismatchError(WispyError, ValueError):
    """Inputs given to a compiled model that do not match what it was compiled for."""


class PipelineError(WispyError, ValueError):
    """A malformed textual pass pipeline, an unknown pass or an unknown option."""


class OptionError(WispyError, ValueError):
    """A compile option whose value cannot apply to this model (e.g. winograd= on a model
    without int8 convolutions)."""


class AudioError(WispyError, ValueError):
    """An audio file wispy cannot featurise as it is: not a WAV, or not 16 kHz mono 16-bit."""


@dataclass
class Diagnostic:
    """One diagnostic line of the MLIR tools: `file:line:col: error: message`."""

    severity: str
    message: str
    file: Optional[str] = None
    line: Optional[int] = None
    col: Optional[int] = None

    @property
    def location(self) -> str:
        if self.file is None:
            return "<unknown location>"
        return f"{self.file}:{self.line}" if self.line else self.file

    @property
    def op_name(self) -> Optional[str]:
        # torch ops without a registered form print as torch.operator "torch.aten.x"
        named = re.search(r'name = "([\w.]+)"', self.message)
        if named:
            return named.group(1)
        m = re.search(r"operation '([\w.]+)'", self.message) or re.search(
            r"'([a-z_]+\.[\w.]+)' op", self.message
        )
        return m.group(1) if m else None


_DIAG_RE = re.compile(
    r"^(?:(?P<file>[^\s:][^:]*?):(?P<line>\d+):(?P<col>\d+):\s*)?(?:<unknown>:0:\s*)?"
    r"(?P<sev>error|warning|note|remark):\s*(?P<msg>.*)$"
)


def parse_diagnostics(text: str) -> list[Diagnostic]:
    """Pulls the diagnostics out of an MLIR tool's stderr."""
    out = []
    for line in text.splitlines():
        m = _DIAG_RE.match(line.strip())
        if not m:
            continue
        line_no = int(m.group("line")) if m.group("line") else None
        col = int(m.group("col")) if m.group("col") else None
        out.append(Diagnostic(m.group("sev"), m.group("msg"), m.group("file"), line_no, col))
    return out


@dataclass
class CompileError(WispyError):
    """A model that could not be compiled.

    Attributes: `phase` (import, torch, input, wispy, backend), `op` (the op that could
    not be handled, when known), `location` (its source location), `diagnostics` (all
    of them), `repro` (a shell command that reproduces the failure, when one exists).
    """

    phase: str
    message: str
    op: Optional[str] = None
    location: Optional[str] = None
    diagnostics: list = field(default_factory=list)
    repro: Optional[str] = None

    def __post_init__(self):
        super().__init__(str(self))

    def __str__(self) -> str:
        head = f"[{self.phase}] {self.message}"
        if self.op:
            head = f"[{self.phase}] cannot compile op '{self.op}'"
            if self.location:
                head += f" at {self.location}"
            head += f": {self.message}"
        lines = [head]
        extra = [d for d in self.diagnostics if d.message != self.message][:8]
        for d in extra:
            lines.append(f"  {d.severity}: {d.message} ({d.location})")
        if self.repro:
            lines.append(f"  reproduce with: {self.repro}")
        return "\n".join(lines)

    @classmethod
    def from_diagnostics(cls, phase: str, stderr: str, repro: Optional[str] = None):
        diags = parse_diagnostics(stderr)
        errors = [d for d in diags if d.severity == "error"] or diags
        if not errors:
            tail = "\n".join(stderr.strip().splitlines()[-12:]) or "no diagnostics"
            return cls(phase, tail, repro=repro)
        # Prefer the diagnostic that names an op: "failed to legalize operation 'x'".
        first = next((d for d in errors if d.op_name), errors[0])
        # The op's source location is often attached as a note pointing at user code.
        loc = first.location if first.file else None
        return cls(phase, first.message, op=first.op_name, location=loc,
                   diagnostics=diags, repro=repro)

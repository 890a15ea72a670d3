"""Running IREE's command-line compiler between wispy's Python phases.

`iree-compile --compile-to=PHASE` / `--compile-from=PHASE` splits IREE's pipeline where
wispy's passes run (the in-process Session API cannot choose the phase).
"""
from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Sequence

from wispy.errors import CompileError, TargetError


def tool_path(name: str) -> str:
    from iree.compiler.tools.binaries import find_tool

    return find_tool(name)


def run_iree_compile(phase: str, input_path: Path, output_path: Path, flags: Sequence[str],
                     compile_from: str | None = None, compile_to: str | None = None) -> None:
    cmd = [tool_path("iree-compile"), str(input_path), "-o", str(output_path)]
    if compile_from:
        cmd.append(f"--compile-from={compile_from}")
    if compile_to:
        # Keep source locations in the text between phases so later diagnostics and
        # pass remarks still point at the user's code.
        cmd += [f"--compile-to={compile_to}", "--mlir-print-debuginfo"]
    cmd += list(flags)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        repro = " ".join(shlex.quote(c if i else "iree-compile") for i, c in enumerate(cmd))
        raise CompileError.from_diagnostics(phase, proc.stderr, repro=repro)
    # LLVM only warns about (and ignores) a misspelt CPU feature or CPU: refuse instead.
    bad = re.findall(r"'([^']+)' is not a recognized (feature|processor) for this target", proc.stderr)
    if bad:
        what = ", ".join(sorted({f"{kind} '{name}'" for name, kind in bad}))
        raise TargetError(f"LLVM does not know the CPU {what} for this target; check the spelling "
                          "(e.g. +dotprod,+i8mm on arm64, +avx512f on x86)")

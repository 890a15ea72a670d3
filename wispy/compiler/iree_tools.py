"""Running IREE's command-line compiler between wispy's Python phases.

`iree-compile --compile-to=PHASE` / `--compile-from=PHASE` splits IREE's pipeline where
wispy's passes run (the in-process Session API cannot choose the phase).

Each `iree-compile` runs in a session (process group) of its own and is told by the kernel
to die with its parent (`PR_SET_PDEATHSIG`), so neither a time limit, a Ctrl-C nor a killed
Python leaves it running; past `timeout` seconds its whole group is killed and the phase
raises a CompileError. A compiler that dies of a signal (IREE 3.13 divides by zero on some
zero-size shapes) is reported as a crash with the signal's name, not as its stack dump.
"""
from __future__ import annotations

import ctypes
import math
import os
import re
import shlex
import signal
import subprocess
from pathlib import Path
from typing import Optional, Sequence

from wispy.errors import CompileError, TargetError, WispyError

TIMEOUT_ENV = "WISPY_COMPILE_TIMEOUT"
# Per phase. The largest zoo models take under two minutes a phase on a 2-core host; ten
# minutes leaves room for bigger models and slow machines, yet ends a hung compile.
DEFAULT_TIMEOUT_S = 600.0
_PR_SET_PDEATHSIG = 1


def tool_path(name: str) -> str:
    from iree.compiler.tools.binaries import find_tool

    return find_tool(name)


def resolve_timeout(value=None) -> float:
    """The per-phase time limit in seconds (math.inf: none) from compile_model's `timeout`:
    None takes $WISPY_COMPILE_TIMEOUT (seconds; "0" or "none": no limit), else 600 s."""
    name = "timeout"
    if value is None:
        value = os.environ.get(TIMEOUT_ENV, "").strip() or DEFAULT_TIMEOUT_S
        name = f"${TIMEOUT_ENV}"
        if str(value).lower() in ("none", "0", "off", "inf"):
            return math.inf
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if isinstance(value, bool) or not seconds > 0:
        raise WispyError(f"{name} must be a number of seconds above 0 (math.inf: no limit), not {value!r}")
    return seconds


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:  # noqa: BLE001 - not Linux: the session of its own still lets us kill it
        pass


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def run_tool(cmd: Sequence[str], timeout: Optional[float]) -> tuple[Optional[int], str]:
    """Runs `cmd` in a process group of its own; (return code, stderr), the code None when it
    ran past `timeout` seconds (the group killed)."""
    proc = subprocess.Popen(list(cmd), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            errors="replace", start_new_session=True, preexec_fn=_die_with_parent)
    try:
        _, stderr = proc.communicate(timeout=None if timeout is None or math.isinf(timeout) else timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return None, proc.stderr.read() if proc.stderr else ""
    except BaseException:  # Ctrl-C and the like: the compiler goes with us
        _kill_group(proc)
        raise
    return proc.returncode, stderr


def run_iree_compile(phase: str, input_path: Path, output_path: Path, flags: Sequence[str],
                     compile_from: str | None = None, compile_to: str | None = None,
                     timeout: Optional[float] = DEFAULT_TIMEOUT_S) -> None:
    cmd = [tool_path("iree-compile"), str(input_path), "-o", str(output_path)]
    if compile_from:
        cmd.append(f"--compile-from={compile_from}")
    if compile_to:
        # Keep source locations in the text between phases so later diagnostics and
        # pass remarks still point at the user's code.
        cmd += [f"--compile-to={compile_to}", "--mlir-print-debuginfo"]
    cmd += list(flags)
    code, stderr = run_tool(cmd, timeout)
    repro = " ".join(shlex.quote(c if i else "iree-compile") for i, c in enumerate(cmd))
    if code is None:
        raise CompileError(phase, f"iree-compile ran past the time limit of {timeout:g} s in phase '{phase}' "
                                  f"and was stopped; raise it with compile_model(timeout=...) or ${TIMEOUT_ENV} "
                                  "if the model is just large, else report it with the command below",
                           repro=repro)
    if code < 0:
        raise crash_error(phase, -code, stderr, repro)
    if code != 0:
        raise with_tool_causes(CompileError.from_diagnostics(phase, stderr, repro=repro), stderr)
    # LLVM only warns about (and ignores) a misspelt CPU feature or CPU: refuse instead.
    bad = re.findall(r"'([^']+)' is not a recognized (feature|processor) for this target", stderr)
    if bad:
        what = ", ".join(sorted({f"{kind} '{name}'" for name, kind in bad}))
        raise TargetError(f"LLVM does not know the CPU {what} for this target; check the spelling "
                          "(e.g. +dotprod,+i8mm on arm64, +avx512f on x86)")


def with_tool_causes(err: CompileError, stderr: str) -> CompileError:
    """`err` with the errors of the tools iree-compile runs (the linker: "iree-lld: error:
    undefined symbol: log10f"), which its own diagnostics only point to ("check above")."""
    causes = list(dict.fromkeys(m.group(0).strip() for m in re.finditer(r"^[\w.-]+: error: .+$", stderr, re.M)))
    if not causes:
        return err
    err.message += " (" + "; ".join(causes[:3]) + ")"
    if any("undefined symbol" in c for c in causes):
        err.message += ": the target's runtime lacks that math function; report the op and target to wispy"
    Exception.__init__(err, str(err))
    return err


def crash_error(phase: str, signum: int, stderr: str, repro: str) -> CompileError:
    """A CompileError for an iree-compile killed by `signum`: the signal, and the pass and the
    kind of op being converted where the crash dump's frames name them; the frames left out."""
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    frames = "\n".join(line for line in stderr.splitlines() if re.match(r"\s*#\d+ ", line))
    pattern = re.search(r"Convert(Aten\w+?)Op::matchAndRewrite", frames)
    op = "torch.aten." + re.sub(r"(?<!^)(?=[A-Z])", "_", pattern.group(1)[4:]).lower() if pattern else None
    passes = re.findall(r"(\w+Pass)::runOnOperation", frames)
    where = f" in {passes[0]}" if passes else ""
    return CompileError(phase, f"iree-compile crashed ({name}){where}: a bug in IREE, not in the model. Zero-size "
                               "dimensions are a known cause; else try another target, or report it to IREE with "
                               "the command below", op=op, repro=repro)

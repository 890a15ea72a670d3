"""Running `iree-run-module` (host or under qemu) with .npy inputs and outputs."""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence, Union

import numpy as np

from wispy.runtime._io import read_signature, to_numpy
from wispy.runtime.errors import WispyRuntimeError

PARAMETER_SCOPE = "model"


def write_inputs(directory: Path, inputs: Sequence[Any]) -> List[str]:
    """Save inputs as x0.npy, x1.npy, ... and return the `--input=@...` flags."""
    flags = []
    for i, x in enumerate(inputs):
        path = directory / f"x{i}.npy"
        np.save(path, to_numpy(x))
        flags.append(f"--input=@{path}")
    return flags


def common_flags(
    vmfb_path: Path, function: str, device: str, parameters: Optional[Union[str, os.PathLike]]
) -> List[str]:
    flags = [f"--device={device}", f"--module={vmfb_path}", f"--function={function}"]
    if parameters is not None:
        p = Path(parameters)
        if not p.is_file():
            raise WispyRuntimeError(f"parameter file not found: {p}")
        flags.append(f"--parameters={PARAMETER_SCOPE}={p.resolve()}")
    return flags


def run_tool(
    cmd: Sequence[str], *, timeout: Optional[float] = None, env: Optional[Mapping[str, str]] = None,
    what: str = "iree-run-module",
) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(
            list(cmd), capture_output=True, text=True, timeout=timeout,
            env=dict(env) if env is not None else None,
        )
    except FileNotFoundError as e:
        raise WispyRuntimeError(f"cannot start {cmd[0]}: {e}") from e
    except subprocess.TimeoutExpired as e:
        raise WispyRuntimeError(f"{what} timed out after {timeout} s: {' '.join(cmd)}") from e
    if proc.returncode != 0:
        raise WispyRuntimeError(
            f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n"
            f"{(proc.stderr or '').strip()}\n{(proc.stdout or '').strip()[-2000:]}".rstrip()
        )
    return proc


def run_module_tool(
    prefix: Sequence[str],
    vmfb: Union[str, os.PathLike, bytes],
    inputs: Sequence[Any],
    function: str = "main",
    *,
    device: str,
    parameters: Optional[Union[str, os.PathLike]] = None,
    timeout: Optional[float] = None,
) -> List[np.ndarray]:
    """Run `prefix + [flags]` (an iree-run-module command) and read its .npy outputs.

    The output count comes from the module's own calling convention, read on
    the host with iree.runtime (works for any target's vmfb).
    """
    with tempfile.TemporaryDirectory(prefix="wispy-run-") as tmp:
        d = Path(tmp)
        if isinstance(vmfb, (bytes, bytearray, memoryview)):
            vmfb_path = d / "module.vmfb"
            vmfb_path.write_bytes(bytes(vmfb))
        else:
            vmfb_path = Path(vmfb).resolve()
            if not vmfb_path.is_file():
                raise WispyRuntimeError(f"module file not found: {vmfb_path}")
        _, results = read_signature(vmfb_path, function)
        outs = [d / f"y{i}.npy" for i in range(len(results))]
        cmd = [
            *prefix,
            *common_flags(vmfb_path, function, device, parameters),
            *write_inputs(d, inputs),
            *[f"--output=@{p}" for p in outs],
        ]
        run_tool(cmd, timeout=timeout)
        return [np.load(p) for p in outs]

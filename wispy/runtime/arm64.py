"""Running and measuring aarch64 modules on an x86-64 host under qemu-user.

* `aarch64_tools_dir()` fetches the aarch64 `iree-run-module` and
  `iree-benchmark-module` from the manylinux aarch64 `iree-base-runtime` wheel of
  the installed version (pip download, no install) into a cache.
* `run_module_arm64()` runs a module with them under `qemu-aarch64 -L
  /usr/aarch64-linux-gnu` (Debian's qemu-user and *-arm64-cross libraries).
* `count_instructions_arm64()` counts the guest instructions of one inference
  with wispy's own QEMU TCG plugin (`insncount/insncount.c`).

Cache: `$WISPY_CACHE/` if set, else `~/.cache/wispy/`; the tools go to
`aarch64-runtime-<version>/`, the plugin to `insncount-<hash>/`.
"""
from __future__ import annotations

import functools
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from wispy.runtime._cli import common_flags, run_module_tool, run_tool, write_inputs
from wispy.runtime.errors import WispyRuntimeError

SYSROOT = "/usr/aarch64-linux-gnu"
TOOLS = ("iree-run-module", "iree-benchmark-module")
_WHEEL_DIR = "iree/_runtime_libs/"  # the wheel's tool binaries (not _runtime_libs_tracy)
_PLUGIN_SOURCE = Path(__file__).parent / "insncount" / "insncount.c"

_SETUP_HINT = (
    "run `make setup` (scripts/setup_system.sh), or: apt-get install qemu-user "
    "libc6-arm64-cross libstdc++6-arm64-cross libgcc-s1-arm64-cross"
)


def cache_root() -> Path:
    env = os.environ.get("WISPY_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "wispy"


def runtime_version() -> str:
    """The installed iree-base-runtime version, as pip names it (e.g. '3.13.0')."""
    try:
        from importlib.metadata import version

        return version("iree-base-runtime")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        import iree.runtime.version as v

        return v.VERSION


def qemu_available() -> bool:
    """qemu-aarch64 and the aarch64 glibc loader are installed."""
    return shutil.which("qemu-aarch64") is not None and (
        Path(SYSROOT) / "lib" / "ld-linux-aarch64.so.1"
    ).exists()


def _check_qemu() -> None:
    if shutil.which("qemu-aarch64") is None:
        raise WispyRuntimeError(f"qemu-aarch64 not found: {_SETUP_HINT}")
    if not (Path(SYSROOT) / "lib" / "ld-linux-aarch64.so.1").exists():
        raise WispyRuntimeError(f"no aarch64 C library in {SYSROOT}: {_SETUP_HINT}")


def _tools_ok(d: Path) -> bool:
    return all((d / t).is_file() and os.access(d / t, os.X_OK) for t in TOOLS)


def aarch64_tools_dir() -> Path:
    """Folder with executable aarch64 `iree-run-module` and `iree-benchmark-module`.

    Downloads the matching manylinux_2_28_aarch64 iree-base-runtime wheel on
    first use (needs pip and network or a pip cache/find-links holding it).
    Safe to call from several processes at once: each extracts into its own
    temporary folder and renames it into place; the first rename wins.
    """
    _check_qemu()
    version = runtime_version()
    root = cache_root()
    final = root / f"aarch64-runtime-{version}"
    if _tools_ok(final):
        return final
    root.mkdir(parents=True, exist_ok=True)
    pip_check = subprocess.run(
        [sys.executable, "-m", "pip", "--version"], capture_output=True, text=True
    )
    if pip_check.returncode != 0:
        raise WispyRuntimeError(
            f"pip is not available for {sys.executable} (needed to fetch the aarch64 IREE "
            "runtime): run `python -m ensurepip` or `make setup`"
        )
    with tempfile.TemporaryDirectory(prefix=".aarch64-runtime-", dir=root) as tmp:
        tmpd = Path(tmp)
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--platform", "manylinux_2_28_aarch64", "--python-version", "3.11",
            f"iree-base-runtime=={version}", "-d", str(tmpd / "wheel"),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted((tmpd / "wheel").glob("iree_base_runtime-*.whl"))
        if proc.returncode != 0 or not wheels:
            raise WispyRuntimeError(
                f"cannot download the aarch64 IREE runtime ({' '.join(cmd)}):\n"
                f"{proc.stderr.strip()[-3000:]}"
            )
        staged = tmpd / "tools"
        staged.mkdir()
        with zipfile.ZipFile(wheels[0]) as zf:
            names = set(zf.namelist())
            for tool in TOOLS:
                member = _WHEEL_DIR + tool
                if member not in names:
                    raise WispyRuntimeError(f"{wheels[0].name} has no {member}")
                target = staged / tool
                with zf.open(member) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                target.chmod(0o755)  # zip does not keep the run bit
        try:
            os.rename(staged, final)
        except OSError:
            if not _tools_ok(final):  # not a lost race: a broken leftover
                shutil.rmtree(final, ignore_errors=True)
                os.rename(staged, final)
    if not _tools_ok(final):
        raise WispyRuntimeError(f"aarch64 IREE tools missing from {final}")
    return final


def qemu_command(tool: str, *args: Any) -> List[str]:
    """`qemu-aarch64 -L /usr/aarch64-linux-gnu <tools_dir>/<tool> *args`."""
    return ["qemu-aarch64", "-L", SYSROOT, str(aarch64_tools_dir() / tool), *map(str, args)]


def run_module_arm64(
    vmfb_path: Union[str, os.PathLike, bytes],
    inputs: Sequence[Any],
    function: str = "main",
    *,
    device: str = "local-sync",
    parameters: Optional[Union[str, os.PathLike]] = None,
    timeout: Optional[float] = None,
) -> List[np.ndarray]:
    """Run an aarch64 vmfb with the aarch64 iree-run-module under qemu; returns a list.

    Inputs go through .npy files; the output count is read from the module's
    calling convention on the host, and each output comes back via
    `--output=@yN.npy`. `parameters` (an .irpa) is passed as
    `--parameters=model=PATH`.
    """
    prefix = qemu_command("iree-run-module")
    return run_module_tool(
        prefix, vmfb_path, inputs, function,
        device=device, parameters=parameters, timeout=timeout,
    )


def compile_plugin() -> Path:
    """Build wispy's QEMU instruction-count plugin (once) and return the .so path."""
    source = _PLUGIN_SOURCE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:12]
    out_dir = cache_root() / f"insncount-{digest}"
    lib = out_dir / "libinsncount.so"
    if lib.is_file():
        return lib
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise WispyRuntimeError(
            "no C compiler to build the QEMU plugin: apt-get install gcc libc6-dev (or `make setup`)"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".libinsncount-", suffix=".so", dir=out_dir)
    os.close(fd)
    try:
        proc = subprocess.run(
            [cc, "-O2", "-shared", "-fPIC", "-fvisibility=hidden", "-o", tmp, str(_PLUGIN_SOURCE)],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            raise WispyRuntimeError(f"building the QEMU plugin failed:\n{proc.stderr.strip()}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, lib)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return lib


@functools.lru_cache(maxsize=None)
def _no_aslr_prefix() -> Tuple[str, ...]:
    """`setarch <arch> -R` (host ASLR off) when it works here: steadier counts."""
    setarch = shutil.which("setarch")
    if setarch is None:
        return ()
    prefix = (setarch, platform.machine(), "-R")
    try:
        ok = subprocess.run([*prefix, "true"], capture_output=True).returncode == 0
    except OSError:
        ok = False
    return prefix if ok else ()


def _count_run(
    vmfb_path: Path, input_flags: List[str], function: str, iterations: int,
    parameters: Optional[Union[str, os.PathLike]], workdir: Path, timeout: Optional[float],
) -> int:
    plugin = compile_plugin()
    out = workdir / f"count-{iterations}.txt"
    cmd = [
        *_no_aslr_prefix(),
        "qemu-aarch64", "-L", SYSROOT, "-plugin", f"{plugin},out={out}",
        str(aarch64_tools_dir() / "iree-benchmark-module"),
        *common_flags(vmfb_path, function, "local-sync", parameters),
        *input_flags,
        f"--benchmark_min_time={iterations}x",
    ]
    # A fixed, small environment: the guest sees qemu's environment, and its
    # size shifts the stack layout (and the count) between shells.
    env = {"LC_ALL": "C", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    run_tool(cmd, timeout=timeout, env=env, what="iree-benchmark-module under qemu")
    text = out.read_text() if out.is_file() else ""
    m = re.search(r"^main: (\d+)$", text, re.M)
    if not m:
        raise WispyRuntimeError(f"the QEMU plugin wrote no count to {out}: {text!r}")
    return int(m.group(1))


def count_instructions_arm64(
    vmfb_path: Union[str, os.PathLike],
    inputs: Sequence[Any],
    function: str = "main",
    *,
    parameters: Optional[Union[str, os.PathLike]] = None,
    iterations: int = 4,
    warmup: int = 2,
    timeout: Optional[float] = None,
) -> int:
    """aarch64 instructions executed by ONE call of `function`, counted under qemu.

    Method: the aarch64 `iree-benchmark-module --device=local-sync` runs the
    function exactly N times (`--benchmark_min_time=Nx`) under qemu with
    wispy's TCG plugin, which counts instructions per guest thread; local-sync
    runs everything on the main thread, whose count is used. Two runs, N =
    `warmup` and N = `warmup + iterations`, differ only by `iterations`
    inferences, so

        per_inference = (count(warmup + iterations) - count(warmup)) / iterations

    Process start-up, module loading, input reading and the first (cold) calls
    cancel out. What remains counted is the whole inference as the runtime
    executes it: the dispatched kernels plus the VM and HAL work around them.
    The runs use a fixed environment and, where `setarch -R` works, no host
    ASLR. Repeats agree to a few tens of instructions per inference (timer
    formatting in the benchmark harness is the residual noise): well under
    0.1% for any inference above ~100k instructions. Raise `iterations` for
    tiny modules. A cost measure for comparing lowerings, not a device time.
    """
    if iterations < 1 or warmup < 1:
        raise ValueError("iterations and warmup must be >= 1")
    vmfb = Path(vmfb_path).resolve()
    if not vmfb.is_file():
        raise WispyRuntimeError(f"module file not found: {vmfb}")
    with tempfile.TemporaryDirectory(prefix="wispy-count-") as tmp:
        d = Path(tmp)
        input_flags = write_inputs(d, inputs)
        low = _count_run(vmfb, input_flags, function, warmup, parameters, d, timeout)
        high = _count_run(vmfb, input_flags, function, warmup + iterations, parameters, d, timeout)
    return max(0, round((high - low) / iterations))

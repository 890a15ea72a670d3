"""wispy.runtime: host, arm64-under-qemu and vulkan (lavapipe) runners.

Tiny modules are compiled here from MLIR with iree.compiler, so these tests
depend on nothing else in wispy. Tests marked `arm64` need qemu-user and the
arm64 cross libraries (plus, once, network or a pip cache for the aarch64
iree-base-runtime wheel); tests marked `vulkan` need a Vulkan device (lavapipe
from mesa-vulkan-drivers). `make setup` installs both.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

try:
    import wispy.runtime  # noqa: F401
except ImportError:  # running without the package installed: use the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import iree.compiler as ireec
import iree.runtime as ireert

from wispy.runtime import (
    LAVAPIPE_DEVICE_TARGETS,
    LoadedModule,
    WispyRuntimeError,
    aarch64_tools_dir,
    count_instructions_arm64,
    qemu_available,
    run_module_arm64,
    run_module_cli,
    run_module_vulkan,
    vulkan_available,
)

HOST_FLAGS = [
    "--iree-hal-target-device=local",
    "--iree-hal-local-target-device-backends=llvm-cpu",
    "--iree-llvmcpu-target-cpu=host",
]


def arm64_flags(triple: str = "aarch64-linux-android30") -> list[str]:
    return [
        "--iree-hal-target-device=local",
        "--iree-hal-local-target-device-backends=llvm-cpu",
        f"--iree-llvmcpu-target-triple={triple}",
    ]


def vulkan_flags(target: str | None = None) -> list[str]:
    flags = ["--iree-hal-target-device=vulkan"]
    return flags + ([f"--iree-vulkan-target={target}"] if target else [])


ADD_MUL = """
func.func @main(%a: tensor<4xf32>, %b: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {
  %0 = arith.addf %a, %b : tensor<4xf32>
  %1 = arith.mulf %a, %b : tensor<4xf32>
  return %0, %1 : tensor<4xf32>, tensor<4xf32>
}
func.func @one(%a: tensor<4xf32>) -> tensor<4xf32> {
  %0 = arith.addf %a, %a : tensor<4xf32>
  return %0 : tensor<4xf32>
}
"""

# A bigger workload: a matmul plus a row reduction (a subgroup reduction on GPUs).
MATMUL_SUM = """
func.func @main(%a: tensor<64x128xf32>, %b: tensor<128x96xf32>) -> (tensor<64x96xf32>, tensor<64xf32>) {
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<64x96xf32>
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<64x96xf32>) -> tensor<64x96xf32>
  %m = linalg.matmul ins(%a, %b : tensor<64x128xf32>, tensor<128x96xf32>)
                     outs(%f : tensor<64x96xf32>) -> tensor<64x96xf32>
  %e2 = tensor.empty() : tensor<64xf32>
  %f2 = linalg.fill ins(%z : f32) outs(%e2 : tensor<64xf32>) -> tensor<64xf32>
  %r = linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i)>],
                       iterator_types = ["parallel", "reduction"]}
      ins(%a : tensor<64x128xf32>) outs(%f2 : tensor<64xf32>) {
  ^bb0(%x: f32, %acc: f32):
    %s = arith.addf %x, %acc : f32
    linalg.yield %s : f32
  } -> tensor<64xf32>
  return %m, %r : tensor<64x96xf32>, tensor<64xf32>
}
"""

# Weights as an external parameter, scope "model".
PARAMS = """
util.global private @w = #flow.parameter.named<"model"::"w"> : tensor<4xf32>
func.func @main(%a: tensor<4xf32>) -> tensor<4xf32> {
  %w = util.global.load @w : tensor<4xf32>
  %0 = arith.mulf %a, %w : tensor<4xf32>
  return %0 : tensor<4xf32>
}
"""

A = np.array([0.5, -1.0, 2.0, 3.0], np.float32)
B = np.array([1.5, 4.0, -2.0, 0.25], np.float32)
W = np.array([1.0, 2.0, 3.0, -4.0], np.float32)

_rng = np.random.default_rng(0)
MA = _rng.standard_normal((64, 128), dtype=np.float32)
MB = _rng.standard_normal((128, 96), dtype=np.float32)

needs_qemu = pytest.mark.skipif(
    not qemu_available(),
    reason="qemu-aarch64 or /usr/aarch64-linux-gnu missing: run `make setup` "
    "(apt-get install qemu-user libc6-arm64-cross libstdc++6-arm64-cross libgcc-s1-arm64-cross)",
)
needs_vulkan = pytest.mark.skipif(
    not vulkan_available(),
    reason="no Vulkan device: run `make setup` (apt-get install mesa-vulkan-drivers libvulkan1)",
)


def compile_to(tmp: Path, name: str, source: str, flags: list[str]) -> Path:
    path = tmp / f"{name}.vmfb"
    path.write_bytes(ireec.compile_str(source, extra_args=flags))
    return path


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("modules")
    cache: dict[tuple, Path] = {}

    def get(name: str, source: str, flags: list[str]) -> Path:
        key = (name, tuple(flags))
        if key not in cache:
            cache[key] = compile_to(tmp, f"{name}-{len(cache)}", source, flags)
        return cache[key]

    return get


@pytest.fixture(scope="module")
def irpa(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("params") / "weights.irpa"
    index = ireert.ParameterIndex()
    index.add_buffer("w", W.tobytes())
    index.create_archive_file(str(path))
    return path


def check_add_mul(outs):
    assert isinstance(outs, list) and len(outs) == 2
    np.testing.assert_allclose(outs[0], A + B, rtol=1e-6)
    np.testing.assert_allclose(outs[1], A * B, rtol=1e-6)


# ---------------------------------------------------------------- host


@pytest.mark.parametrize("driver", ["local-task", "local-sync"])
def test_host_matches_numpy(build, driver):
    vmfb = build("add_mul", ADD_MUL, HOST_FLAGS)
    m = LoadedModule(vmfb, driver=driver)
    assert m.function_names == ["main", "one"]
    check_add_mul(m(A, B))
    check_add_mul(m(A, B))  # the same context and device, called again
    one = m(A, function="one")
    assert len(one) == 1
    np.testing.assert_allclose(one[0], A + A)
    # from bytes, too
    check_add_mul(LoadedModule(vmfb.read_bytes(), driver=driver)(A, B))


def test_host_matmul_and_errors(build):
    m = LoadedModule(build("matmul", MATMUL_SUM, HOST_FLAGS))
    mm, rows = m(MA, MB)
    np.testing.assert_allclose(mm, MA @ MB, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(rows, MA.sum(1), rtol=1e-4, atol=1e-4)
    with pytest.raises(WispyRuntimeError, match="takes 2 inputs"):
        m(MA)
    with pytest.raises(WispyRuntimeError, match="no function 'nope'"):
        m(MA, MB, function="nope")


def test_local_task_calls_wait_on_a_low_priority_thread(build, monkeypatch):
    """On local-task a module's calls are made, and waited for, on a thread of nice 19 (IREE's
    caller spins while it waits, which took a core from the workers); results, errors raised
    inside the call and calls from several threads come through it unchanged."""
    import os
    import threading
    from concurrent.futures import ThreadPoolExecutor

    vmfb = build("add_mul", ADD_MUL, HOST_FLAGS)
    m = LoadedModule(vmfb, driver="local-task")
    check_add_mul(m(A, B))
    waiter = m._waiter._thread
    assert waiter.name == "wispy-iree-wait" and waiter.is_alive()
    if hasattr(os, "getpriority"):
        assert os.getpriority(os.PRIO_PROCESS, waiter.native_id) == 19
    with pytest.raises(WispyRuntimeError, match="main failed on local-task"):
        m(A, B[:2])  # a shape the function does not take: IREE raises inside the call
    with ThreadPoolExecutor(4) as pool:
        for outs in pool.map(lambda _: m(A, B), range(8)):
            check_add_mul(outs)
    assert LoadedModule(vmfb, driver="local-sync")._waiter is None
    monkeypatch.setenv("WISPY_LOW_PRIORITY_WAIT", "0")
    off = LoadedModule(vmfb, driver="local-task")
    assert off._waiter is None
    check_add_mul(off(A, B))


def test_host_cli_matches_numpy(build):
    check_add_mul(run_module_cli(build("add_mul", ADD_MUL, HOST_FLAGS), [A, B]))


def test_host_parameters(build, irpa):
    vmfb = build("params", PARAMS, HOST_FLAGS)
    (y,) = LoadedModule(vmfb, parameters=irpa)(A)
    np.testing.assert_allclose(y, A * W)
    with pytest.raises(WispyRuntimeError, match="parameters"):
        LoadedModule(vmfb)  # the module needs its weights


# ---------------------------------------------------------------- arm64 (qemu)


@pytest.mark.arm64
@needs_qemu
@pytest.mark.parametrize("triple", ["aarch64-linux-android30", "aarch64-linux-gnu"])
def test_arm64_matches_numpy(build, triple):
    vmfb = build("add_mul", ADD_MUL, arm64_flags(triple))
    check_add_mul(run_module_arm64(vmfb, [A, B]))
    one = run_module_arm64(vmfb, [A], function="one")
    assert len(one) == 1
    np.testing.assert_allclose(one[0], A + A)


@pytest.mark.arm64
@needs_qemu
def test_arm64_tools_cached():
    d1 = aarch64_tools_dir()
    d2 = aarch64_tools_dir()
    assert d1 == d2
    for tool in ("iree-run-module", "iree-benchmark-module"):
        assert (d1 / tool).is_file()


@pytest.mark.arm64
@needs_qemu
def test_arm64_parameters(build, irpa):
    vmfb = build("params", PARAMS, arm64_flags())
    (y,) = run_module_arm64(vmfb, [A], parameters=irpa)
    np.testing.assert_allclose(y, A * W)


@pytest.mark.arm64
@needs_qemu
def test_arm64_failure_reports_stderr(build):
    vmfb = build("params", PARAMS, arm64_flags())
    with pytest.raises(WispyRuntimeError, match="io_parameters"):
        run_module_arm64(vmfb, [A])  # no parameters given


@pytest.mark.arm64
@needs_qemu
def test_count_instructions_arm64(build):
    small = build("add_mul", ADD_MUL, arm64_flags())
    big = build("matmul", MATMUL_SUM, arm64_flags())
    n_big = count_instructions_arm64(big, [MA, MB])
    assert isinstance(n_big, int) and n_big > 0
    again = count_instructions_arm64(big, [MA, MB])
    assert abs(again - n_big) <= 0.001 * n_big, (n_big, again)
    n_small = count_instructions_arm64(small, [A, B])
    assert 0 < n_small < n_big / 4, (n_small, n_big)


# ---------------------------------------------------------------- vulkan (lavapipe)


@pytest.mark.vulkan
@needs_vulkan
@pytest.mark.parametrize("target", [None, "valhall", "adreno"])
def test_vulkan_matches_numpy(build, target):
    vmfb = build("add_mul", ADD_MUL, vulkan_flags(target))
    check_add_mul(run_module_vulkan(vmfb, [A, B]))
    m = LoadedModule(vmfb.read_bytes(), driver="vulkan")
    check_add_mul(m(A, B))
    (one,) = m(A, function="one")
    np.testing.assert_allclose(one, A + A)


def _threads() -> set:
    """This process's thread ids (a thread another test left to finish may end meanwhile:
    compare sets, not counts)."""
    return {t.name for t in Path("/proc/self/task").iterdir()}


@pytest.mark.vulkan
@needs_vulkan
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
def test_vulkan_device_goes_with_its_module(build):
    """A Vulkan device lives as long as the module loaded on it, not the process: on
    lavapipe two of IREE's threads per device spin while it lives, taking the cores from
    host code (the demo's two-worker GRU ran 7x slower beside one). Checking for a device
    leaves none behind either."""
    import gc

    vulkan_available.cache_clear()
    base = _threads()
    assert vulkan_available() and _threads() <= base      # no thread left by the check
    m = LoadedModule(build("add_mul", ADD_MUL, vulkan_flags("valhall")).read_bytes(), driver="vulkan")
    check_add_mul(m(A, B))
    assert _threads() - base                              # the device's threads
    del m
    gc.collect()
    assert _threads() <= base                             # gone with the module


@pytest.mark.vulkan
@needs_vulkan
def test_vulkan_lavapipe_target_reduction(build):
    # Named GPU targets assume their subgroup size (valhall: 16); lavapipe's is 8
    # and their subgroup reductions come out wrong. The lavapipe target is right.
    src = f"module attributes {{hal.device.targets = {LAVAPIPE_DEVICE_TARGETS}}} {{\n{MATMUL_SUM}\n}}"
    vmfb = build("matmul_lvp", src, [])
    mm, rows = run_module_vulkan(vmfb, [MA, MB])
    np.testing.assert_allclose(mm, MA @ MB, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(rows, MA.sum(1), rtol=1e-4, atol=1e-3)


@pytest.mark.vulkan
@needs_vulkan
def test_vulkan_parameters(build, irpa):
    vmfb = build("params", PARAMS, vulkan_flags("valhall"))
    (y,) = run_module_vulkan(vmfb, [A], parameters=irpa)
    np.testing.assert_allclose(y, A * W)
    (y,) = run_module_cli(vmfb, [A], device="vulkan", parameters=irpa)
    np.testing.assert_allclose(y, A * W)

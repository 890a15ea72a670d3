"""Targets by name (`host`, `arm64`, `armv7`, `vulkan`) and the IREE flags each implies.

    Target.parse("arm64")                       # aarch64 Android/Linux, NEON
    Target.parse("arm64", cpu_features="+dotprod,+i8mm")
    Target.parse("vulkan", vulkan_target="valhall")
"""
from __future__ import annotations

import platform
from dataclasses import dataclass, field
from typing import Optional

from wispy.errors import TargetError

TARGET_NAMES = ("host", "arm64", "armv7", "vulkan")
VULKAN_TARGETS = ("valhall", "adreno", "lavapipe", "valhall4", "rdna2", "rdna3", "ampere", "turing")
# "lavapipe" is Mesa's CPU Vulkan driver, on which wispy's tests run Vulkan modules. Its
# subgroup size is 8; modules built for a GPU's subgroup size (valhall 16, ampere 32)
# give wrong reductions there without any error, so it gets a target of its own.

# Flags every CPU build gets: data tiling doubles f32 matmul speed and is what makes int8
# matmuls fast on IREE 3.13 (docs/design/compiler.md#flags-and-microkernels).
_CPU_COMMON = ["--iree-hal-target-device=local", "--iree-hal-local-target-device-backends=llvm-cpu",
               "--iree-opt-data-tiling"]

# Larger workgroup tiles for small dispatches on the host: IREE's default cuts a recurrent
# step's combine into 96 tiny tasks (docs/design/compiler.md#distribution-size-on-the-host).
# Not on Arm: the loss of parallelism has not been timed on a phone.
_HOST_DISTRIBUTION = "--iree-llvmcpu-distribution-size=1024"

# IREE's hand-written AArch64 microkernels (its data-tiling packs and matmul tiles) in
# place of generated code: fewer instructions per inference for every model counted
# (docs/design/compiler.md#microkernels-on-arm64). Not on armv7, whose microkernels are the
# generic C ones.
_ARM64_UKERNELS = "--iree-llvmcpu-enable-ukernels=all"

# The same on the host: the block-sparse projections' batched matmuls (small, odd shapes)
# run faster on IREE's x86 microkernels, dense models unchanged
# (docs/design/compiler.md#microkernels-on-the-host).
_HOST_UKERNELS = "--iree-llvmcpu-enable-ukernels=all"


# /proc/cpuinfo flag -> LLVM feature, for the x86 extensions IREE's codegen uses.
_X86_FEATURES = {
    "avx": "avx", "avx2": "avx2", "fma": "fma", "f16c": "f16c", "bmi1": "bmi", "bmi2": "bmi2",
    "avx512f": "avx512f", "avx512bw": "avx512bw", "avx512cd": "avx512cd", "avx512dq": "avx512dq",
    "avx512vl": "avx512vl", "avx512_vnni": "avx512vnni", "avx512vbmi": "avx512vbmi",
    "avx512_vbmi2": "avx512vbmi2", "avx512_bitalg": "avx512bitalg", "avx512_vpopcntdq": "avx512vpopcntdq",
    "avx512ifma": "avx512ifma", "avx512_bf16": "avx512bf16", "avx512_fp16": "avx512fp16",
    "avx_vnni": "avxvnni", "amx_tile": "amx-tile", "amx_int8": "amx-int8", "amx_bf16": "amx-bf16",
}


def host_cpu_flags() -> list[str]:
    """IREE flags for this machine's CPU.

    `--iree-llvmcpu-target-cpu=host` takes the CPU model's full feature list; in a VM
    that can include extensions the hypervisor hides (the Xeon VM: an "emeraldrapids" with
    AMX and AVX512-FP16 that /proc/cpuinfo does not report), and code using them
    dies with SIGILL. On x86 Linux the features are taken from /proc/cpuinfo instead,
    on a x86-64-v4 (or v3) baseline."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return ["--iree-llvmcpu-target-cpu=host"]
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return ["--iree-llvmcpu-target-cpu=host"]
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    flags = set(line.split(":", 1)[-1].split())
    features = [f for flag, f in _X86_FEATURES.items() if flag in flags]
    v4 = {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"} <= flags
    cpu = "x86-64-v4" if v4 else "x86-64-v3" if {"avx2", "fma"} <= flags else "x86-64"
    return [f"--iree-llvmcpu-target-cpu={cpu}",
            "--iree-llvmcpu-target-cpu-features=" + ",".join("+" + f for f in features)]


# A core's L2 when the machine does not say (the Zen 5 VM's, on which the recurrent
# kernel's thresholds were set: docs/design/recurrent-kernel.md#what-auto-chooses).
DEFAULT_L2_BYTES = 1 << 20


def host_cores() -> int:
    """CPU cores this process may run on."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def host_l2_bytes() -> int:
    """One core's L2 cache in bytes, as Linux reports it (DEFAULT_L2_BYTES if it does
    not): what a recurrent matrix must fit to be read from L2 step after step."""
    import glob

    for index in sorted(glob.glob("/sys/devices/system/cpu/cpu0/cache/index*")):
        try:
            if open(f"{index}/level").read().strip() != "2" or \
                    open(f"{index}/type").read().strip() not in ("Unified", "Data"):
                continue
            size = open(f"{index}/size").read().strip().upper()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(size[-1:], 1)
        digits = size.rstrip("KMG")
        if digits.isdigit() and int(digits) > 0:
            return int(digits) * scale
    return DEFAULT_L2_BYTES


@dataclass(frozen=True)
class Target:
    name: str
    cpu_features: str = ""
    vulkan_target: str = "valhall"
    triple: Optional[str] = None
    extra_flags: tuple = field(default_factory=tuple)
    tuned: bool = True  # False: IREE's default flags only (the "IREE without wispy" baseline)

    @staticmethod
    def parse(name: str, *, cpu_features: str = "", vulkan_target: Optional[str] = None,
              triple: Optional[str] = None, extra_flags=()) -> "Target":
        if isinstance(name, Target):
            return name
        if not isinstance(name, str) or name not in TARGET_NAMES:
            raise TargetError(f"unknown target {name!r}: choose one of {', '.join(TARGET_NAMES)}")
        if cpu_features and name == "vulkan":
            raise TargetError("cpu_features applies to CPU targets (host, arm64, armv7), not vulkan")
        if cpu_features:
            for feat in cpu_features.split(","):
                if not feat or feat[0] not in "+-":
                    raise TargetError(f"cpu feature {feat!r} must start with + or - (e.g. +dotprod,+i8mm)")
        if vulkan_target is not None and name != "vulkan":
            raise TargetError("vulkan_target applies only to target='vulkan'")
        if vulkan_target is not None and vulkan_target not in VULKAN_TARGETS:
            raise TargetError(f"unknown vulkan_target {vulkan_target!r}: choose one of {', '.join(VULKAN_TARGETS)}")
        return Target(name, cpu_features, vulkan_target or "valhall", triple, tuple(extra_flags))

    @property
    def is_cpu(self) -> bool:
        return self.name != "vulkan"

    @property
    def runs_here(self) -> str:
        """How this machine runs the target's modules: 'host', 'qemu', 'vulkan' or ''."""
        if self.name == "host":
            return "host"
        if self.name == "arm64":
            return "host" if platform.machine() in ("aarch64", "arm64") else "qemu"
        if self.name == "vulkan":
            return "vulkan"
        return ""  # no armv7 runtime exists to run here

    @property
    def default_triple(self) -> str:
        return {"arm64": "aarch64-linux-android30", "armv7": "armv7a-linux-androideabi30"}.get(self.name, "")

    def iree_flags(self) -> list[str]:
        if self.name == "vulkan" and self.vulkan_target == "lavapipe":
            flags = []  # the target is the module's hal.device.targets attribute
        elif self.name == "vulkan":
            flags = ["--iree-hal-target-device=vulkan", f"--iree-vulkan-target={self.vulkan_target}"]
        else:
            flags = list(_CPU_COMMON) if self.tuned else [f for f in _CPU_COMMON if "data-tiling" not in f]
            if self.name == "host" and self.tuned:
                flags += host_cpu_flags()
                if self.cpu_features:
                    flags[-1] += "," + self.cpu_features
                flags += [_HOST_DISTRIBUTION, _HOST_UKERNELS]
            elif self.name == "host":
                flags.append("--iree-llvmcpu-target-cpu=host")  # IREE's own default choice
            else:
                flags.append(f"--iree-llvmcpu-target-triple={self.triple or self.default_triple}")
                features = self.cpu_features or "+neon"
                if self.name == "armv7" and "+neon" not in features:
                    features = "+neon," + features
                flags.append(f"--iree-llvmcpu-target-cpu-features={features}")
                if self.name == "arm64" and self.tuned:
                    flags.append(_ARM64_UKERNELS)
        return flags + list(self.extra_flags)

    def device_targets_attr(self) -> Optional[str]:
        """A `hal.device.targets` module attribute for targets no flag can express."""
        if self.name == "vulkan" and self.vulkan_target == "lavapipe":
            from wispy.runtime.vulkan import LAVAPIPE_DEVICE_TARGETS

            return LAVAPIPE_DEVICE_TARGETS
        return None

    def __str__(self) -> str:
        extra = self.cpu_features or (self.vulkan_target if self.name == "vulkan" else "")
        return f"{self.name}({extra})" if extra else self.name

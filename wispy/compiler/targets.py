"""Targets by name (`host`, `arm64`, `armv7`, `vulkan`) and the IREE flags each implies.

    Target.parse("arm64")                       # aarch64 Android/Linux, NEON
    Target.parse("arm64", cpu_features="+dotprod,+i8mm")
    Target.parse("vulkan", vulkan_target="valhall")
"""
from __future__ import annotations

import platform
from dataclasses import dataclass, field
from typing import Optional

from .errors import TargetError

TARGET_NAMES = ("host", "arm64", "armv7", "vulkan")
VULKAN_TARGETS = ("valhall", "adreno", "lavapipe", "valhall4", "rdna2", "rdna3", "ampere", "turing")
# "lavapipe" is Mesa's CPU Vulkan driver, on which wispy's tests run Vulkan modules. Its
# subgroup size is 8; modules built for a GPU's subgroup size (valhall 16, ampere 32)
# give wrong reductions there without any error, so it gets a target of its own.

# Flags every CPU build gets: data tiling doubles f32 matmul speed here and is what
# makes int8 matmuls fast (DESIGN.md, measured on IREE 3.13).
_CPU_COMMON = ["--iree-hal-target-device=local", "--iree-hal-local-target-device-backends=llvm-cpu",
               "--iree-opt-data-tiling"]


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
            if self.name == "host":
                flags.append("--iree-llvmcpu-target-cpu=host")
            else:
                flags.append(f"--iree-llvmcpu-target-triple={self.triple or self.default_triple}")
                features = self.cpu_features or "+neon"
                if self.name == "armv7" and "+neon" not in features:
                    features = "+neon," + features
                flags.append(f"--iree-llvmcpu-target-cpu-features={features}")
            if self.cpu_features and self.name == "host":
                flags.append(f"--iree-llvmcpu-target-cpu-features={self.cpu_features}")
        return flags + list(self.extra_flags)

    def device_targets_attr(self) -> Optional[str]:
        """A `hal.device.targets` module attribute for targets no flag can express."""
        if self.name == "vulkan" and self.vulkan_target == "lavapipe":
            from ..runtime.vulkan import LAVAPIPE_DEVICE_TARGETS

            return LAVAPIPE_DEVICE_TARGETS
        return None

    def __str__(self) -> str:
        extra = self.cpu_features or (self.vulkan_target if self.name == "vulkan" else "")
        return f"{self.name}({extra})" if extra else self.name

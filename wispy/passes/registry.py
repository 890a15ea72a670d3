"""Name -> pass class, imported lazily so `wispy --help` stays fast.

tests/passes/test_registry.py checks that every key equals its class's `name`.
"""
from __future__ import annotations

import importlib

_PASSES = {
    "wispy-block-sparse": ("wispy.passes.block_sparse", "BlockSparsePass"),
    "wispy-conv1d-im2col": ("wispy.passes.conv1d_im2col", "Conv1dIm2colPass"),
    "wispy-dedupe-hoisted-globals": ("wispy.passes.dedupe_hoisted_globals", "DedupeHoistedGlobalsPass"),
    "wispy-int8-vnni": ("wispy.passes.int8_vnni", "Int8VnniPass"),
    "wispy-recurrent-kernel": ("wispy.passes.recurrent_kernel", "RecurrentKernelPass"),
    "wispy-recurrent-matvec": ("wispy.passes.recurrent_matvec", "RecurrentMatvecPass"),
    "wispy-softmax-last-dim": ("wispy.passes.softmax_last_dim", "SoftmaxLastDimPass"),
    "wispy-vulkan-pad-gather": ("wispy.passes.vulkan_pad_gather", "VulkanPadGatherPass"),
}


def pass_names() -> list[str]:
    return sorted(_PASSES)


def get_pass_class(name: str):
    module, cls = _PASSES[name]
    return getattr(importlib.import_module(module), cls)


def get_all_passes() -> dict:
    return {name: get_pass_class(name) for name in _PASSES}


def is_wispy_pass(name: str) -> bool:
    return name in _PASSES

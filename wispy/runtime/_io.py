"""Shared helpers: reading VM function signatures and converting inputs."""
from __future__ import annotations

import re
from typing import Any, Optional, Tuple

import numpy as np

from wispy.runtime.errors import WispyRuntimeError

# One calling-convention character per value; see iree/vm/module.h.
_CCONV_VALUE = set("iIfFr")


def to_numpy(x: Any) -> np.ndarray:
    """A C-contiguous numpy array from a numpy array, scalar or (CPU) torch tensor; a scalar
    stays 0-d (np.ascontiguousarray would make it 1-d)."""
    if hasattr(x, "detach") and hasattr(x, "numpy"):  # torch.Tensor, without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x, order="C")


def parse_cconv(text: str) -> Optional[Tuple[str, str]]:
    """(argument chars, result chars) of a VM calling convention such as ``0rr_rr``.

    Returns None if the text holds no calling convention. Variadic segments
    (``C...D``) count as one value each.
    """
    m = re.search(r"\(0([A-Za-z]*)_([A-Za-z]*)\)", text)
    if not m:
        return None

    def values(seg: str) -> str:
        if seg == "v":
            return ""
        out, depth = [], 0
        for ch in seg:
            if ch == "C":
                if depth == 0:
                    out.append("C")
                depth += 1
            elif ch == "D":
                depth -= 1
            elif depth == 0 and ch in _CCONV_VALUE:
                out.append(ch)
        return "".join(out)

    return values(m.group(1)), values(m.group(2))


def function_cconv(vm_function: Any) -> Optional[Tuple[str, str]]:
    """Calling convention of an ``iree.runtime.VmFunction`` (from its repr)."""
    return parse_cconv(repr(vm_function))


def read_signature(vmfb: Any, function: str) -> Tuple[str, str]:
    """(argument chars, result chars) of `function` in a vmfb (path or bytes).

    Only the bytecode module is loaded (no device), so this works for modules
    compiled for any target, e.g. aarch64 or vulkan on an x86 host.
    """
    import iree.runtime as ireert

    instance = ireert.VmInstance()
    try:
        if isinstance(vmfb, (bytes, bytearray, memoryview)):
            module = ireert.VmModule.copy_buffer(instance, bytes(vmfb))
        else:
            module = ireert.VmModule.mmap(instance, str(vmfb))
    except Exception as e:  # noqa: BLE001 - the binding raises plain exceptions
        raise WispyRuntimeError(f"cannot read module {vmfb!r}: {e}") from e
    fn = module.lookup_function(function)
    if fn is None:
        names = [n for n in module.function_names if not n.startswith("__")]
        raise WispyRuntimeError(f"module has no function {function!r}; it has {names}")
    sig = function_cconv(fn)
    if sig is None:
        raise WispyRuntimeError(f"cannot read the calling convention of {fn!r}")
    return sig

"""Weights kept as numpy arrays on the Python side, referenced from IR by name.

The FX importer would inline weights as `dense_resource` blobs, which the Python
bindings cannot read back (`np.array(attr)` silently gives a 0-d array). wispy imports
every weight as `util.global @name = #flow.parameter.named<"model"::"key">` instead and
keeps the arrays here, so a pass can read a weight, repack it and register new ones.
At the end the store is written either into a `.irpa` parameter archive that ships
beside the `.vmfb`, or imported into the `.vmfb` itself.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import numpy as np

SCOPE = "model"


def symbol_for(key: str) -> str:
    """A global symbol name for a parameter key (`0.weight` -> `w_0_weight`)."""
    return "w_" + re.sub(r"[^A-Za-z0-9_]", "_", key)


class WeightStore:
    """Named numpy arrays: the values of the module's `#flow.parameter.named` globals."""

    def __init__(self, scope: str = SCOPE):
        self.scope = scope
        self._arrays: dict[str, np.ndarray] = {}

    def add(self, key: str, array: np.ndarray) -> str:
        """Registers `array` under a fresh key derived from `key`; returns the key used."""
        base, n = key, 1
        while key in self._arrays:
            key = f"{base}_{n}"
            n += 1
        self._arrays[key] = np.ascontiguousarray(array)
        return key

    def __getitem__(self, key: str) -> np.ndarray:
        return self._arrays[key]

    def __contains__(self, key: str) -> bool:
        return key in self._arrays

    def __len__(self) -> int:
        return len(self._arrays)

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def items(self):
        return self._arrays.items()

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._arrays.values())

    def retain(self, used: set[str]) -> None:
        """Drops arrays no global refers to any more (after a pass replaced them)."""
        for key in [k for k in self._arrays if k not in used]:
            del self._arrays[key]

    def save_irpa(self, path: str | Path) -> Path:
        """Writes the arrays as an IREE parameter archive (`.irpa`)."""
        from iree.runtime import ParameterIndex

        index = ParameterIndex()
        for key, arr in self._arrays.items():
            index.add_buffer(key, arr.tobytes())
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        index.create_archive_file(str(path))
        return path

    def save_npz(self, path: str | Path) -> None:
        np.savez(path, **self._arrays)

    @classmethod
    def load_npz(cls, path: str | Path, scope: str = SCOPE) -> "WeightStore":
        store = cls(scope)
        with np.load(path) as data:
            for k in data.files:
                store._arrays[k] = data[k]
        return store


def parameter_attr(ir, scope: str, key: str, tensor_type):
    """`#flow.parameter.named<"scope"::"key"> : type`, built in the caller's `ir` module."""
    return ir.Attribute.parse(f'#flow.parameter.named<"{scope}"::"{key}"> : {tensor_type}')


_PARAM_RE = re.compile(r'#flow\.parameter\.named<"([^"]*)"::"([^"]*)">')


def parameter_key(attr) -> tuple[str, str] | None:
    """(scope, key) of a `#flow.parameter.named` attribute, else None."""
    m = _PARAM_RE.search(str(attr))
    return (m.group(1), m.group(2)) if m else None

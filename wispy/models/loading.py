"""Loading a model the CLI was pointed at: `file.py:factory`, `zoo:NAME` or a saved
`torch.export` program (`.pt2`), example inputs from `.npy` files or shapes, and torch
checkpoint files (`load_torch_file`: tensors and plain data only, never code)."""
from __future__ import annotations

import importlib.util
import pickle
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from wispy.errors import ModelLoadError


def load_model(spec: str):
    """Returns (model or ExportedProgram, example_args or None)."""
    if spec.startswith("zoo:"):
        from wispy.models import ZOO, example_input

        name = spec[4:]
        if name not in ZOO:
            raise ModelLoadError(f"no model '{name}' in the zoo (known: {', '.join(ZOO)})")
        return ZOO[name][0](), (example_input(name),)
    if spec.endswith(".pt2"):
        path = Path(spec)
        if not path.is_file():
            raise ModelLoadError(f"no such file: {spec}")
        try:
            ep = torch.export.load(str(path))
        except Exception as e:
            raise ModelLoadError(f"{spec} is not a saved torch.export program: {e}") from e
        args = tuple(a for a in ep.example_inputs[0]) if ep.example_inputs else None
        return ep, args
    if ":" not in spec:
        raise ModelLoadError(f"model '{spec}' must be PATH.py:FACTORY, PATH.pt2 or zoo:NAME")
    file, factory = spec.rsplit(":", 1)
    path = Path(file)
    if not path.is_file():
        raise ModelLoadError(f"no such file: {file}")
    mod_name = f"wispy_user_{path.stem}"
    try:
        loader = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(loader)
        sys.modules[mod_name] = module
        loader.loader.exec_module(module)
    except Exception as e:
        raise ModelLoadError(f"cannot import {file}: {type(e).__name__}: {e}") from e
    fn = getattr(module, factory, None)
    if fn is None or not callable(fn):
        names = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n))]
        raise ModelLoadError(f"{file} has no callable '{factory}' (callables: {', '.join(names[:12])})")
    try:
        made = fn()
    except Exception as e:
        raise ModelLoadError(f"{file}:{factory}() raised {type(e).__name__}: {e}") from e
    args = None
    if isinstance(made, tuple) and len(made) == 2 and isinstance(made[0], torch.nn.Module):
        made, args = made
        args = (args,) if isinstance(args, torch.Tensor) else tuple(args)
    if not isinstance(made, torch.nn.Module):
        raise ModelLoadError(f"{file}:{factory}() must return an nn.Module or (module, example_args), "
                             f"got {type(made).__name__}")
    return made.eval(), args


def parse_shape(text: str) -> tuple[tuple[int, ...], np.dtype]:
    """'1x100x153' or '1x100x153:float32'."""
    shape_text, _, dtype = text.partition(":")
    try:
        shape = tuple(int(d) for d in shape_text.lower().split("x"))
        return shape, np.dtype(dtype or "float32")
    except (ValueError, TypeError) as e:
        raise ModelLoadError(f"bad input shape '{text}': write it as 1x100x153 or 1x100x153:float32") from e


def example_args(inputs: Sequence[str] = (), shapes: Sequence[str] = (), default=None, seed: int = 0):
    if inputs:
        out = []
        for p in inputs:
            try:
                out.append(torch.from_numpy(np.load(p)))
            except Exception as e:
                raise ModelLoadError(f"cannot read input {p}: {e}") from e
        return tuple(out)
    if shapes:
        rng = np.random.default_rng(seed)
        out = []
        for s in shapes:
            shape, dtype = parse_shape(s)
            arr = rng.standard_normal(shape).astype(dtype) if dtype.kind == "f" else \
                rng.integers(0, 10, shape).astype(dtype)
            out.append(torch.from_numpy(arr))
        return tuple(out)
    if default is None:
        raise ModelLoadError("give example inputs with --input FILE.npy or --input-shape 1x100x153 "
                             "(or return (model, example_args) from the factory)")
    return default


def load_torch_file(path, what: str = "checkpoint"):
    """`torch.load(path, weights_only=True)` on the CPU: a file can hold tensors and plain
    data (dicts, lists, numbers, strings), never an object whose unpickling runs code. Every
    failure is a `ModelLoadError` that names the file, says what is wrong with it and what to
    do: a missing file, an empty, truncated or non-torch file, and a pickle that asks for a
    Python function or class (`os.system` in a malicious file; a custom class in a file from
    elsewhere), which is refused before anything runs."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"no such {what} file: {path}")
    if path.stat().st_size == 0:
        raise ModelLoadError(f"{path} is empty: it is not a {what}; it may have been cut off while "
                             f"being written or copied, so write or copy it again")
    with open(path, "rb") as f:
        head = f.read(4)
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # torch.save's zip archive; the legacy pickle
        raise ModelLoadError(f"{path} is not a torch {what}: it starts with {head!r}, not the header of a "
                             f"file written by torch.save")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        text = str(e)
        if "Weights only load failed" in text:
            why = next((ln.strip() for ln in text.splitlines() if "GLOBAL" in ln or "Unsupported" in ln),
                       text.splitlines()[0] if text else "")
            raise ModelLoadError(
                f"{path} holds Python objects, not just tensors and plain data ({why}); wispy never "
                f"unpickles those, because a {what} can run code when it is loaded. If you made the "
                f"file and trust it, save plain data instead: torch.save({{'model': model.state_dict(), "
                f"'config': {{...}}}}, path)") from None
        raise ModelLoadError(f"{path} is not a torch {what} (unpickling failed: {text}); "
                             f"give a file written by torch.save") from None
    except (EOFError, RuntimeError, KeyError, ValueError, OSError, AttributeError, IndexError) as e:
        raise ModelLoadError(f"{path} is not a readable torch {what} ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else 'no detail'}); it may be truncated "
                             f"or another kind of file: write or copy it again") from None

"""Files: writing one so that readers only ever see a whole one, and loading a torch file that cannot run code."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, IO


def atomic_write(path, write: Callable[[IO[bytes]], None]) -> None:
    """Calls write(f) on a temporary file of its own beside `path`, then moves it into place.
    Two runs writing the same path each move their own file (the last one wins); a write
    that fails leaves the old file and no temporary one. The file gets the permissions a
    plain open() would give it (mkstemp's are 0600)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_torch_file(path, what: str = "checkpoint"):
    """`torch.load(path, weights_only=True)` on the CPU: a file can hold tensors and plain
    data (dicts, lists, numbers, strings), never an object whose unpickling runs code. Every
    failure is a `ModelLoadError` that names the file, says what is wrong with it and what to
    do: a missing file, an empty, truncated or non-torch file, and a pickle that asks for a
    Python function or class (`os.system` in a malicious file; a custom class in a file from
    elsewhere), which is refused before anything runs."""
    import pickle

    import torch

    from wispy.errors import ModelLoadError

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

"""Writing a file so that readers only ever see a whole one."""
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


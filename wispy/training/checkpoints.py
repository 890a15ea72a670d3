"""Checkpoint files of the training loops: atomic saves, resuming, the seed check, history.json."""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from wispy._files import atomic_write
from wispy.models.loading import load_torch_file


def seed_all(seed: int) -> None:
    """Seeds Python's, numpy's and torch's generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def save_checkpoint(obj, path: Path) -> None:
    """torch.save that never leaves a half-written or vanished checkpoint (`atomic_write`)."""
    atomic_write(path, lambda f: torch.save(obj, f))


def load_file(path) -> dict:
    """A checkpoint written by `save_checkpoint`, on the CPU."""
    return load_torch_file(path)


def check_seed(ck: dict, seed: int, path: Path) -> None:
    """A resumed run must draw the batches it drew before: another seed would mix two runs."""
    if ck.get("seed", 0) != seed:  # checkpoints from before the seed was saved were all seed 0
        raise ValueError(f"{path} was written by a run with seed {ck.get('seed', 0)}, not {seed}: give "
                         f"--seed {ck.get('seed', 0)} to resume it, or use another output directory")


def resume_from(path: Optional[Path], resume: bool, seed: Optional[int] = None) -> Optional[dict]:
    """The checkpoint at `path` when resuming and it exists (else None); with `seed`, one
    written by a run with another seed is refused (`check_seed`)."""
    if path is None or not resume or not path.exists():
        return None
    ck = load_file(path)
    if seed is not None:
        check_seed(ck, seed, path)
    return ck


def write_history(out_dir: Path, history: list) -> None:
    """out_dir/history.json: one record per epoch."""
    (Path(out_dir) / "history.json").write_text(json.dumps(history, indent=1) + "\n")

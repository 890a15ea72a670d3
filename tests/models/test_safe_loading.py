"""Loading a checkpoint can never run code, and a file that is not a checkpoint is a ModelLoadError.

Every loader goes through `wispy.models.loading.load_torch_file` (`torch.load(weights_only=True)`); a
pickle that would call `os.system` on load is refused, and the command never runs.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from wispy.errors import ModelLoadError

REPO = Path(__file__).resolve().parents[2]
SHIPPED = [REPO / "wispy/models/data/gru_small.pt", *sorted((REPO / "checkpoints/gru_medium").glob("*.pt"))]


class _RunsCode:
    """Unpickles as `os.system(cmd)`."""

    def __init__(self, cmd: str):
        self.cmd = cmd

    def __reduce__(self):
        return os.system, (self.cmd,)


@pytest.fixture
def evil(tmp_path):
    """(a checkpoint whose 'model' entry runs `touch MARKER` when unpickled, MARKER)."""
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    config = torch.load(SHIPPED[0], map_location="cpu", weights_only=True)["config"]
    torch.save({"model": _RunsCode(f"touch {marker}"), "config": config, "quant": {"layers": {}},
                "masks": {}, "prune": {}, "seed": 0, "epoch": 1}, path)
    return path, marker


def _loaders():
    from wispy.models.loading import load_torch_file
    from wispy.compress import load_pruned, load_quantized
    from wispy.models.registry import load_checkpoint
    from wispy.training.checkpoints import load_file, resume_from

    return {"load_torch_file": load_torch_file, "load_checkpoint": load_checkpoint, "load_pruned": load_pruned,
            "load_quantized": load_quantized, "load_file": load_file,
            "resume_from": lambda p: resume_from(p, True, seed=0)}


@pytest.mark.parametrize("name", list(_loaders()))
def test_a_pickle_that_runs_code_is_refused(evil, name):
    path, marker = evil
    with pytest.raises(ModelLoadError, match="holds Python objects") as e:
        _loaders()[name](path)
    assert "posix.system" in str(e.value) or "os.system" in str(e.value)
    assert not marker.exists()


@pytest.mark.parametrize("command", [["eval", "{p}", "--corpus", "{d}"],
                                     ["prune", "{p}", "--corpus", "{d}", "--out", "{d}/out", "--rate", "4"],
                                     ["finetune", "{p}", "--corpus", "{d}", "--out", "{d}/out"]])
def test_the_cli_refuses_it(evil, tmp_path, capsys, command):
    from wispy.cli.main import main

    path, marker = evil
    argv = [a.format(p=path, d=tmp_path) for a in command]
    assert main(argv) == 1
    assert "holds Python objects" in capsys.readouterr().err
    assert not marker.exists()


def test_demo_features_read_the_shipped_norm_safely():
    from wispy.models.acoustic import demo_features

    assert demo_features().shape[1] == 40


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_the_shipped_checkpoints_load(path):
    from wispy.compress import load_pruned
    from wispy.models.registry import load_checkpoint

    model = (load_pruned if "pruned" in path.name else load_checkpoint)(path)
    assert model.wispy_config


@pytest.mark.parametrize("content, says", [(b"", "is empty"), (b"hello, world\n", "not a torch checkpoint"),
                                           (None, "not a readable torch checkpoint")])
def test_a_file_that_is_no_checkpoint(tmp_path, content, says):
    from wispy.models.registry import load_checkpoint

    path = tmp_path / "bad.pt"
    path.write_bytes(SHIPPED[0].read_bytes()[:5000] if content is None else content)
    with pytest.raises(ModelLoadError, match=says):
        load_checkpoint(path)


def test_a_checkpoint_of_something_else(tmp_path):
    from wispy.compress import load_quantized
    from wispy.models.registry import load_checkpoint

    path = tmp_path / "state.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    with pytest.raises(ModelLoadError, match="not a wispy checkpoint"):
        load_checkpoint(path)
    with pytest.raises(ModelLoadError, match="not written by save_quantized"):
        load_quantized(path)
    with pytest.raises(ModelLoadError, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "missing.pt")

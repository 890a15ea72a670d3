"""The same model builds to the same bytes wherever its source sits (issue 27, finding 10).

The .vmfb embedded the absolute paths of the model's source and of torch's files (source
locations from torch.export's stack traces); the backend phase now sees them relative
(pipeline._portable_path), while the earlier phases, whose diagnostics become the user's
error messages, keep them in full.
"""
from __future__ import annotations

import importlib.util
import os
import re

import torch

import wispy
from wispy.compiler.pipeline import _portable_path

_MODEL = '''
import torch
from torch import nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 6, 3, padding=1)
        self.lin = nn.Linear(6, 5)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        return self.lin(y.transpose(1, 2))
'''


def _load(path):
    spec = importlib.util.spec_from_file_location("repro_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Model


def _build(directory, monkeypatch):
    directory.mkdir(parents=True)
    (directory / "model.py").write_text(_MODEL)
    monkeypatch.chdir(directory)
    torch.manual_seed(0)
    model = _load(directory / "model.py")().eval()
    x = torch.randn(1, 4, 9, generator=torch.Generator().manual_seed(0))
    dump = directory / "dump"
    cm = wispy.compile_model(model, (x,), target="host", progress=False, dump_dir=dump)
    return cm.vmfb, (dump / "1-import.mlir").read_text()


def test_two_checkouts_build_identical_vmfb(tmp_path, monkeypatch):
    a, import_a = _build(tmp_path / "checkout-a" / "src", monkeypatch)
    b, import_b = _build(tmp_path / "elsewhere" / "b", monkeypatch)
    assert str(tmp_path).encode() not in a, "the .vmfb holds an absolute path of the build"
    assert b"site-packages" not in a
    assert a == b
    # The phases before the backend keep the user's file in full (their errors name it).
    assert str(tmp_path / "checkout-a" / "src" / "model.py") in import_a
    assert str(tmp_path / "elsewhere" / "b" / "model.py") in import_b


def test_portable_path():
    torch_file = os.path.join(os.path.dirname(torch.__file__), "nn", "modules", "conv.py")
    assert _portable_path(torch_file) == os.path.join("torch", "nn", "modules", "conv.py")
    assert _portable_path("/nowhere/on/sys/path/model.py") == "model.py"
    assert _portable_path("model.py") == "model.py"
    assert not re.match(r"^/", _portable_path(wispy.__file__))

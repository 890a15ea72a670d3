"""The pass registry's invariants: names, dataclass shape, docs and a lit test per pass."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from wispy.passes.base import WispyPass
from wispy.passes.registry import get_all_passes, get_pass_class, is_wispy_pass, pass_names

HERE = Path(__file__).parent
PASSES = get_all_passes()


def test_registry_is_not_empty_and_sorted():
    assert len(PASSES) >= 2
    assert pass_names() == sorted(PASSES)


@pytest.mark.parametrize("name", list(PASSES))
def test_key_equals_class_name(name):
    cls = PASSES[name]
    assert cls.name == name
    assert get_pass_class(name) is cls and is_wispy_pass(name)
    assert re.fullmatch(r"wispy(-[a-z0-9]+)+", name), "pass names are kebab-case and start with wispy-"


@pytest.mark.parametrize("name", list(PASSES))
def test_pass_is_frozen_dataclass(name):
    cls = PASSES[name]
    assert issubclass(cls, WispyPass)
    assert dataclasses.is_dataclass(cls)
    assert cls.__dataclass_params__.frozen
    p = cls()
    fields = dataclasses.fields(cls)
    if fields:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(p, fields[0].name, getattr(p, fields[0].name))


@pytest.mark.parametrize("name", list(PASSES))
def test_pass_has_docstring(name):
    cls = PASSES[name]
    doc = cls.__dict__.get("__doc__") or ""
    assert doc.strip(), f"{cls.__name__} has no docstring"
    assert not doc.startswith(f"{cls.__name__}("), f"{cls.__name__}.__doc__ is dataclass's signature: {doc!r}"


@pytest.mark.parametrize("name", list(PASSES))
def test_module_documents_pass(name):
    """Each pass's module docstring starts with the pass name (what it does, matches, emits)."""
    import sys

    doc = sys.modules[PASSES[name].__module__].__doc__ or ""
    assert doc.startswith(f"{name}: "), doc[:80]


@pytest.mark.parametrize("name", list(PASSES))
def test_from_options_empty_gives_defaults(name):
    cls = PASSES[name]
    p = cls.from_options({})
    assert p == cls()
    assert p.pipeline_text() == name  # defaults are not spelled out
    for f in dataclasses.fields(cls):
        assert getattr(p, f.name) == f.default


@pytest.mark.parametrize("name", list(PASSES))
def test_options_round_trip(name):
    cls = PASSES[name]
    assert cls.option_names() == [f.name.replace("_", "-") for f in dataclasses.fields(cls)]
    for f in dataclasses.fields(cls):
        if f.type in (int, "int"):
            p = cls.from_options({f.name.replace("_", "-"): str(f.default + 1)})
            assert getattr(p, f.name) == f.default + 1
            assert cls.from_options(dict([p.pipeline_text()[len(name) + 1:-1].split("=")])) == p


@pytest.mark.parametrize("name", list(PASSES))
def test_every_pass_has_a_lit_test(name):
    path = HERE / f"{name}.mlir"
    assert path.is_file(), f"add a FileCheck test tests/passes/{name}.mlir"
    text = path.read_text()
    assert re.search(r"^// RUN: .*%wispy-opt .*" + re.escape(name), text, re.M), "its RUN line must run the pass"
    assert "CHECK" in text

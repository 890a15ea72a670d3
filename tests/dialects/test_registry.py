"""The op registry's invariants: every wispy:: op is defined in wispy/dialects/ with its schema,
fake, reference and lowering, a test of its own that exists, and a row in dialects/README.md."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import torch

import wispy.dialects as dialects
from wispy.dialects import OPS, Decomposition, LoweredByPass, LoweringOptions, WispyOp, decompositions, get_op
from wispy.passes.registry import is_wispy_pass

ROOT = Path(__file__).resolve().parents[2]


def test_registry_holds_every_family():
    assert sorted(OPS) == ["wispy::gru_sequence", "wispy::int8_conv_vnni", "wispy::int8_matmul_vnni",
                           "wispy::lstm_sequence", "wispy::qconv1d", "wispy::qlinear", "wispy::winograd_qconv1d"]
    assert get_op("qconv1d") is get_op("wispy::qconv1d") is OPS["wispy::qconv1d"]
    with pytest.raises(KeyError, match="no wispy op 'conv9d'"):
        get_op("conv9d")


@pytest.mark.parametrize("name", list(OPS))
def test_op_has_every_part(name):
    op = OPS[name]
    assert isinstance(op, WispyOp) and op.name == name and name.startswith("wispy::")
    assert callable(op.reference) and callable(op.fake)
    assert op.summary and "\n" not in op.summary
    if isinstance(op.lowering, Decomposition):
        assert callable(op.lowering.fn)
    else:
        assert isinstance(op.lowering, LoweredByPass) and is_wispy_pass(op.lowering.name), op.lowering


@pytest.mark.parametrize("name", list(OPS))
def test_schema_is_registered_and_matches_the_reference(name):
    """The declared schema is what torch.library holds, and what the reference's annotations say."""
    op = OPS[name]
    assert str(op.overload._schema) == name + op.schema
    assert torch.library.infer_schema(op.reference, mutates_args=()) == op.schema


@pytest.mark.parametrize("name", list(OPS))
def test_op_names_a_test_that_exists(name):
    path, _, func = OPS[name].test.partition("::")
    file = ROOT / path
    assert file.is_file(), f"{name}: {path} does not exist"
    defined = {n.name for n in ast.parse(file.read_text()).body if isinstance(n, ast.FunctionDef)}
    assert func in defined, f"{name}: {path} defines no {func}"


def test_decompositions_cover_the_ops_lowered_at_export():
    table = decompositions(LoweringOptions(vnni=True))
    assert set(table) == {op.overload for op in OPS.values() if isinstance(op.lowering, Decomposition)}
    assert table[OPS["wispy::qconv1d"].overload].__name__ == "qconv1d"


def test_no_wispy_op_is_defined_outside_dialects():
    """torch.library definitions of wispy:: ops live in wispy/dialects/ (through base.define)."""
    pattern = re.compile(r"""custom_op\(\s*["']wispy::|torch\.library\.(define|Library)\(\s*["']wispy""")
    for path in (ROOT / "wispy").rglob("*.py"):
        if path.parent.name != "dialects":
            assert not pattern.search(path.read_text()), f"{path.relative_to(ROOT)} defines a wispy:: op"


def test_readme_has_a_row_per_op():
    readme = (Path(dialects.__file__).parent / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `wispy::")]
    assert len(rows) == len(OPS)
    for name, op in OPS.items():
        row = next((r for r in rows if r.startswith(f"| `{name}`")), None)
        assert row is not None, f"README.md has no row for {name}"
        assert op.test in row, f"README.md's row for {name} should name its test {op.test}"
        lowered_by = op.lowering.name if isinstance(op.lowering, LoweredByPass) else "quant_lowering"
        assert lowered_by in row

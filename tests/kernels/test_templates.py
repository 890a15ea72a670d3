"""The kernels' MLIR templates (wispy/kernels/templates.py): placeholders, indented blocks,
strictness, and every section of every template file filled without a stray `$`."""
from __future__ import annotations

from importlib import resources

import pytest

from wispy.kernels import templates
from wispy.kernels.templates import fill


def test_inline_and_braced_placeholders():
    assert fill("%c$i = arith.constant $i : index", i=3) == "%c3 = arith.constant 3 : index"
    assert fill("%w${g}_$u", g=1, u=2) == "%w1_2"


def test_blocks_take_the_placeholders_indentation_and_empty_ones_leave_no_line():
    text = "a {\n  $body\n  $none\n}"
    assert fill(text, body="x\ny {\n  z\n}", none="") == "a {\n  x\n  y {\n    z\n  }\n}"
    assert fill(text, body=["x", "", "y"], none=[]) == "a {\n  x\n  y\n}"


def test_a_missing_or_unused_value_fails():
    with pytest.raises(KeyError):
        fill("%c$i", j=1)
    with pytest.raises(KeyError, match="not used"):
        fill("%c$i", i=1, j=2)


def test_sections_drop_comments():
    for path in resources.files("wispy.kernels").joinpath("templates").iterdir():
        sections = templates.sections(path.name)
        assert sections, path.name
        for name, text in sections.items():
            assert text and "//" not in text, (path.name, name)


def test_the_kernels_leave_no_placeholder_behind():
    import numpy as np

    from wispy.kernels import int8_vnni, recurrent

    text = int8_vnni.executable("k", 13, 64, 32, G=2, scaled=True)
    assert "$" not in text and "llvm.x86.avx512.vpdpbusd.512" in text
    shape = recurrent.KernelShape(tl=8, gw=8, workers=2)
    assert recurrent.parts_supported(16, 2, shape)
    w_hh = _Bucket(np.ones((1, 64, 16), np.float32), np.arange(64)[None], np.arange(16)[None])  # an LSTM's 4H rows
    plans = recurrent.plan_parts([w_hh], None, 16, shape, "lstm")
    assert len(plans) == 2 and "$" not in recurrent.executable("r", 3, 1, 16, None, plans, shape, "lstm")


class _Bucket:
    """A BSPC bucket of one dense block (wispy.dialects.bspc.Bucket's fields)."""

    def __init__(self, values, rows, cols):
        self.values, self.rows, self.cols = values, rows, cols

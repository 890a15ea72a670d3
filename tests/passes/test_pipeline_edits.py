"""Pipelines as objects: the edits compile_model's options make (without, replace) and the
text form the CLI and `wispy opt` parse."""
import pytest

from wispy.errors import PipelineError
from wispy.passes.pipeline import PassPipeline

TEXT = ("builtin.module(wispy-softmax-last-dim, wispy-recurrent-kernel, wispy-int8-vnni, "
        "util.func(canonicalize, cse))")


def test_text_round_trips_and_compares():
    p = PassPipeline(TEXT)
    assert str(p) == TEXT
    assert PassPipeline(str(p)) == p
    assert not PassPipeline("") and p


def test_contains_names_wispy_and_mlir_items():
    p = PassPipeline(TEXT)
    assert "wispy-recurrent-kernel" in p and "util.func" in p
    assert "wispy-block-sparse" not in p


def test_without_drops_every_occurrence_and_leaves_the_original():
    p = PassPipeline(TEXT + "")
    q = p.without("wispy-int8-vnni")
    assert "wispy-int8-vnni" not in q and "wispy-int8-vnni" in p
    assert str(q) == ("builtin.module(wispy-softmax-last-dim, wispy-recurrent-kernel, "
                      "util.func(canonicalize, cse))")
    assert str(p.without("util.func")).endswith("wispy-int8-vnni)")
    assert p.without("wispy-block-sparse") == p  # absent: unchanged


def test_replace_sets_options_in_text_form():
    p = PassPipeline(TEXT).replace("wispy-recurrent-kernel", workers=2)
    assert p.get("wispy-recurrent-kernel").workers == 2
    assert "wispy-recurrent-kernel{workers=2}" in str(p)
    q = p.replace("wispy-recurrent-kernel", dense=True)
    assert "wispy-recurrent-kernel{dense=true workers=2}" in str(q) or \
        "wispy-recurrent-kernel{workers=2 dense=true}" in str(q)
    assert PassPipeline(str(q)) == q


def test_replace_refuses_unknown_pass_or_option():
    p = PassPipeline(TEXT)
    with pytest.raises(PipelineError, match="not in the pipeline"):
        p.replace("wispy-block-sparse", block=(4, 4))
    with pytest.raises(PipelineError, match="has no option colour"):
        p.replace("wispy-recurrent-kernel", colour=3)

"""Edit distance, error rates and greedy CTC decoding."""
import math

import numpy as np
import pytest

from wispy.metrics import edit_distance, error_rate, greedy_ctc_decode


def test_substitution_and_deletion():
    assert edit_distance("a b c d".split(), "a x c".split()) == (1, 1, 0)
    assert error_rate(["a b c d".split()], ["a x c".split()]) == 2 / 4


def test_insertions_and_identity():
    assert edit_distance("a b".split(), "a q b r".split()) == (0, 0, 2)
    assert edit_distance(list("kitten"), list("sitting")) == (2, 0, 1)
    assert edit_distance([1, 2, 3], [1, 2, 3]) == (0, 0, 0)
    assert error_rate(["a b".split(), ["c"]], ["a q b r".split(), ["c"]]) == 2 / 3


def test_empty_hypothesis_and_reference():
    assert edit_distance("a b c".split(), []) == (0, 3, 0)
    assert error_rate(["a b c".split()], [[]]) == 1.0
    assert edit_distance([], ["x", "y"]) == (0, 0, 2)
    assert error_rate([[], ["a"]], [["x", "y"], ["a"]]) == 2.0  # insertions still count
    assert error_rate([[]], [[]]) == 0.0
    assert math.isinf(error_rate([[]], [["x"]]))
    assert error_rate([], []) == 0.0
    with pytest.raises(ValueError):
        error_rate([["a"]], [])


def test_totals_are_pooled_not_averaged():
    # 1 edit on a 1-phone ref and 0 on a 9-phone ref: 1/10, not the mean of 1.0 and 0.0
    assert error_rate([["a"], list("bcdefghij")], [["z"], list("bcdefghij")]) == pytest.approx(0.1)


def test_edit_count_is_minimal():
    rng = np.random.default_rng(0)
    for _ in range(200):
        r = rng.integers(0, 3, rng.integers(0, 7)).tolist()
        h = rng.integers(0, 3, rng.integers(0, 7)).tolist()
        s, d, i = edit_distance(r, h)
        assert len(r) - d + i == len(h) and s <= len(r) - d
        # brute-force Levenshtein by recursion
        from functools import lru_cache

        @lru_cache(None)
        def lev(a, b):
            if not a or not b:
                return len(a) + len(b)
            return min(lev(a[1:], b[1:]) + (a[0] != b[0]), lev(a[1:], b) + 1, lev(a, b[1:]) + 1)

        assert s + d + i == lev(tuple(r), tuple(h))


def test_greedy_ctc_decode():
    # frames' argmax: 1 1 0 1 2 2 0 0 3 0 -> collapse -> 1 0 1 2 0 3 0 -> drop blanks -> 1 1 2 3
    best = [1, 1, 0, 1, 2, 2, 0, 0, 3, 0]
    m = np.full((len(best), 4), -5.0)
    m[np.arange(len(best)), best] = -0.1
    assert greedy_ctc_decode(m) == [1, 1, 2, 3]
    assert greedy_ctc_decode(m, blank=2) == [1, 0, 1, 0, 3, 0]
    assert greedy_ctc_decode(np.zeros((0, 4))) == []
    assert greedy_ctc_decode(np.log(np.full((3, 2), 0.5)) + np.array([[0, 1e-3]] * 3)) == [1]

"""Length-shaping terms against hand-computed values (rewards/length_shaping.py)."""

from __future__ import annotations

import math

import pytest

from megathink.errors import DataError
from megathink.rewards.length_shaping import (
    HapoHistory,
    kimi_length_terms,
    l1_exact_terms,
    l1_max_factors,
    truncate_over,
)


def test_kimi_group_length_reward():
    # group a: lengths 10, 20, 30 -> lambda 0.5, 0.0, -0.5; group b: all 7 -> lambda 0
    lengths = [10, 20, 30, 7, 7]
    correct = [True, False, False, True, False]
    groups = ["a", "a", "a", "b", "b"]
    assert kimi_length_terms(lengths, correct, groups) == [0.5, 0.0, -0.5, 0.0, 0.0]
    # a wrong short answer is not rewarded for being short: min(0, 0.5) = 0
    assert kimi_length_terms([10, 30], [False, True], ["g", "g"]) == [0.0, -0.5]


def test_l1_exact_and_max():
    assert l1_exact_terms([100, 250, 40], [200, 200, None], 0.001) == pytest.approx([-0.1, -0.05, 0.0])
    # max: clip(alpha (N - L) + delta, 0, 1): 0.01*(200-100)+0.5 = 1.5 -> 1; 0.01*(200-250)+0.5 = 0
    assert l1_max_factors([100, 250, 210, 5], [200, 200, 200, None], 0.01) == pytest.approx([1.0, 0.0, 0.4, 1.0])
    assert l1_max_factors([200], [200], 0.01, smooth=True) == [0.5]
    assert l1_max_factors([300], [200], 0.01, smooth=True)[0] == pytest.approx(1 / (1 + math.e))


def test_dler_truncation():
    assert truncate_over([1.0, -1.0, 0.5], [10, 11, 12], cap=10) == [1.0, 0.0, 0.0]


def test_hapo_history_terms_and_update():
    history = HapoHistory()
    # no correct answer known yet: every term 0; then h_q = 20 (the shortest correct)
    assert history.terms([40, 20, 30], [True, True, False], ["q", "q", "q"]) == [0.0, 0.0, 0.0]
    assert history.shortest == {"q": 20}
    # L = 10: cos(pi/4); L = 20: cos(pi/2) = 0; L = 30 correct: cos(3pi/4) = -0.707 -> floor -0.7;
    # L = 50 >= 2h: -1 -> -0.7 (correct) / -1 (wrong); L = 5 wrong: cos(pi/8) > 0 -> min(., 0) = 0
    got = history.terms([10, 20, 30, 50, 50, 5], [True, True, True, True, False, False], ["q"] * 6)
    assert got == pytest.approx([math.cos(math.pi / 4), 0.0, -0.7, -0.7, -1.0, 0.0], abs=1e-12)
    assert history.shortest == {"q": 10}
    copy = HapoHistory()
    copy.load_state_dict(history.state_dict())
    assert copy.shortest == {"q": 10}


def test_mismatched_lengths_name_the_column():
    with pytest.raises(DataError, match="correct"):
        kimi_length_terms([1, 2], [True], ["a", "a"])

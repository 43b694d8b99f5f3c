"""Mode-collapse guards against hand-computed values (rewards/mode_balance.py)."""

from __future__ import annotations

import math

import pytest

from megathink.rewards.mode_balance import ada_grpo_scales, autothink_balance, autothink_length_terms


def test_ada_grpo_scales():
    # group of G = 4 with 3 think and 1 short: F = 3 / 1
    modes, groups = ["think", "think", "think", "short"], [0, 0, 0, 0]
    # t = 0: decay 2 -> think 1 + 0.5 (4/3 - 1) 2 = 4/3, short 1 + 0.5 (4 - 1) 2 = 4
    assert ada_grpo_scales(modes, groups, 0.0) == pytest.approx([4 / 3] * 3 + [4.0])
    # t = T/2: decay 1 -> think 1 + 1/6, short 2.5
    assert ada_grpo_scales(modes, groups, 0.5) == pytest.approx([1 + 1 / 6] * 3 + [2.5])
    # t = T: decay 1 + cos(pi) = 0 -> all 1
    assert ada_grpo_scales(modes, groups, 1.0) == pytest.approx([1.0] * 4)
    assert ada_grpo_scales(["short", "short"], [1, 1], 0.25) == pytest.approx([1.0, 1.0])  # one mode: F = G


def test_autothink_balance():
    # 3 of 4 think: rho = 0.75, s = 0.5 for think; no-think untouched (s' = 0)
    rewards, modes, correct = [0.5, 0.5, -1.0, 1.0], ["think", "think", "think", "short"], [True, True, False, True]
    assert autothink_balance(rewards, modes, correct) == pytest.approx([0.25, 0.25, -1.0, 1.0])
    # all short: rho = 0, s' = 1: short rewards -> target (0 correct, -1 wrong)
    assert autothink_balance([1.0, -1.0], ["short", "short"], [True, False]) == [0.0, -1.0]
    # balanced: nothing changes
    assert autothink_balance([1.0, 0.5], ["short", "think"], [True, True]) == [1.0, 0.5]


def test_autothink_length_terms():
    # group lengths 10, 20, 30: mean 20, population std sqrt(200/3); z = -1.2247, 0, 1.2247
    z = 10 / math.sqrt(200 / 3)
    got = autothink_length_terms([10, 20, 30, 5], [True, True, False, True], [0, 0, 0, 1])
    assert got == pytest.approx([z, 0.0, z, 0.0])  # correct: -z; wrong: +z; a lone sample: 0

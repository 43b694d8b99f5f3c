"""RewardShaping: the configured terms composed in order, identity when off, HAPO state resumes."""

from __future__ import annotations

import math

import pytest

from megathink.config import RewardConfig
from megathink.rewards.shaping import RewardShaping, ShapingInputs

X = ShapingInputs(
    lengths=[10, 20, 30, 40], correct=[True, True, False, True], modes=["short", "think", "think", "think"],
    groups=[0, 0, 0, 0], prompts=["q"] * 4, budgets=[25, 25, 25, None],
)
BASE = [1.0, 0.5, -1.0, 0.5]


def test_off_is_the_identity():
    shaped, metrics = RewardShaping(RewardConfig()).apply(BASE, X, 0.3)
    assert shaped == BASE and metrics == {}


def test_terms_then_budget_then_truncation_then_guards():
    cfg = RewardConfig(kimi_length_coef=0.2, l1_mode="exact", l1_alpha=0.01, truncate_tokens=35)
    shaped, metrics = RewardShaping(cfg).apply(BASE, X, 0.0)
    kimi = [0.5, 0.5 - 1 / 3, min(0.0, 0.5 - 2 / 3), -0.5]  # lengths 10..40 in one group
    l1 = [-0.15, -0.05, -0.05, 0.0]
    want = [b + 0.2 * k + l for b, k, l in zip(BASE, kimi, l1)]
    want[3] = 0.0  # 40 > 35 tokens: DLER's truncation, after the terms
    assert shaped == pytest.approx(want)
    assert metrics["shaping/truncated"] == 0.25 and "shaping/kimi_length" in metrics


def test_max_factor_only_scales_positive_rewards_and_guards_see_the_final_reward():
    cfg = RewardConfig(l1_mode="max", l1_alpha=0.1, l1_delta=0.5, ada_grpo=True)
    shaped, _ = RewardShaping(cfg).apply(BASE, X, 1.0)  # t = T: Ada-GRPO's scale is 1
    # factors clip(0.1 (25 - L) + 0.5, 0, 1): L = 10 -> 1, L = 20 -> 1, L = 30 -> 0 (but -1 < 0 is
    # kept), no budget -> 1
    assert shaped == pytest.approx([1.0, 0.5, -1.0, 0.5])
    tight = RewardShaping(RewardConfig(l1_mode="max", l1_alpha=0.1, l1_delta=0.0)).apply(BASE, X, 1.0)[0]
    assert tight == pytest.approx([1.0, 0.5 * 0.5, -1.0, 0.5])  # L = 20: 0.1 * 5 = 0.5
    early, _ = RewardShaping(cfg).apply(BASE, X, 0.0)  # short is 1 of 4: scaled by 1 + 0.5 * 3 * 2 = 4
    assert early[0] == pytest.approx(4.0)


def test_hapo_history_is_state_that_resumes():
    cfg = RewardConfig(hapo_coef=1.0)
    first = RewardShaping(cfg)
    step1, _ = first.apply(BASE, X, 0.0)
    assert step1 == BASE  # nothing known yet; the shortest correct (10) is recorded
    resumed = RewardShaping(cfg)
    resumed.load_state_dict(first.state_dict())
    a, _ = first.apply(BASE, X, 0.1)
    b, _ = resumed.apply(BASE, X, 0.1)
    assert a == b
    assert a[0] == pytest.approx(1.0 + math.cos(math.pi / 2))  # L = h: cos(pi/2) = 0
    assert a[1] == pytest.approx(0.5 + max(-1.0, -0.7))  # L = 2h: -1, floored at -0.7 (correct)

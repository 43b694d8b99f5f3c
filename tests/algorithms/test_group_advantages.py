"""group_advantages: group-centred rewards, optional unbiased-std normalisation, hand-computed."""

from __future__ import annotations

import math

import pytest
import torch

from megathink.algorithms import group_advantages


def _close(actual: torch.Tensor, expected: list[float], tol: float = 1e-12) -> None:
    assert actual.shape == (len(expected),)
    for got, want in zip(actual.tolist(), expected):
        assert math.isclose(got, want, rel_tol=tol, abs_tol=tol), (actual.tolist(), expected)


# Three groups, interleaved, of sizes 3, 2 and 1, with non-contiguous and negative ids.
REWARDS = [1.0, -1.0, 0.5, 1.0, -1.0, 0.3]
IDS = [5, -2, 5, -2, 5, 90]


def test_centred_unequal_groups_any_order_and_group_of_one() -> None:
    out = group_advantages(torch.tensor(REWARDS, dtype=torch.float64), torch.tensor(IDS))
    mean5 = (1.0 + 0.5 - 1.0) / 3  # 1/6
    mean2 = (-1.0 + 1.0) / 2  # 0
    _close(out, [1.0 - mean5, -1.0 - mean2, 0.5 - mean5, 1.0 - mean2, -1.0 - mean5, 0.0])
    assert out.dtype == torch.float64


def test_std_normalisation_is_unbiased_and_lone_sample_is_zero() -> None:
    out = group_advantages(torch.tensor(REWARDS, dtype=torch.float64), torch.tensor(IDS), std_normalize=True)
    mean5 = 1.0 / 6
    d5 = [1.0 - mean5, 0.5 - mean5, -1.0 - mean5]
    std5 = math.sqrt(sum(d * d for d in d5) / (3 - 1))  # Bessel: divide by n - 1
    std2 = math.sqrt((1.0 + 1.0) / (2 - 1))
    eps = 1e-6
    _close(
        out,
        [d5[0] / (std5 + eps), -1.0 / (std2 + eps), d5[1] / (std5 + eps),
         1.0 / (std2 + eps), d5[2] / (std5 + eps), 0.0],
    )
    assert torch.isfinite(out).all()


def test_thinkless_reward_group() -> None:
    # <short> correct (+1), <think> correct (1 - 0.5), two wrong (-1): mean -0.125.
    out = group_advantages(torch.tensor([1.0, 0.5, -1.0, -1.0]), torch.zeros(4, dtype=torch.long))
    _close(out, [1.125, 0.625, -0.875, -0.875], tol=1e-6)


def test_constant_groups_give_zero_without_nan_even_with_eps_zero() -> None:
    rewards = torch.tensor([0.5, 0.5, 0.5, 2.0])
    ids = torch.tensor([1, 1, 1, 3])
    for eps in (1e-6, 0.0):
        out = group_advantages(rewards, ids, std_normalize=True, eps=eps)
        assert torch.equal(out, torch.zeros(4))


def test_integer_rewards_and_empty_batch() -> None:
    out = group_advantages(torch.tensor([1, 0, 0]), torch.tensor([0, 0, 0]))
    assert out.dtype == torch.get_default_dtype()
    _close(out, [2 / 3, -1 / 3, -1 / 3], tol=1e-6)
    empty = group_advantages(torch.zeros(0), torch.zeros(0, dtype=torch.long), std_normalize=True)
    assert empty.shape == (0,)


def test_matches_a_per_group_loop_on_a_larger_batch() -> None:
    gen = torch.Generator().manual_seed(0)
    rewards = torch.randn(200, generator=gen, dtype=torch.float64)
    ids = torch.randint(0, 37, (200,), generator=gen)
    out = group_advantages(rewards, ids, std_normalize=True, eps=1e-6)
    for g in ids.unique().tolist():
        vals = [r for r, i in zip(rewards.tolist(), ids.tolist()) if i == g]
        mean = sum(vals) / len(vals)
        std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
        want = [(v - mean) / (std + 1e-6) for v in vals]
        _close(out[ids == g], want, tol=1e-9)


def test_validation() -> None:
    with pytest.raises(ValueError, match="rewards"):
        group_advantages(torch.zeros(2, 2), torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="group_ids"):
        group_advantages(torch.zeros(3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        group_advantages(torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="eps"):
        group_advantages(torch.zeros(3), torch.zeros(3, dtype=torch.long), eps=-1.0)

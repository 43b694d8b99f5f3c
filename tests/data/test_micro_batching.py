"""Micro-batch plans: fixed sizes as before; token budgets balanced by Karmarkar-Karp over replicas."""

from __future__ import annotations

import random

import pytest

from megathink.data.micro_batching import karmarkar_karp, plan_micro_batches


def sums(lengths, plan):
    return [sum(lengths[i] for i in part) for part in plan]


def test_karmarkar_karp_on_a_known_instance():
    # The textbook example: largest differencing on {8, 7, 6, 5, 4} ends with difference 2
    # (8-7=1, 6-5=1, 4-1=3, 3-1=2, 2-0... -> 16 / 14), not the optimum 15 / 15.
    weights = [8, 7, 6, 5, 4]
    parts = karmarkar_karp(weights, 2)
    assert sorted(i for part in parts for i in part) == list(range(5))
    assert sorted(sums(weights, parts)) == [14, 16]
    assert sorted(sums([5] * 4, karmarkar_karp([5] * 4, 2))) == [10, 10]
    assert karmarkar_karp([3, 1], 4)[2:] == [[], []]


def test_karmarkar_karp_balances_skewed_lengths_better_than_round_robin():
    rng = random.Random(0)
    lengths = [rng.choice([rng.randint(20, 300), rng.randint(4000, 24000)]) for _ in range(256)]
    kk = sums(lengths, karmarkar_karp(lengths, 8))
    robin = sums(lengths, [list(range(r, 256, 8)) for r in range(8)])
    assert max(kk) - min(kk) < 0.01 * sum(lengths) / 8
    assert max(kk) - min(kk) < max(robin) - min(robin)


def test_fixed_size_plan_is_consecutive_runs():
    assert plan_micro_batches([5] * 7, micro_batch_size=3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert plan_micro_batches([], micro_batch_size=3) == []


@pytest.mark.parametrize("dp", [1, 2, 4])
def test_token_budget_plan_respects_the_budget_and_balances_replicas(dp):
    rng = random.Random(dp)
    lengths = [rng.choice([rng.randint(30, 400), rng.randint(2000, 9000)]) for _ in range(64)]
    budget = 12000
    plan = plan_micro_batches(lengths, micro_batch_size=1, max_tokens=budget, dp=dp)
    assert sorted(i for part in plan for i in part) == list(range(64))  # every row once
    assert all(total <= budget for total in sums(lengths, plan))
    assert len(plan) % dp == 0  # the same count on every replica
    per_replica = [sum(sums(lengths, plan[r::dp])) for r in range(dp)]
    assert max(per_replica) - min(per_replica) <= 0.05 * sum(lengths) / dp
    assert len(plan) <= dp * (-(-sum(lengths) // (dp * budget)) + 2)  # close to the fewest possible


def test_a_row_longer_than_the_budget_gets_its_own_micro_batch():
    plan = plan_micro_batches([50, 9000, 60, 70], micro_batch_size=1, max_tokens=1000)
    assert [1] in plan and sorted(i for part in plan for i in part) == [0, 1, 2, 3]


def test_fewer_rows_than_replicas():
    plan = plan_micro_batches([10, 20, 30], micro_batch_size=1, max_tokens=100, dp=4)
    assert sorted(i for part in plan for i in part) == [0, 1, 2] and all(plan)


def test_invalid_arguments():
    with pytest.raises(ValueError):
        plan_micro_batches([1], micro_batch_size=0)
    with pytest.raises(ValueError):
        karmarkar_karp([1, -2], 2)


@pytest.mark.parametrize("dp", [1, 2])
def test_padded_plan_groups_similar_lengths_within_the_budget(dp):
    rng = random.Random(7)
    lengths = [rng.choice([rng.randint(10, 40), rng.randint(300, 600)]) for _ in range(40)]
    budget = 1500
    plan = plan_micro_batches(lengths, micro_batch_size=1, max_tokens=budget, dp=dp, packed=False)
    assert sorted(i for part in plan for i in part) == list(range(40))
    padded = [len(part) * max(lengths[i] for i in part) for part in plan]
    assert all(cost <= budget or len(part) == 1 for cost, part in zip(padded, plan))
    # far less padding than the packed (sum-balanced) plan, which mixes short and long rows
    packed = plan_micro_batches(lengths, micro_batch_size=1, max_tokens=budget, dp=dp, packed=True)
    packed_padded = [len(part) * max(lengths[i] for i in part) for part in packed]
    assert sum(padded) < sum(packed_padded)
    assert sum(padded) < 1.2 * sum(lengths)
    if dp == 2:
        halves = [sum(padded[r::2]) for r in range(2)]
        assert abs(halves[0] - halves[1]) <= max(padded)

"""PromptSampler: epochs are permutations, steps never straddle epochs, resume is exact."""

from __future__ import annotations

import pytest

from megathink.data.prompt_sampler import PromptSampler
from megathink.errors import ConfigError


def test_each_epoch_is_a_permutation_without_straddling():
    sampler = PromptSampler(10, 3, seed=0)
    first_epoch = [i for _ in range(3) for i in sampler.next()]
    assert len(set(first_epoch)) == 9  # the tail of 1 prompt is skipped
    second = sampler.next()
    assert sampler.epoch == 1 and len(second) == 3


def test_resume_draws_the_same_prompts():
    a = PromptSampler(17, 4, seed=3)
    for _ in range(5):
        a.next()
    b = PromptSampler(17, 4, seed=3)
    b.load_state_dict(a.state_dict())
    assert [a.next() for _ in range(6)] == [b.next() for _ in range(6)]


def test_seed_changes_the_order_and_too_few_prompts_fail():
    assert PromptSampler(50, 5, seed=0).next() != PromptSampler(50, 5, seed=1).next()
    with pytest.raises(ConfigError, match="rl.prompts_per_step = 8"):
        PromptSampler(5, 8, seed=0)

"""AdaptThink's importance-sampled rollouts (forced openers, shares, caps) and the naive baseline.

A real local engine samples from a tiny random model with the toy tokenizer; the grade function
is a stand-in that marks every response correct, so the advantages are known exactly.
"""

from __future__ import annotations

import pytest

from megathink.config import AlgorithmConfig, ModelConfig, TokenizerConfig
from megathink.data.chat_template import encode_prompt
from megathink.data.tokenizer import load_tokenizer
from megathink.data.toy_task import record_for
from megathink.data.types import prompt_id
from megathink.errors import ConfigError
from megathink.models import build_hf_backend
from megathink.rewards.modes import SHORT, THINK
from megathink.rollout.local_engine import LocalEngine
from megathink.rollout.types import SamplingParams
from megathink.trainer.rl_rollout import (
    adaptthink_rollout,
    nothinking_count,
    opener_ids,
    reference_accuracies,
    thinkless_rollout,
)

TOK = TokenizerConfig(template="adaptthink")
SMALL = ModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64)
ADAPT = dict(name="adaptthink", kl_coef=0.0, entropy_coef=0.0, delta=0.05)


@pytest.fixture(scope="module")
def setup():
    bundle = load_tokenizer(TOK)
    engine = LocalEngine(build_hf_backend(SMALL, bundle, device="cpu", seed=0), pad_id=bundle.pad_id)
    records = [record_for(3, 4, 1), record_for(12, 34, 2)]
    prompts = [encode_prompt(bundle, r.problem, TOK) for r in records]
    return bundle, engine, records, prompts


def all_correct(texts, modes, answers):
    return [True] * len(texts)


def _rollout(setup, n: int, **algorithm):
    bundle, engine, records, prompts = setup
    params = SamplingParams(temperature=1.0, max_new_tokens=9, stop_token_ids=(bundle.eos_id,), n=n, seed=7)
    cfg = AlgorithmConfig(**{**ADAPT, **algorithm})
    return adaptthink_rollout(
        engine, prompts, records, params, bundle, all_correct, algorithm=cfg, rbar=[1.0, 0.25],
        opener=opener_ids(bundle, cfg), default_cap=9,
    )


def test_half_forced_nothinking_half_forced_thinking_with_their_own_caps(setup) -> None:
    bundle = setup[0]
    graded = _rollout(setup, 4, nothinking_max_new_tokens=3, thinking_max_new_tokens=6)
    opener = bundle.tokenizer.encode("Alright", add_special_tokens=False)
    assert len(graded.samples) == 8 and len(opener) == 7  # one token per character in the toy tokenizer
    nothink, think = graded.samples[:4], graded.samples[4:]
    for sample in nothink:
        assert sample.response_ids[0] == bundle.control.end_think and sample.forced == 1
        assert sample.num_generated <= 3
    for sample in think:
        assert sample.response_ids[: len(opener)] == opener and sample.forced == len(opener)
        assert sample.num_generated <= 6
    assert sorted(s.group_id for s in graded.samples) == [0, 0, 0, 0, 1, 1, 1, 1]  # one group per prompt
    assert [j.mode for j in graded.judged] == [SHORT] * 4 + [THINK] * 4
    assert graded.opener_prob.tolist() == [0.5] * 8
    rbar = {0: 1.0, 1: 0.25}  # every response "correct": A = delta * 1[NoThinking] + 1 - Rbar_ref
    want = [0.05 * (i < 4) + 1 - rbar[s.group_id] for i, s in enumerate(graded.samples)]
    assert graded.advantages.tolist() == pytest.approx(want)
    assert graded.rewards == [1.0] * 8


def test_uneven_share_uses_the_shares_actually_drawn(setup) -> None:
    graded = _rollout(setup, 4, nothinking_share=0.3)  # round(1.2) = 1 NoThinking sample per prompt
    first = [s.response_ids[0] == setup[0].control.end_think for s in graded.samples]
    assert sum(first) == 2
    assert graded.opener_prob.tolist() == pytest.approx([0.25] * 2 + [0.75] * 6)


def test_naive_baseline_forces_nothing(setup) -> None:
    graded = _rollout(setup, 3, importance_sampling=False, nothinking_max_new_tokens=2, thinking_max_new_tokens=5)
    assert len(graded.samples) == 6 and all(s.forced == 0 for s in graded.samples)
    assert all(s.num_generated <= 5 for s in graded.samples)  # the larger of the two caps
    assert graded.opener_prob.tolist() == [1.0] * 6


def test_same_seed_same_samples(setup) -> None:
    a, b = _rollout(setup, 4), _rollout(setup, 4)
    assert [s.response_ids for s in a.samples] == [s.response_ids for s in b.samples]


def test_thinkless_rollout_is_group_relative(setup) -> None:
    from megathink.config import RewardConfig

    bundle, engine, records, prompts = setup
    params = SamplingParams(temperature=1.0, max_new_tokens=5, stop_token_ids=(bundle.eos_id,), n=2, seed=1)
    graded = thinkless_rollout(
        engine, prompts, records, params, bundle, all_correct, template="thinkless", reward=RewardConfig(),
        std_normalize=False,
    )
    for group in (0, 1):
        rows = [i for i, s in enumerate(graded.samples) if s.group_id == group]
        assert float(graded.advantages[rows].sum()) == pytest.approx(0.0, abs=1e-6)
    assert graded.opener_prob.tolist() == [1.0] * 4


def test_counts_openers_and_lookups() -> None:
    assert [nothinking_count(n, 0.5) for n in (2, 3, 16)] == [1, 2, 8]
    assert nothinking_count(4, 0.01) == 1 and nothinking_count(4, 0.99) == 3
    with pytest.raises(ConfigError, match="rollout.n_samples = 1"):
        nothinking_count(1, 0.5)
    bundle = load_tokenizer(TOK)
    with pytest.raises(ConfigError, match="algorithm.thinking_opener = '</think>'"):
        opener_ids(bundle, AlgorithmConfig(**ADAPT, thinking_opener="</think>"))
    records = [record_for(1, 2, 1)]
    assert reference_accuracies(records, {prompt_id("1+2="): 0.5}) == [0.5]

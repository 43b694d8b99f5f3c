"""AdaptThink's method: importance-sampled rollouts (forced openers, shares, caps), the naive
baseline, its advantage, and the Rbar_ref it reads before the model loads.

A real local engine samples from a tiny random model with the toy tokenizer; the grade function
is a stand-in that marks every response correct, so the advantages are known exactly.
"""

from __future__ import annotations

import pytest

from megathink.config import DataConfig, ModelConfig, RolloutConfig, RunConfig, TokenizerConfig
from megathink.data.chat_template import encode_prompt
from megathink.data.tokenizer import load_tokenizer
from megathink.data.toy_task import record_for
from megathink.data.types import prompt_id
from megathink.errors import ConfigError
from megathink.evaluation.reference_accuracy import ReferenceAccuracy, append_rows
from megathink.methods import MethodContext, build_method
from megathink.methods.adaptthink import AdaptThinkConfig, nothinking_count, opener_ids
from megathink.methods.rollout_step import graded_rollout
from megathink.models import build_hf_backend
from megathink.rewards.modes import SHORT, THINK
from megathink.rollout.local_engine import LocalEngine
from megathink.rollout.types import SamplingParams

TOK = TokenizerConfig(template="adaptthink")
SMALL = ModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64)
ADAPT = dict(delta=0.05)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    bundle = load_tokenizer(TOK)
    engine = LocalEngine(build_hf_backend(SMALL, bundle, device="cpu", seed=0), pad_id=bundle.pad_id)
    records = [record_for(3, 4, 1), record_for(12, 34, 2)]
    prompts = [encode_prompt(bundle, r.problem, TOK) for r in records]
    rbar_file = tmp_path_factory.mktemp("rbar") / "rbar.jsonl"
    append_rows(rbar_file, [ReferenceAccuracy(prompt_id(records[0].problem), 4, 4), ReferenceAccuracy(prompt_id(records[1].problem), 4, 1)])
    return bundle, engine, records, prompts, rbar_file


def all_correct(texts, modes, answers):
    return [True] * len(texts)


def method_for(setup, **algorithm):
    bundle, _, records, _, rbar_file = setup
    cfg = AdaptThinkConfig(**{**ADAPT, "reference_accuracy_path": str(rbar_file), **algorithm})
    run = RunConfig(tokenizer=TOK, algorithm=cfg, stages=["rl"], rollout=RolloutConfig(n_samples=4))
    return build_method(cfg, MethodContext(run=run, bundle=bundle, train=records, template="adaptthink"))


def _rollout(setup, n: int, **algorithm):
    bundle, engine, records, prompts, _ = setup
    params = SamplingParams(temperature=1.0, max_new_tokens=9, stop_token_ids=(bundle.eos_id,), n=n, seed=7)
    return graded_rollout(method_for(setup, **algorithm), engine, prompts, records, params, all_correct)


def test_half_forced_nothinking_half_forced_thinking_with_their_own_caps(setup) -> None:
    bundle = setup[0]
    graded = _rollout(setup, 4, nothinking_max_new_tokens=3, thinking_max_new_tokens=6)
    samples = graded.rollouts.samples
    opener = bundle.tokenizer.encode("Alright", add_special_tokens=False)
    assert len(samples) == 8 and len(opener) == 7  # one token per character in the toy tokenizer
    nothink, think = samples[:4], samples[4:]
    for sample in nothink:
        assert sample.response_ids[0] == bundle.control.end_think and sample.forced == 1
        assert sample.num_generated <= 3
    for sample in think:
        assert sample.response_ids[: len(opener)] == opener and sample.forced == len(opener)
        assert sample.num_generated <= 6
    assert sorted(s.group_id for s in samples) == [0, 0, 0, 0, 1, 1, 1, 1]  # one group per prompt
    assert [j.mode for j in graded.rollouts.judged] == [SHORT] * 4 + [THINK] * 4
    assert graded.rollouts.opener_prob.tolist() == [0.5] * 8
    assert graded.rollouts.arm.tolist() == [0] * 4 + [1] * 4
    rbar = {0: 1.0, 1: 0.25}  # every response "correct": A = delta * 1[NoThinking] + 1 - Rbar_ref
    want = [0.05 * (i < 4) + 1 - rbar[s.group_id] for i, s in enumerate(samples)]
    assert graded.advantages.tolist() == pytest.approx(want)
    assert graded.rewards == [1.0] * 8


def test_uneven_share_uses_the_shares_actually_drawn(setup) -> None:
    graded = _rollout(setup, 4, nothinking_share=0.3)  # round(1.2) = 1 NoThinking sample per prompt
    first = [s.response_ids[0] == setup[0].control.end_think for s in graded.rollouts.samples]
    assert sum(first) == 2
    assert graded.rollouts.opener_prob.tolist() == pytest.approx([0.25] * 2 + [0.75] * 6)


def test_naive_baseline_forces_nothing(setup) -> None:
    graded = _rollout(setup, 3, importance_sampling=False, nothinking_max_new_tokens=2, thinking_max_new_tokens=5)
    samples = graded.rollouts.samples
    assert len(samples) == 6 and all(s.forced == 0 for s in samples)
    assert all(s.num_generated <= 5 for s in samples)  # the larger of the two caps
    assert graded.rollouts.opener_prob.tolist() == [1.0] * 6


def test_same_seed_same_samples(setup) -> None:
    a, b = _rollout(setup, 4), _rollout(setup, 4)
    assert [s.response_ids for s in a.rollouts.samples] == [s.response_ids for s in b.rollouts.samples]


def test_a_prompt_without_rbar_fails_when_the_method_is_built(setup, tmp_path) -> None:
    bundle, _, records, _, _ = setup
    empty = tmp_path / "none.jsonl"
    cfg = AdaptThinkConfig(reference_accuracy_path=str(empty))
    run = RunConfig(tokenizer=TOK, algorithm=cfg, stages=["rl"])
    with pytest.raises(ConfigError, match="algorithm.reference_accuracy_path"):
        build_method(cfg, MethodContext(run=run, bundle=bundle, train=records, template="adaptthink"))


def test_counts_openers_and_run_rules() -> None:
    assert [nothinking_count(n, 0.5) for n in (2, 3, 16)] == [1, 2, 8]
    assert nothinking_count(4, 0.01) == 1 and nothinking_count(4, 0.99) == 3
    with pytest.raises(ConfigError, match="rollout.n_samples = 1"):
        nothinking_count(1, 0.5)
    bundle = load_tokenizer(TOK)
    with pytest.raises(ConfigError, match="algorithm.thinking_opener = '</think>'"):
        opener_ids(bundle, AdaptThinkConfig(**ADAPT, thinking_opener="</think>"))
    with pytest.raises(ConfigError, match="tokenizer.template = 'thinkless'"):
        RunConfig(stages=["rl"], algorithm=AdaptThinkConfig(), data=DataConfig())

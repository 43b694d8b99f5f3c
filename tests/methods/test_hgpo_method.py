"""Both-mode groups: forced short / think arms, within-mode and between-mode advantages by hand."""

from __future__ import annotations

import pytest
import torch

from megathink.config import ModelConfig, RewardConfig, RolloutConfig, RunConfig, TokenizerConfig
from megathink.data.chat_template import encode_prompt
from megathink.data.tokenizer import load_tokenizer
from megathink.data.toy_task import record_for
from megathink.methods import MethodContext, build_method
from megathink.methods.hgpo import HGPOConfig, short_count
from megathink.methods.rollout_step import graded_rollout
from megathink.models import build_hf_backend
from megathink.rollout.local_engine import LocalEngine
from megathink.rollout.types import SamplingParams

SMALL = ModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64)


@pytest.fixture(scope="module")
def setup():
    bundle = load_tokenizer(TokenizerConfig())
    engine = LocalEngine(build_hf_backend(SMALL, bundle, device="cpu", seed=0), pad_id=bundle.pad_id)
    records = [record_for(3, 4, 1), record_for(12, 34, 2)]
    prompts = [encode_prompt(bundle, r.problem, TokenizerConfig()) for r in records]
    return bundle, engine, records, prompts


def run(setup, grade, **cfg_fields):
    bundle, engine, records, prompts = setup
    cfg = HGPOConfig(**cfg_fields)
    run_cfg = RunConfig(algorithm=cfg, reward=RewardConfig(gamma=0.5), rollout=RolloutConfig(n_samples=4))
    method = build_method(cfg, MethodContext(run=run_cfg, bundle=bundle, train=records, template="thinkless"))
    params = SamplingParams(temperature=1.0, max_new_tokens=4, stop_token_ids=(bundle.eos_id,), n=4, seed=3)
    return graded_rollout(method, engine, prompts, records, params, grade)


def test_both_modes_forced_in_every_group_with_their_proposal_probabilities(setup):
    bundle = setup[0]
    graded = run(setup, lambda texts, modes, refs: [True] * len(texts), short_share=0.25)
    samples = graded.rollouts.samples
    firsts = [s.response_ids[0] for s in samples]
    assert firsts == [bundle.control.short] * 2 + [bundle.control.think] * 6  # 1 + 3 per prompt, 2 prompts
    assert all(s.forced == 1 for s in samples)
    assert graded.rollouts.opener_prob.tolist() == [0.25] * 2 + [0.75] * 6


def test_within_and_between_mode_advantages_by_hand(setup):
    # rewards: short correct 1, think correct 0.5, wrong -1. Grade: correct iff the response's
    # index in its arm is even, so each group has short [1, -1] and think [0.5, -1].
    def grade(texts, modes, refs):
        seen: dict[str, int] = {}
        out = []
        for mode in modes:
            out.append(seen.get(mode, 0) % 2 == 0)
            seen[mode] = seen.get(mode, 0) + 1
        return out

    graded = run(setup, grade, margin=0.1)
    judged = graded.rollouts.judged
    rewards = torch.tensor(graded.rewards)
    modes = ["short" if int(a) == 0 else "think" for a in graded.rollouts.arm]
    groups = [s.group_id for s in graded.rollouts.samples]
    for g in (0, 1):
        for mode in ("short", "think"):
            rows = [i for i in range(len(modes)) if modes[i] == mode and groups[i] == g]
            mean = float(rewards[rows].mean())
            assert graded.advantages[rows].tolist() == pytest.approx([float(rewards[i]) - mean for i in rows])
        short = float(rewards[[i for i in range(8) if modes[i] == "short" and groups[i] == g]].mean())
        think = float(rewards[[i for i in range(8) if modes[i] == "think" and groups[i] == g]].mean())
        half = ((short + 0.1) - think) / 2
        for i in range(8):
            if groups[i] == g:
                assert float(graded.control_advantages[i]) == pytest.approx(half if modes[i] == "short" else -half)
    assert len(judged) == 8


def test_short_count_and_config_rules():
    assert [short_count(n, 0.5) for n in (2, 5, 8)] == [1, 2, 4]
    from megathink.errors import ConfigError

    with pytest.raises(ConfigError, match="rollout.n_samples = 1"):
        short_count(1, 0.5)

"""GRPO and DeGRPO through the method interface: one free arm, Thinkless rewards, group-relative
advantages, and their losses bound with the config's coefficients."""

from __future__ import annotations

import pytest
import torch

from megathink.algorithms import degrpo_loss, grpo_loss
from megathink.config import ModelConfig, RewardConfig, RunConfig, TokenizerConfig
from megathink.data.chat_template import encode_prompt
from megathink.data.tokenizer import load_tokenizer
from megathink.data.toy_task import record_for
from megathink.methods import MethodContext, build_method, method_class
from megathink.methods.degrpo import DeGRPOConfig
from megathink.methods.grpo import GRPOConfig
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


def correct_when_short(texts, modes, answers):
    return [mode == "short" for mode in modes]


@pytest.mark.parametrize("cfg", [GRPOConfig(), DeGRPOConfig(std_normalize=True)], ids=["grpo", "degrpo_std"])
def test_free_samples_thinkless_rewards_and_group_relative_advantages(setup, cfg):
    bundle, engine, records, prompts = setup
    run = RunConfig(algorithm=cfg, reward=RewardConfig(gamma=0.5))
    method = build_method(cfg, MethodContext(run=run, bundle=bundle, train=records, template="thinkless"))
    params = SamplingParams(temperature=1.0, max_new_tokens=5, stop_token_ids=(bundle.eos_id,), n=3, seed=1)
    graded = graded_rollout(method, engine, prompts, records, params, correct_when_short)
    samples, judged = graded.rollouts.samples, graded.rollouts.judged
    assert len(samples) == 6 and all(s.forced == 0 for s in samples)
    table = {("short", True): 1.0, ("think", True): 0.5}
    assert graded.rewards == [table.get((j.mode, j.correct), -1.0) for j in judged]
    rewards = torch.tensor(graded.rewards)
    for group in (0, 1):
        rows = torch.tensor([i for i, s in enumerate(samples) if s.group_id == group])
        centred = rewards[rows] - rewards[rows].mean()
        if cfg.std_normalize:
            std = rewards[rows].std()
            centred = centred / (std + 1e-6) if std > 0 else torch.zeros_like(centred)
        assert graded.advantages[rows].tolist() == pytest.approx(centred.tolist(), abs=1e-5)
    assert graded.rollouts.opener_prob.tolist() == [1.0] * 6


def test_losses_are_the_algorithms_functions_with_the_coefficients_bound():
    logp, old = -torch.rand(3, 5, requires_grad=True), -torch.rand(3, 5)
    adv, mask = torch.tensor([0.5, -0.2, 0.1]), torch.ones(3, 5)
    cfg = DeGRPOConfig(alpha=0.3, kl_coef=0.0, entropy_coef=0.0)
    got, _ = method_class("degrpo").loss_fn(cfg)(logp, old, adv, mask, forced=torch.zeros(3), opener_prob=torch.ones(3))
    want, _ = degrpo_loss(logp, old, adv, mask, alpha=0.3)
    assert float(got) == float(want)
    cfg = GRPOConfig(agg="seq_mean_token_mean", kl_coef=0.0, entropy_coef=0.0)
    got, _ = method_class("grpo").loss_fn(cfg)(logp, old, adv, mask)
    assert float(got) == float(grpo_loss(logp, old, adv, mask, agg="seq_mean_token_mean")[0])

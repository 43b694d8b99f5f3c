"""rl_update's on-policy shortcut gives the same update as a separate scoring pass."""

from __future__ import annotations

import copy

import pytest
import torch

from megathink.config import ModelConfig, OptimizerConfig, RLConfig, TokenizerConfig
from megathink.config.algorithm import algorithm_config
from megathink.data.tokenizer import load_tokenizer
from megathink.methods.adaptthink import AdaptThinkConfig
from megathink.methods.degrpo import DeGRPOConfig
from megathink.models.hf_backend import build_hf_backend
from megathink.rollout.local_engine import LocalEngine
from megathink.rollout.types import RolloutRequest, SamplingParams
from megathink.trainer.lr_schedule import build_scheduler
from megathink.trainer.optim import build_adamw
from megathink.trainer.rl_batch import build_rl_batch
from megathink.trainer.rl_update import rl_update, score_batch


def _setup():
    bundle = load_tokenizer(TokenizerConfig())
    backend = build_hf_backend(
        ModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64),
        bundle, device="cpu", seed=0,
    )
    engine = LocalEngine(backend, pad_id=bundle.pad_id)
    prompts = [bundle.tokenizer.encode(text, add_special_tokens=False) for text in ("1+2=", "34+5=", "7+7=")]
    samples = engine.generate(
        [RolloutRequest(prompt_ids=p, group_id=g) for g, p in enumerate(prompts)],
        SamplingParams(temperature=1.0, max_new_tokens=8, n=4, seed=1),
    )
    advantages = torch.linspace(-1.0, 1.0, len(samples))
    return backend, build_rl_batch(samples, advantages, pad_id=bundle.pad_id)


@pytest.mark.parametrize("name", ["degrpo", "grpo"])
def test_on_policy_shortcut_equals_scoring_pass(name):
    backend, batch = _setup()
    other = copy.deepcopy(backend)
    rl = RLConfig(prompts_per_step=3, mini_batches=1, micro_batch_size=5, optimizer=OptimizerConfig(lr=1e-2, min_lr=1e-2))
    algorithm = algorithm_config(name, kl_coef=0.0, entropy_coef=1e-3, **({"alpha": 0.5} if name == "degrpo" else {}))
    results = []
    for candidate, shortcut in ((backend, True), (other, False)):
        optimizer = build_adamw(candidate.named_parameters(), rl.optimizer)
        scheduler = build_scheduler(optimizer, rl.optimizer, 1)
        old = None if shortcut else score_batch(candidate, batch, temperature=1.0, rl=rl)
        metrics = rl_update(candidate, batch, old, None, optimizer, scheduler, algorithm=algorithm, rl=rl, temperature=1.0)
        results.append((metrics, {k: v.clone() for k, v in candidate.model.state_dict().items()}))
    (fast, fast_state), (slow, slow_state) = results
    assert fast["logprob_diff"] < 1e-5  # the engine's log-probs agree with the trainer's
    for key in ("loss", "pg_loss", "clip_frac", "grad_norm"):
        assert fast[key] == pytest.approx(slow[key], abs=1e-6)
    for key in fast_state:
        torch.testing.assert_close(fast_state[key], slow_state[key], atol=1e-6, rtol=0)


def test_shortcut_refuses_several_mini_batches():
    backend, batch = _setup()
    rl = RLConfig(prompts_per_step=3, mini_batches=2)
    optimizer = build_adamw(backend.named_parameters(), rl.optimizer)
    with pytest.raises(ValueError, match="mini_batches == 1"):
        rl_update(backend, batch, None, None, optimizer, build_scheduler(optimizer, rl.optimizer, 2),
                  algorithm=DeGRPOConfig(), rl=rl, temperature=1.0)


def test_adaptthink_loss_fn_gives_the_whole_opener_its_proposal_probability():
    """With importance sampling the first opener token gets log(opener_prob) and the rest of a
    multi-token opener log 1 = 0 (it was forced as a whole); without it old_logp is used as is."""
    from megathink.algorithms import adaptthink_loss
    from megathink.trainer.rl_update import policy_loss_fn

    torch.manual_seed(0)
    logp = -torch.rand(3, 6, dtype=torch.float64)  # [B, T]
    old = -torch.rand(3, 6, dtype=torch.float64)
    adv = torch.tensor([0.5, -0.3, 0.2], dtype=torch.float64)
    mask = torch.ones(3, 6)
    forced = torch.tensor([1, 4, 0])
    prob = torch.tensor([0.5, 0.5, 1.0], dtype=torch.float64)
    cfg = AdaptThinkConfig(kl_coef=0.0, entropy_coef=0.0, clip_eps=0.2)
    loss, _ = policy_loss_fn(cfg)(logp, old, adv, mask, forced=forced, opener_prob=prob)
    expected_old = old.clone()
    expected_old[1, 1:4] = 0.0  # the rest of row 1's 4-token opener
    want, _ = adaptthink_loss(logp, expected_old, adv, mask, first_token_is_prob=prob, clip_eps=0.2)
    assert loss.item() == pytest.approx(want.item(), rel=1e-12)
    naive = AdaptThinkConfig(kl_coef=0.0, entropy_coef=0.0, importance_sampling=False)
    loss, _ = policy_loss_fn(naive)(logp, old, adv, mask, forced=forced, opener_prob=prob)
    want, _ = adaptthink_loss(logp, old, adv, mask, first_token_is_prob=None, clip_eps=0.2)
    assert loss.item() == pytest.approx(want.item(), rel=1e-12)

"""The RL update does not depend on how the batch is cut (rl.loss_normalization='mini_batch').

One rollout batch of a tiny model (responses of different lengths), the first update from the
same weights: loss, grad norm, every metric, the gradients and the updated weights are equal
for micro-batches of 16 sequences, of 1 sequence, and of a token budget, for every loss form
and with two mini-batches. The authors' per-micro-batch normalisation ('micro_batch') is kept
as an option: there the split changes the update (the behaviour the issue measured), and with
one micro-batch per mini-batch both normalisations are the same update.
(Data-parallel splits: tests/models/megatron/test_update_invariance_dp.py.)
"""

from __future__ import annotations

import copy

import pytest
import torch

from megathink.config import (
    AlgorithmConfig,
    ModelConfig,
    OptimizerConfig,
    RLConfig,
    TokenizerConfig,
)
from megathink.data.tokenizer import load_tokenizer
from megathink.methods.adaptthink import AdaptThinkConfig
from megathink.methods.degrpo import DeGRPOConfig
from megathink.methods.grpo import GRPOConfig
from megathink.models.hf_backend import build_hf_backend
from megathink.rollout.local_engine import LocalEngine
from megathink.rollout.types import RolloutRequest, SamplingParams
from megathink.trainer.lr_schedule import build_scheduler
from megathink.trainer.rl_batch import build_rl_batch
from megathink.trainer.rl_update import rl_update, score_batch

OPT = OptimizerConfig(lr=0.5, min_lr=0.5, schedule="constant", warmup_ratio=0.0, grad_clip=0.0)
ALGORITHMS = {
    "degrpo_batch_token": DeGRPOConfig(alpha=0.5, kl_coef=1e-2, entropy_coef=1e-2),
    "degrpo_sequence": DeGRPOConfig(alpha=0.5, response_norm="sequence", kl_coef=0.0, entropy_coef=0.0),
    "grpo_token_mean": GRPOConfig(kl_coef=1e-2, entropy_coef=0.0),
    "grpo_seq_mean_token_mean": GRPOConfig(agg="seq_mean_token_mean", kl_coef=0.0, entropy_coef=0.0),
    "grpo_seq_mean_token_sum_norm": GRPOConfig(agg="seq_mean_token_sum_norm", kl_coef=0.0, entropy_coef=0.0),
    "adaptthink": AdaptThinkConfig(kl_coef=0.0, entropy_coef=0.0, importance_sampling=False),
}
SPLITS = {"16": dict(micro_batch_size=16), "1": dict(micro_batch_size=1), "budget": dict(max_tokens_per_micro_batch=40)}


@pytest.fixture(scope="module")
def setup():
    bundle = load_tokenizer(TokenizerConfig())
    model = ModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64)
    backend = build_hf_backend(model, bundle, device="cpu", seed=0)
    prompts = [bundle.tokenizer.encode(text, add_special_tokens=False) for text in ("1+2=", "34+52=", "7+7=", "123+4=")]
    samples = LocalEngine(backend, pad_id=bundle.pad_id).generate(
        [RolloutRequest(prompt_ids=p, group_id=g) for g, p in enumerate(prompts)],
        SamplingParams(temperature=1.0, max_new_tokens=14, stop_token_ids=(bundle.eos_id,), n=4, seed=5),
    )
    advantages = torch.linspace(-1.0, 1.0, len(samples))
    batch = build_rl_batch(samples, advantages, pad_id=bundle.pad_id)
    lengths = batch.response_lengths()
    assert len(samples) == 16 and int(lengths.min()) < int(lengths.max())  # uneven rows: the point of the test
    return backend, batch


def update(setup, algorithm: AlgorithmConfig, *, mini_batches: int = 1, normalization: str = "mini_batch", **split):
    backend, batch = setup
    policy, reference = copy.deepcopy(backend), copy.deepcopy(backend)
    rl = RLConfig(prompts_per_step=4, mini_batches=mini_batches, loss_normalization=normalization, optimizer=OPT, **split)
    optimizer = torch.optim.SGD([p for _, p in policy.named_parameters()], lr=OPT.lr)
    scheduler = build_scheduler(optimizer, OPT, mini_batches)
    old = score_batch(policy, batch, temperature=0.9, rl=rl) if mini_batches > 1 else None
    ref = score_batch(reference, batch, temperature=0.9, rl=rl) if algorithm.kl_coef else None
    metrics = rl_update(policy, batch, old, ref, optimizer, scheduler, algorithm=algorithm, rl=rl, temperature=0.9)
    grads = {n: p.grad.clone() for n, p in policy.model.named_parameters() if p.grad is not None}
    weights = {n: p.detach().clone() for n, p in policy.model.named_parameters()}
    return metrics, grads, weights


def assert_same_update(a, b) -> None:
    (ma, ga, wa), (mb, gb, wb) = a, b
    keys = {k for k in ma if k not in ("padding_waste", "logprob_diff")}
    assert keys == {k for k in mb if k not in ("padding_waste", "logprob_diff")}
    for key in keys:
        assert mb[key] == pytest.approx(ma[key], rel=1e-5, abs=1e-7), key
    assert ga.keys() == gb.keys()
    for name in ga:
        torch.testing.assert_close(gb[name], ga[name], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(wb[name], wa[name], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("mini_batches", [1, 2])
@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_same_update_for_any_micro_batch_split(setup, name, mini_batches):
    results = {split: update(setup, ALGORITHMS[name], mini_batches=mini_batches, **kw) for split, kw in SPLITS.items()}
    assert results["16"][0]["grad_norm"] > 0
    assert_same_update(results["16"], results["1"])
    assert_same_update(results["16"], results["budget"])


def test_per_micro_batch_normalisation_depends_on_the_split_and_is_the_same_with_one_micro_batch(setup):
    algorithm = ALGORITHMS["degrpo_batch_token"]
    whole = update(setup, algorithm, normalization="micro_batch", micro_batch_size=16)
    singles = update(setup, algorithm, normalization="micro_batch", micro_batch_size=1)
    assert abs(singles[0]["grad_norm"] - whole[0]["grad_norm"]) > 1e-3 * whole[0]["grad_norm"]
    assert_same_update(whole, update(setup, algorithm, normalization="mini_batch", micro_batch_size=16))


def test_token_budget_cuts_padding(setup):
    fixed = update(setup, ALGORITHMS["grpo_token_mean"], micro_batch_size=16)[0]["padding_waste"]
    budget = update(setup, ALGORITHMS["grpo_token_mean"], max_tokens_per_micro_batch=40)[0]["padding_waste"]
    assert 0.0 <= budget < fixed < 1.0

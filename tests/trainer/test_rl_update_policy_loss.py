"""`kernels.policy_loss`: the RL update with the fused GRPO / DeGRPO loss equals the reference one.

Both settings run `rl_update` on the HF backend from the same weights and batch. Tolerances:
with one mini-batch every loss metric is computed at the same weights, so they must be
bit-identical (the fused op reduces with the same masked means); the gradients are the fused
op's analytic ones against autograd's, equal to fp32 rounding (atol 1e-7, rtol 1e-5), and so
is `grad_norm` (rel 1e-6). With two mini-batches the second step starts from weights that
differ by that rounding, so everything there is compared at 1e-6. The optimizer is plain SGD:
Adam's first step, `lr * g / (|g| + eps)`, turns a rounding difference in a gradient near
eps = 1e-8 into a step difference near lr, which would test Adam, not the loss.
"""

from __future__ import annotations

import copy

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from megathink.kernels.policy_loss import policy_loss as fused_policy_loss

from megathink.config import (
    AlgorithmConfig,
    ConfigError,
    KernelsConfig,
    ModelConfig,
    OptimizerConfig,
    RLConfig,
    TokenizerConfig,
)
from megathink.config.algorithm import algorithm_config
from megathink.data.tokenizer import load_tokenizer
from megathink.methods import loss_binding
from megathink.methods.degrpo import DeGRPOConfig
from megathink.methods.grpo import GRPOConfig
from megathink.models.hf_backend import build_hf_backend
from megathink.rollout.local_engine import LocalEngine
from megathink.rollout.types import RolloutRequest, SamplingParams
from megathink.trainer.lr_schedule import build_scheduler
from megathink.trainer.rl_batch import build_rl_batch
from megathink.trainer.rl_update import policy_loss_fn, rl_update, score_batch

ALGORITHMS = [
    DeGRPOConfig(alpha=0.5, response_norm="batch_token", kl_coef=0.05, entropy_coef=1e-2),
    DeGRPOConfig(alpha=0.5, response_norm="sequence", kl_coef=0.0, entropy_coef=0.0),
    GRPOConfig(agg="token_mean", kl_coef=0.05, entropy_coef=1e-2),
    GRPOConfig(agg="seq_mean_token_mean", kl_coef=0.0, entropy_coef=1e-2),
    GRPOConfig(agg="seq_mean_token_sum_norm", kl_coef=0.05, entropy_coef=0.0),
]
LOSS_KEYS = ("loss", "pg_loss", "clip_frac", "approx_kl", "approx_kl_k3")


def _setup():
    bundle = load_tokenizer(TokenizerConfig())
    backend = build_hf_backend(
        ModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64),
        bundle, device="cpu", seed=0,
    )
    engine = LocalEngine(backend, pad_id=bundle.pad_id)
    prompts = [bundle.tokenizer.encode(text, add_special_tokens=False) for text in ("1+2=", "34+5=", "7+7=", "9*9=")]
    samples = engine.generate(
        [RolloutRequest(prompt_ids=p, group_id=g) for g, p in enumerate(prompts)],
        SamplingParams(temperature=1.0, max_new_tokens=8, n=4, seed=1),
    )
    advantages = torch.linspace(-1.0, 1.0, len(samples))
    return backend, build_rl_batch(samples, advantages, pad_id=bundle.pad_id)


def _update(backend, batch, algorithm: AlgorithmConfig, rl: RLConfig, loss_impl: str, *, on_policy: bool):
    """One rl_update on a copy of `backend`: (metrics, gradients after it, weights after it)."""
    policy, reference = copy.deepcopy(backend), copy.deepcopy(backend)
    optimizer = torch.optim.SGD([p for _, p in policy.named_parameters()], lr=rl.optimizer.lr)
    scheduler = build_scheduler(optimizer, rl.optimizer, rl.mini_batches)
    old = None if on_policy else score_batch(policy, batch, temperature=0.9, rl=rl)
    ref = score_batch(reference, batch, temperature=0.9, rl=rl) if algorithm.kl_coef else None
    metrics = rl_update(policy, batch, old, ref, optimizer, scheduler, algorithm=algorithm, rl=rl, temperature=0.9,
                        loss_impl=loss_impl)
    grads = {name: p.grad.clone() for name, p in policy.model.named_parameters() if p.grad is not None}
    weights = {name: p.detach().clone() for name, p in policy.model.named_parameters()}
    return metrics, grads, weights


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=lambda a: f"{a.name}-{a.agg if a.name == 'grpo' else a.response_norm}")
def test_fused_policy_loss_gives_the_reference_update(algorithm):
    backend, batch = _setup()
    rl = RLConfig(prompts_per_step=4, mini_batches=1, micro_batch_size=6, optimizer=OptimizerConfig(lr=1e-2, min_lr=1e-2))
    ref_metrics, ref_grads, ref_weights = _update(backend, batch, algorithm, rl, "reference", on_policy=True)
    metrics, grads, weights = _update(backend, batch, algorithm, rl, "fused", on_policy=True)
    assert set(metrics) == set(ref_metrics)
    for key in LOSS_KEYS + (("ctrl_loss", "resp_loss", "ctrl_clip_frac") if algorithm.name == "degrpo" else ()):
        assert metrics[key] == ref_metrics[key], key
    for key in ("entropy", "kl"):
        assert metrics.get(key) == ref_metrics.get(key), key
    assert metrics["grad_norm"] == pytest.approx(ref_metrics["grad_norm"], rel=1e-6)
    assert metrics["grad_norm"] > 0
    assert set(grads) == set(ref_grads) and len(grads) > 0
    for name in grads:
        torch.testing.assert_close(grads[name], ref_grads[name], atol=1e-7, rtol=1e-5, msg=name)
    for name in weights:
        torch.testing.assert_close(weights[name], ref_weights[name], atol=1e-6, rtol=0, msg=name)


@pytest.mark.parametrize("algorithm", ALGORITHMS[:1] + ALGORITHMS[2:3], ids=lambda a: a.name)
def test_two_mini_batches_stay_within_rounding(algorithm):
    backend, batch = _setup()
    rl = RLConfig(prompts_per_step=4, mini_batches=2, micro_batch_size=3, optimizer=OptimizerConfig(lr=1e-2, min_lr=1e-2))
    ref_metrics, ref_grads, ref_weights = _update(backend, batch, algorithm, rl, "reference", on_policy=False)
    metrics, grads, weights = _update(backend, batch, algorithm, rl, "fused", on_policy=False)
    assert set(metrics) == set(ref_metrics)
    for key, value in ref_metrics.items():
        assert metrics[key] == pytest.approx(value, abs=1e-6, rel=1e-6), key
    for name in grads:
        torch.testing.assert_close(grads[name], ref_grads[name], atol=1e-6, rtol=1e-5, msg=name)
    for name in weights:
        torch.testing.assert_close(weights[name], ref_weights[name], atol=1e-6, rtol=0, msg=name)


@pytest.mark.parametrize("loss_impl, calls", [("fused", True), ("reference", False)])
@pytest.mark.parametrize("name", ["grpo", "degrpo", "adaptthink"])
def test_the_switch_picks_the_loss(monkeypatch, loss_impl, calls, name):
    """'fused' routes GRPO / DeGRPO through megathink.kernels.policy_loss; AdaptThink never."""
    seen = []
    fused = fused_policy_loss

    def spy(*args, **kwargs):
        seen.append(kwargs["impl"])
        return fused(*args, **kwargs)

    monkeypatch.setattr(loss_binding, "policy_loss", spy)  # where GRPO's and DeGRPO's losses are bound
    cfg = algorithm_config(name, kl_coef=0.0, entropy_coef=0.0)
    logp, old = -torch.rand(3, 5, requires_grad=True), -torch.rand(3, 5)
    loss, _ = policy_loss_fn(cfg, loss_impl)(logp, old, torch.tensor([0.5, -0.2, 0.1]), torch.ones(3, 5))
    loss.backward()
    assert seen == (["fused"] if calls and name != "adaptthink" else [])


def test_config_validation_and_hydra_default():
    assert KernelsConfig().policy_loss == "reference"
    with pytest.raises(ConfigError, match="kernels.policy_loss = 'triton' is invalid"):
        KernelsConfig(policy_loss="triton")
    with pytest.raises(ValueError, match="kernels.policy_loss = 'triton' is invalid"):
        policy_loss_fn(DeGRPOConfig(), "triton")
    from megathink.launch.schema import register_schema, to_run_config

    GlobalHydra.instance().clear()
    register_schema()
    try:
        with initialize_config_module(config_module="megathink.hydra_conf", version_base=None):
            default = to_run_config(compose(config_name="train", overrides=["output_dir=out"]))
            fused = to_run_config(compose(config_name="train", overrides=["output_dir=out", "kernels.policy_loss=fused"]))
    finally:
        GlobalHydra.instance().clear()
    assert default.kernels.policy_loss == "reference" and fused.kernels.policy_loss == "fused"

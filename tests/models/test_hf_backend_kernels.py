"""kernels.logprob in the HF backend: fused (Triton interpreter) and chunked from hidden states
give the same log-probs, entropies, losses and updates as the naive full-logits path."""

from __future__ import annotations

import copy
import importlib.util

import pytest
import torch
from megathink.kernels import dispatch

from megathink.algorithms import degrpo_loss
from megathink.config import (
    KernelsConfig,
    ModelConfig,
    OptimizerConfig,
    RLConfig,
    TokenizerConfig,
)
from megathink.config.algorithm import algorithm_config
from megathink.data.sft_examples import SFTExample, collate_sft
from megathink.data.tokenizer import load_tokenizer
from megathink.errors import ConfigError
from megathink.models import HFBackend, build_hf_backend
from megathink.rollout.local_engine import LocalEngine
from megathink.rollout.types import RolloutRequest, SamplingParams
from megathink.trainer.lr_schedule import build_scheduler
from megathink.trainer.optim import build_adamw
from megathink.trainer.rl_batch import build_rl_batch
from megathink.trainer.rl_update import rl_update
from megathink.trainer.sft_step import sft_step

SMALL = dict(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64)
HAS_TRITON = importlib.util.find_spec("triton") is not None
IMPLS = ["naive", "chunked"] + (["fused"] if HAS_TRITON else [])


def _with_impl(backend: HFBackend, impl: str, chunk_tokens: int = 0) -> HFBackend:
    other = copy.deepcopy(backend)
    other.logprob_impl, other.chunk_tokens = impl, chunk_tokens
    return other


@pytest.mark.parametrize("arch, tied", [("qwen2", True), ("llama", False)])
def test_logprobs_and_entropies_agree_across_implementations(arch: str, tied: bool) -> None:
    bundle = load_tokenizer(TokenizerConfig())
    base = build_hf_backend(ModelConfig(arch=arch, tie_word_embeddings=tied, **SMALL), bundle, device="cpu", seed=0)
    with torch.no_grad():
        base.model.model.norm.weight.mul_(4.0)  # sharper distributions than a fresh random model
    ids = torch.randint(0, bundle.vocab_size, (3, 11), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, :4] = 0  # left padding
    mask[2, 8:] = 0  # right padding
    results = {}
    for impl in IMPLS:
        backend = _with_impl(base, impl, chunk_tokens=5)
        logp, ent = backend.logprobs_and_entropy(ids, mask, temperature=0.7)
        assert logp.dtype == torch.float32 and logp.shape == ent.shape == (3, 11)
        results[impl] = (logp.detach(), ent.detach())
    naive_logp, naive_ent = results["naive"]
    assert torch.all(naive_logp[:, 0] == 0) and torch.all(naive_logp[1, :5] == 0) and torch.all(naive_ent[2, 8:] == 0)
    for impl, (logp, ent) in results.items():
        torch.testing.assert_close(logp, naive_logp, atol=1e-5, rtol=1e-5, msg=impl)
        torch.testing.assert_close(ent, naive_ent, atol=1e-5, rtol=1e-5, msg=impl)


def _sft_batch(bundle) -> list:
    gen = torch.Generator().manual_seed(1)
    examples = []
    for prompt_len, answer_len in ((4, 9), (6, 3), (3, 12)):
        ids = torch.randint(20, 80, (prompt_len + answer_len,), generator=gen).tolist()
        examples.append(SFTExample(ids, [0] * prompt_len + [1] * answer_len, "think", None))
    return [collate_sft(examples, bundle.pad_id)]


def test_sft_step_is_the_same_with_every_implementation() -> None:
    bundle = load_tokenizer(TokenizerConfig())
    base = build_hf_backend(ModelConfig(**SMALL), bundle, device="cpu", seed=0)
    cfg = OptimizerConfig(lr=1e-3, min_lr=0.0, grad_clip=0.0)
    out = {}
    for impl in IMPLS:
        backend = _with_impl(base, impl, chunk_tokens=7)
        opt = build_adamw(backend.named_parameters(), cfg)
        stats = sft_step(backend, _sft_batch(bundle), opt, build_scheduler(opt, cfg, 10), grad_clip=0.0, control=bundle.control)
        grads = {name: p.grad.clone() for name, p in backend.model.named_parameters()}
        out[impl] = (stats, grads, backend.model.state_dict())
    naive_stats, naive_grads, naive_state = out["naive"]
    for impl, (stats, grads, state) in out.items():
        assert stats.loss == pytest.approx(naive_stats.loss, rel=1e-6), impl
        assert stats.grad_norm == pytest.approx(naive_stats.grad_norm, rel=1e-5), impl
        for key in naive_grads:  # the step's gradients: equal to fp32 rounding
            torch.testing.assert_close(grads[key], naive_grads[key], atol=1e-7, rtol=1e-5, msg=f"{impl}: grad {key}")
        for key in naive_state:  # Adam's first step lr * g / (|g| + eps) is sensitive to that rounding for |g| ~ eps
            torch.testing.assert_close(state[key], naive_state[key], atol=1e-5, rtol=0, msg=f"{impl}: {key}")


@pytest.mark.parametrize("name", ["degrpo", "grpo"])
def test_rl_update_is_the_same_with_every_implementation(name: str) -> None:
    bundle = load_tokenizer(TokenizerConfig())
    base = build_hf_backend(ModelConfig(**SMALL), bundle, device="cpu", seed=0)
    prompts = [bundle.tokenizer.encode(text, add_special_tokens=False) for text in ("1+2=", "34+5=")]
    samples = LocalEngine(base, pad_id=bundle.pad_id).generate(
        [RolloutRequest(prompt_ids=p, group_id=g) for g, p in enumerate(prompts)],
        SamplingParams(temperature=1.0, max_new_tokens=6, n=3, seed=1),
    )
    batch = build_rl_batch(samples, torch.linspace(-1.0, 1.0, len(samples)), pad_id=bundle.pad_id)
    rl = RLConfig(prompts_per_step=2, mini_batches=1, micro_batch_size=4, optimizer=OptimizerConfig(lr=1e-2, min_lr=1e-2))
    algorithm = algorithm_config(name, kl_coef=0.0, entropy_coef=1e-2, **({"alpha": 0.5} if name == "degrpo" else {}))
    out = {}
    for impl in IMPLS:
        backend = _with_impl(base, impl)
        optimizer = build_adamw(backend.named_parameters(), rl.optimizer)
        scheduler = build_scheduler(optimizer, rl.optimizer, 1)
        metrics = rl_update(backend, batch, None, None, optimizer, scheduler, algorithm=algorithm, rl=rl, temperature=1.0)
        out[impl] = (metrics, backend.model.state_dict())
    naive_metrics, _ = out["naive"]
    for impl, (metrics, _) in out.items():
        for key in ("loss", "pg_loss", "entropy", "grad_norm"):
            assert metrics[key] == pytest.approx(naive_metrics[key], rel=1e-5, abs=1e-7), f"{impl}: {key}"
    # (weights after the step are not compared: Adam turns rounding-level gradients, such as
    # the k_proj bias's, which is 0 in exact arithmetic, into full-size +-lr steps)


def test_degrpo_gradients_are_the_same_with_every_implementation() -> None:
    bundle = load_tokenizer(TokenizerConfig())
    base = build_hf_backend(ModelConfig(tie_word_embeddings=False, **SMALL), bundle, device="cpu", seed=2)
    gen = torch.Generator().manual_seed(3)
    ids = torch.randint(0, bundle.vocab_size, (4, 9), generator=gen)
    mask = torch.ones_like(ids)
    mask[0, :3] = 0
    old = torch.randn(4, 9, generator=gen) * 0.1 - 4.0
    advantages = torch.tensor([1.0, -0.5, 0.3, -1.0])
    grads = {}
    for impl in IMPLS:
        backend = _with_impl(base, impl, chunk_tokens=6)
        logp, ent = backend.logprobs_and_entropy(ids, mask, temperature=0.6)
        response = slice(3, None)  # control token at column 3, as rl_batch aligns it
        loss, _ = degrpo_loss(logp[:, response], old[:, response], advantages, mask[:, response], alpha=0.5,
                              entropy=ent[:, response], entropy_coef=0.05)
        loss.backward()
        grads[impl] = {n: p.grad.clone() for n, p in backend.model.named_parameters()}
    for impl, named in grads.items():
        for name, grad in named.items():
            scale = grads["naive"][name].abs().max().item()
            torch.testing.assert_close(grad, grads["naive"][name], atol=1e-5 * max(scale, 1e-3), rtol=1e-4,
                                       msg=f"{impl}: {name}")


def test_build_passes_the_kernels_config() -> None:
    bundle = load_tokenizer(TokenizerConfig())
    backend = build_hf_backend(
        ModelConfig(**SMALL), bundle, device="cpu", seed=0, kernels=KernelsConfig(logprob="naive", chunk_tokens=3)
    )
    assert backend.logprob_impl == "naive" and backend.chunk_tokens == 3
    # 'auto' (the default): the toy vocabulary's full logits are tiny -> naive; a real one -> chunked
    assert build_hf_backend(ModelConfig(**SMALL), bundle, device="cpu", seed=0).logprob_impl == "naive"
    small_cutoff = KernelsConfig(naive_max_vocab=10)
    assert build_hf_backend(ModelConfig(**SMALL), bundle, device="cpu", seed=0, kernels=small_cutoff).logprob_impl == "chunked"


def test_auto_resolves_by_vocabulary_size() -> None:
    auto = KernelsConfig()
    assert auto.logprob == "auto"
    assert auto.logprob_for(94) == "naive" and auto.logprob_for(4096) == "naive"
    assert auto.logprob_for(151_936) == "chunked"
    assert KernelsConfig(logprob="naive").logprob_for(151_936) == "naive"  # asked for by name
    assert KernelsConfig(logprob="fused").logprob_for(94) == "fused"


def test_fused_is_refused_where_it_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = load_tokenizer(TokenizerConfig())
    monkeypatch.setattr(dispatch, "_interpreting", lambda: False)
    with pytest.raises(ConfigError, match=r"kernels.logprob = 'fused' cannot run here: .*(CUDA|triton)"):
        build_hf_backend(ModelConfig(**SMALL), bundle, device="cpu", seed=0, kernels=KernelsConfig(logprob="fused"))

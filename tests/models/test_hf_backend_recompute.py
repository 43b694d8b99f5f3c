"""parallel.recompute='full' in the HF backend: gradient checkpointing of the decoder layers.

The same tiny random Qwen2 / Llama with recompute none and full give the same per-token
log-probs, entropies, loss and parameter gradients on every kernels.logprob route (naive from
the logits, chunked and, where Triton is installed, fused from the hidden states), and the
decoder layers really rerun in the backward pass: a pre-hook on each layer's input norm (the
first module inside the checkpointed forward; transformers keeps the layer's own module hooks
outside it, and torch stops a recompute early, after the last saved tensor, so post-hooks of
later modules may not fire) counts one call per layer in the forward pass and, with recompute,
one more in the backward pass.
Evaluation (eval mode) and no-grad scoring run the plain layers.
"""

from __future__ import annotations

import copy
import importlib.util

import pytest
import torch

from megathink.config import (
    ModelConfig,
    OptimizerConfig,
    ParallelConfig,
    RunConfig,
    TokenizerConfig,
)
from megathink.data.sft_examples import SFTExample, collate_sft
from megathink.data.tokenizer import load_tokenizer
from megathink.errors import ConfigError
from megathink.models import HFBackend, build_hf_backend
from megathink.models.hf_backend import enable_recompute
from megathink.trainer.lr_schedule import build_scheduler
from megathink.trainer.optim import build_adamw
from megathink.trainer.policy import build_policy
from megathink.trainer.sft_step import sft_step

SMALL = dict(hidden_size=32, num_layers=3, num_heads=2, num_kv_heads=1, intermediate_size=64)
IMPLS = ["naive", "chunked"] + (["fused"] if importlib.util.find_spec("triton") is not None else [])


class LayerCalls:
    """Counts the calls of every decoder layer's input norm (inside the checkpointed forward)."""

    def __init__(self, backend: HFBackend) -> None:
        self.calls = 0
        self.layers = backend.model.model.layers
        for layer in self.layers:
            layer.input_layernorm.register_forward_pre_hook(self._hook)

    def _hook(self, *_: object) -> None:
        self.calls += 1

    def take(self) -> int:
        calls, self.calls = self.calls, 0
        return calls


def _pair(arch: str, impl: str) -> tuple[HFBackend, HFBackend]:
    """(recompute none, recompute full): the same weights, `impl` as the log-prob route."""
    bundle = load_tokenizer(TokenizerConfig())
    model = ModelConfig(arch=arch, tie_word_embeddings=arch == "qwen2", **SMALL)
    plain = build_hf_backend(model, bundle, device="cpu", seed=0)
    recomputed = build_hf_backend(model, bundle, device="cpu", seed=0, recompute="full")
    for backend in (plain, recomputed):  # fused cannot be built on CPU; the interpreter runs it
        backend.logprob_impl = impl
    assert plain.recompute == "none" and recomputed.recompute == "full"
    return plain, recomputed


def _batch(vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(0, vocab, (3, 13), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, :4] = 0  # left padding (RL prompts)
    mask[2, 9:] = 0  # right padding (SFT)
    return ids, mask


def _train_pass(backend: HFBackend, ids: torch.Tensor, mask: torch.Tensor, calls: LayerCalls) -> dict:
    backend.train(True)
    backend.model.zero_grad(set_to_none=True)
    logp, ent = backend.logprobs_and_entropy(ids, mask, temperature=0.7)  # [B, T] each
    forward_calls = calls.take()
    loss = -(logp * mask).sum() / mask.sum() - 0.1 * ent.mean()
    loss.backward()
    return {
        "logp": logp.detach(), "entropy": ent.detach(), "loss": loss.detach(),
        "grads": {name: p.grad.clone() for name, p in backend.model.named_parameters()},
        "forward_calls": forward_calls, "backward_calls": calls.take(),
    }


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
@pytest.mark.parametrize("impl", IMPLS)
def test_full_recompute_gives_the_same_logprobs_loss_and_gradients(arch: str, impl: str) -> None:
    plain, recomputed = _pair(arch, impl)
    ids, mask = _batch(plain.model.get_input_embeddings().num_embeddings)
    layers = SMALL["num_layers"]
    a = _train_pass(plain, ids, mask, LayerCalls(plain))
    b = _train_pass(recomputed, ids, mask, LayerCalls(recomputed))
    assert (a["forward_calls"], a["backward_calls"]) == (layers, 0)
    assert (b["forward_calls"], b["backward_calls"]) == (layers, layers)  # every layer reran in backward
    torch.testing.assert_close(b["logp"], a["logp"], rtol=0, atol=0)
    torch.testing.assert_close(b["entropy"], a["entropy"], rtol=0, atol=0)
    torch.testing.assert_close(b["loss"], a["loss"], rtol=0, atol=0)
    assert a["grads"].keys() == b["grads"].keys()
    for name, grad in a["grads"].items():
        torch.testing.assert_close(b["grads"][name], grad, rtol=1e-6, atol=1e-7, msg=name)
    assert any(float(g.abs().sum()) > 0 for g in a["grads"].values())


def test_eval_and_no_grad_passes_do_not_recompute() -> None:
    plain, recomputed = _pair("qwen2", "chunked")
    ids, mask = _batch(plain.model.get_input_embeddings().num_embeddings)
    calls = LayerCalls(recomputed)
    layers = SMALL["num_layers"]
    recomputed.train(True)
    with torch.no_grad():  # scoring old / reference log-probs in training mode
        scored = recomputed.logprobs(ids, mask)
    assert calls.take() == layers
    torch.testing.assert_close(scored, plain.logprobs(ids, mask), rtol=0, atol=0)
    recomputed.train(False)  # evaluation with gradients on: plain layers, nothing rerun
    recomputed.logprobs(ids, mask).sum().backward()
    assert calls.take() == layers
    frozen = copy.deepcopy(recomputed.model).eval().requires_grad_(False)  # what a KL reference is
    with torch.inference_mode():  # generation's mode, with the KV cache: plain layers
        frozen(input_ids=ids, attention_mask=mask, use_cache=True)


def test_sft_step_with_recompute_matches_and_the_policy_gets_it() -> None:
    bundle = load_tokenizer(TokenizerConfig())
    cfg = OptimizerConfig(lr=1e-3, min_lr=0.0, grad_clip=1.0)
    gen = torch.Generator().manual_seed(1)
    examples = []
    for prompt_len, answer_len in ((4, 9), (6, 3), (3, 12)):
        ids = torch.randint(20, 80, (prompt_len + answer_len,), generator=gen).tolist()
        examples.append(SFTExample(ids, [0] * prompt_len + [1] * answer_len, "think", None))
    batch = [collate_sft(examples, bundle.pad_id)]
    out = []
    for recompute in ("none", "full"):
        run = RunConfig(model=ModelConfig(**SMALL), parallel=ParallelConfig(recompute=recompute))
        policy = build_policy(run, run.model, bundle, work_dir=None)  # the stage's path to the backend
        assert policy.backend.recompute == recompute
        opt = build_adamw(policy.backend.named_parameters(), cfg)
        stats = sft_step(policy.backend, batch, opt, build_scheduler(opt, cfg, 10), grad_clip=1.0, control=bundle.control)
        out.append((stats.loss, stats.grad_norm, policy.backend.model.state_dict()))
    (loss_a, norm_a, state_a), (loss_b, norm_b, state_b) = out
    assert loss_b == loss_a and norm_b == pytest.approx(norm_a, rel=1e-6)
    for name, tensor in state_a.items():
        torch.testing.assert_close(state_b[name], tensor, rtol=1e-6, atol=1e-7, msg=name)


def test_selective_recompute_is_refused_by_the_hf_backend() -> None:
    bundle = load_tokenizer(TokenizerConfig())
    with pytest.raises(ConfigError, match="parallel.recompute = 'selective'.*full"):
        build_hf_backend(ModelConfig(**SMALL), bundle, device="cpu", seed=0, recompute="selective")
    model = build_hf_backend(ModelConfig(**SMALL), bundle, device="cpu", seed=0).model
    enable_recompute(model, "none")
    assert not any(getattr(m, "gradient_checkpointing", False) for m in model.modules())

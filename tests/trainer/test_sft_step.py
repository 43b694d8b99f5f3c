"""sft_step: the per-token mean over all target tokens of an optimizer step, split by mode."""

from __future__ import annotations

import dataclasses
import math

import torch

from megathink.config import ModelConfig, OptimizerConfig, TokenizerConfig
from megathink.data.sft_examples import SFTExample, collate_sft, encode_sft_pair
from megathink.data.toy_task import record_for
from megathink.data.tokenizer import load_tokenizer
from megathink.models import build_hf_backend
from megathink.trainer.lr_schedule import build_scheduler
from megathink.trainer.optim import build_adamw
from megathink.trainer.sft_step import row_modes, sft_step

SMALL = ModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64)


def _examples(bundle, lengths: list[tuple[int, int, str]]) -> list[SFTExample]:
    gen = torch.Generator().manual_seed(0)
    out = []
    for prompt_len, answer_len, mode in lengths:
        control = bundle.control.think if mode == "think" else bundle.control.short
        prompt = torch.randint(20, 80, (prompt_len,), generator=gen).tolist()
        answer = torch.randint(20, 80, (answer_len,), generator=gen).tolist()
        ids = prompt + [control] + answer + [bundle.eos_id]
        out.append(SFTExample(ids, [0] * prompt_len + [1] * (answer_len + 2), mode, None))
    return out


def _step(micro, max_tokens: int = 0):
    bundle = load_tokenizer(TokenizerConfig())
    backend = build_hf_backend(SMALL, bundle, device="cpu", seed=0)
    cfg = OptimizerConfig(lr=1e-3, min_lr=0.0, grad_clip=0.0)
    opt = build_adamw(backend.named_parameters(), cfg)
    stats = sft_step(
        backend, micro, opt, build_scheduler(opt, cfg, 10), grad_clip=0.0, control=bundle.control, max_tokens=max_tokens
    )
    return stats, backend


def test_accumulation_equals_one_big_batch() -> None:
    bundle = load_tokenizer(TokenizerConfig())
    examples = _examples(bundle, [(4, 9, "think"), (4, 2, "short"), (6, 20, "think"), (6, 3, "short")])
    split, _ = _step([collate_sft(examples[:2], bundle.pad_id), collate_sft(examples[2:], bundle.pad_id)])
    whole, _ = _step([collate_sft(examples, bundle.pad_id)])
    assert split.target_tokens == whole.target_tokens == 11 + 4 + 22 + 5
    assert math.isclose(split.loss, whole.loss, rel_tol=1e-5)
    assert math.isclose(split.grad_norm, whole.grad_norm, rel_tol=1e-4)
    assert math.isclose(split.loss_think, whole.loss_think, rel_tol=1e-5)
    think_share = 33 / 42
    assert math.isclose(whole.loss, think_share * whole.loss_think + (1 - think_share) * whole.loss_short, rel_tol=1e-5)
    assert whole.lr == 1e-3 and whole.tokens == sum(len(e) for e in examples)


def test_row_modes_read_the_first_target_token() -> None:
    bundle = load_tokenizer(TokenizerConfig())
    batch = collate_sft(_examples(bundle, [(3, 2, "think"), (5, 1, "short")]), bundle.pad_id)
    assert batch.modes == ("think", "short")
    modes = row_modes(batch, bundle.control)
    assert modes["think"].tolist() == [True, False] and modes["short"].tolist() == [False, True]
    unlabelled = dataclasses.replace(batch, modes=())
    modes = row_modes(unlabelled, bundle.control)
    assert modes["think"].tolist() == [True, False] and modes["short"].tolist() == [False, True]


def test_row_modes_of_an_adaptthink_batch_come_from_the_examples() -> None:
    """AdaptThink warm-up rows have no control token as first target: the batch's modes say it."""
    cfg = TokenizerConfig(template="adaptthink")
    bundle = load_tokenizer(cfg)
    thinking, nothinking = encode_sft_pair(record_for(3, 4, 1), bundle, cfg)
    modes = row_modes(collate_sft([thinking, nothinking], bundle.pad_id), bundle.control)
    assert modes["think"].tolist() == [True, False] and modes["short"].tolist() == [False, True]


def test_token_budget_regroups_rows_with_the_same_step_and_less_padding() -> None:
    bundle = load_tokenizer(TokenizerConfig())
    spec = [(4, 30, "think"), (4, 2, "short"), (6, 40, "think"), (6, 3, "short"), (5, 1, "short"), (5, 35, "think")]
    examples = _examples(bundle, spec)
    micro = [collate_sft(examples[:3], bundle.pad_id), collate_sft(examples[3:], bundle.pad_id)]
    plain, plain_backend = _step(micro)
    budget, budget_backend = _step(micro, max_tokens=100)
    assert budget.target_tokens == plain.target_tokens and budget.tokens == plain.tokens
    assert math.isclose(budget.loss, plain.loss, rel_tol=1e-6)
    assert math.isclose(budget.loss_short, plain.loss_short, rel_tol=1e-6)
    assert math.isclose(budget.grad_norm, plain.grad_norm, rel_tol=1e-5)
    for (name, a), (_, b) in zip(plain_backend.model.named_parameters(), budget_backend.model.named_parameters()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7, msg=name)
    assert 0.0 <= budget.padding_waste < plain.padding_waste

"""The chunked torch reference of token_logprobs against float64 log_softmax + gather."""

from __future__ import annotations

import pytest
import torch

from megathink.kernels import token_logprobs


def _reference(logits: torch.Tensor, targets: torch.Tensor, temperature: float) -> torch.Tensor:
    logp = torch.log_softmax(logits.double() / temperature, dim=-1)  # [B, T, V]
    picked = logp.gather(-1, targets.clamp(min=0)[..., None]).squeeze(-1)  # [B, T]
    return torch.where(targets >= 0, picked, torch.zeros_like(picked))


@pytest.mark.parametrize("temperature", [1.0, 0.6, 1.7])
@pytest.mark.parametrize("chunk_rows", [None, 1, 5])
def test_matches_float64_reference(temperature: float, chunk_rows: int | None) -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 33, generator=gen) * 4
    targets = torch.randint(0, 33, (3, 7), generator=gen)
    out = token_logprobs(logits, targets, temperature=temperature, chunk_rows=chunk_rows)
    assert out.dtype == torch.float32 and out.shape == (3, 7)
    torch.testing.assert_close(out.double(), _reference(logits, targets, temperature), atol=1e-5, rtol=1e-5)


def test_ignored_targets_give_zero_and_no_gradient() -> None:
    logits = torch.randn(2, 4, 11, requires_grad=True)
    targets = torch.tensor([[1, -1, 3, -100], [-1, -1, 0, 10]])
    out = token_logprobs(logits, targets)
    assert torch.all(out[targets < 0] == 0)
    out.sum().backward()
    assert torch.all(logits.grad[targets < 0] == 0)
    assert torch.all(logits.grad[targets >= 0].abs().sum(-1) > 0)


def test_bf16_logits_are_computed_in_float32() -> None:
    gen = torch.Generator().manual_seed(1)
    logits = (torch.randn(2, 5, 64, generator=gen) * 3).bfloat16()
    targets = torch.randint(0, 64, (2, 5), generator=gen)
    out = token_logprobs(logits, targets, temperature=0.6, chunk_rows=3)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), _reference(logits.float(), targets, 0.6), atol=1e-5, rtol=1e-5)
    leaf = logits.clone().requires_grad_(True)
    token_logprobs(leaf, targets).sum().backward()
    assert leaf.grad.dtype == torch.bfloat16


def test_gradient_matches_autograd_of_reference() -> None:
    gen = torch.Generator().manual_seed(2)
    base = torch.randn(2, 3, 9, generator=gen, dtype=torch.float64)
    targets = torch.tensor([[0, 4, -1], [8, 2, 2]])
    weights = torch.randn(2, 3, generator=gen, dtype=torch.float64)
    a = base.clone().requires_grad_(True)
    b = base.clone().requires_grad_(True)
    (token_logprobs(a, targets, temperature=0.7, chunk_rows=2).double() * weights).sum().backward()
    (_reference(b, targets, 0.7) * weights).sum().backward()
    torch.testing.assert_close(a.grad, b.grad)


def test_gradcheck_double() -> None:
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 3, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([[0, 4, -1], [3, 2, 1]])
    assert torch.autograd.gradcheck(
        lambda x: token_logprobs(x, targets, temperature=0.8, chunk_rows=4), (logits,), eps=1e-6, atol=1e-5
    )


def test_shape_and_temperature_errors() -> None:
    with pytest.raises(ValueError, match=r"\[B, T, V\]"):
        token_logprobs(torch.randn(4, 5), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="temperature"):
        token_logprobs(torch.randn(1, 2, 3), torch.zeros(1, 2, dtype=torch.long), temperature=0.0)

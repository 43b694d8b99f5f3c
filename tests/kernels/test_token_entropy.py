"""token_entropy against torch.distributions in float64, with temperature and gradients."""

from __future__ import annotations

import torch

from megathink.kernels import token_entropy


def test_matches_categorical_entropy_at_temperature():
    logits = torch.randn(3, 5, 11, dtype=torch.float64)
    for temperature in (0.6, 1.0, 2.0):
        expected = torch.distributions.Categorical(logits=logits / temperature).entropy()
        torch.testing.assert_close(token_entropy(logits, temperature=temperature), expected.float(), atol=1e-5, rtol=0)


def test_gradient_matches_autograd_reference():
    logits = torch.randn(2, 3, 7, dtype=torch.float64, requires_grad=True)
    token_entropy(logits).sum().backward()
    ours = logits.grad.clone()
    logits.grad = None
    torch.distributions.Categorical(logits=logits).entropy().sum().backward()
    torch.testing.assert_close(ours, logits.grad, atol=1e-5, rtol=0)


def test_uniform_distribution_has_log_v_entropy():
    assert torch.allclose(token_entropy(torch.zeros(1, 2, 8)), torch.full((1, 2), float(torch.log(torch.tensor(8.0)))))

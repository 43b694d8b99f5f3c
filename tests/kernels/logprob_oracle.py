"""Shared test helpers: random problems and the float64 oracle of linear_logprob."""

from __future__ import annotations

from typing import Optional

import torch

from megathink.kernels import naive_linear_logprob


def problem(
    n: int, h: int, v: int, *, seed: int = 0, dtype: torch.dtype = torch.float32, scale: float = 1.0,
    ignored: tuple[int, ...] = (),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """hidden [n, h], weight [v, h] (logits of std ~ 2 * scale) and targets [n] with some ignored."""
    gen = torch.Generator().manual_seed(seed)
    hidden = (torch.randn(n, h, generator=gen) * scale).to(dtype)
    weight = (torch.randn(v, h, generator=gen) * 2 / h**0.5).to(dtype)
    targets = torch.randint(0, v, (n,), generator=gen)
    for row in ignored:
        targets[row] = -1 if row % 2 else -100
    return hidden, weight, targets


def oracle(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, temperature: float,
    grad_logp: Optional[torch.Tensor] = None, grad_entropy: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, ...]:
    """float64 log-probs, entropies and (when upstream gradients are given) grads of hidden, weight."""
    h = hidden.detach().double().requires_grad_(True)
    w = weight.detach().double().requires_grad_(True)
    logp, ent = naive_linear_logprob(h, w, targets, temperature=temperature, return_entropy=True)
    if grad_logp is None:
        return logp.detach(), ent.detach()
    loss = (logp * grad_logp.double()).sum() + (0 if grad_entropy is None else (ent * grad_entropy.double()).sum())
    loss.backward()
    return logp.detach(), ent.detach(), h.grad, w.grad


def run(fn, hidden, weight, targets, grad_logp, grad_entropy=None, **kwargs) -> tuple[torch.Tensor, ...]:
    """Call fn(hidden, weight, targets, return_entropy=True, **kwargs) and backprop the upstream grads."""
    h = hidden.detach().clone().requires_grad_(True)
    w = weight.detach().clone().requires_grad_(True)
    logp, ent = fn(h, w, targets, return_entropy=True, **kwargs)
    loss = (logp * grad_logp).sum() + (0 if grad_entropy is None else (ent * grad_entropy).sum())
    loss.backward()
    return logp.detach(), ent.detach(), h.grad, w.grad

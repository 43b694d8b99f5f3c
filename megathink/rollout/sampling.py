"""Choose the next token of each row from its logits and one uniform number per row.

Greedy (T = 0): the argmax (lowest id among ties, as `model.generate` does). Otherwise the
distribution is `softmax(logits / T)`; top-k keeps the k most likely tokens and top-p the most
likely tokens whose *preceding* cumulative mass is <= top_p (so the top token always stays),
both measured on the full distribution and then renormalised, as SGLang's torch sampler does.
The token is drawn by inverse-CDF sampling: the first token whose cumulative (kept) mass exceeds
`u * total`, with `u` the row's uniform from `megathink.rollout.rng` (float64 cumulative sums,
so the draw is exact to ~1e-15 even over a 150k vocabulary).

The reported log-prob is always that of the chosen token under the *full* `log_softmax(logits / T)`
(T = 1 when greedy), computed by `megathink.kernels.token_logprobs`, the very function the
trainer scores responses with.
"""

from __future__ import annotations

import torch

from megathink.kernels import token_logprobs
from megathink.rollout.types import SamplingParams


def choose_tokens(
    logits: torch.Tensor, uniforms: torch.Tensor, params: SamplingParams
) -> tuple[torch.Tensor, torch.Tensor]:
    """logits [B, V], uniforms [B] in [0, 1) -> (token ids [B] long, their log-probs [B] float32)."""
    if params.greedy:
        ids = logits.argmax(dim=-1)  # [B]
    else:
        probs = torch.softmax(logits.float() / params.temperature, dim=-1)  # [B, V]
        ids = _sample(probs, uniforms, top_p=params.top_p, top_k=params.top_k)  # [B]
    logprobs = token_logprobs(logits[:, None], ids[:, None], temperature=params.logprob_temperature)  # [B, 1]
    return ids, logprobs[:, 0]


def _sample(probs: torch.Tensor, uniforms: torch.Tensor, *, top_p: float, top_k: int) -> torch.Tensor:
    """probs [B, V] -> ids [B] drawn from probs restricted by top-k / top-p, one uniform per row."""
    if top_k == 0 and top_p >= 1.0:
        return _inverse_cdf(probs.double(), uniforms)
    sorted_probs, order = probs.sort(dim=-1, descending=True, stable=True)  # [B, V] each
    keep = torch.ones_like(sorted_probs, dtype=torch.bool)  # [B, V]
    if top_k > 0:
        keep[:, top_k:] = False
    if top_p < 1.0:
        preceding = sorted_probs.double().cumsum(dim=-1) - sorted_probs.double()  # [B, V] mass before each
        keep &= preceding <= top_p
    weights = sorted_probs.double() * keep  # [B, V]
    return order.gather(1, _inverse_cdf(weights, uniforms)[:, None])[:, 0]


def _inverse_cdf(weights: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """weights [B, V] >= 0 (float64, positive sum), uniforms [B] -> column index [B].

    Picks the first column whose cumulative weight exceeds u * total; never a zero-weight
    column (a rounding overshoot falls back to the last column with positive weight).
    """
    cdf = weights.cumsum(dim=-1)  # [B, V]
    total = cdf[:, -1:]  # [B, 1]
    picked = torch.searchsorted(cdf, uniforms.to(cdf.dtype)[:, None] * total, right=True)[:, 0]  # [B]
    last_positive = (cdf < total).sum(dim=-1)  # [B]: first column reaching the total
    return torch.minimum(picked, last_positive)

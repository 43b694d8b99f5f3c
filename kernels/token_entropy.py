"""Entropy of `softmax(logits / temperature)` per position: the plain torch reference.

`token_entropy(logits [B, T, V]) -> [B, T]` float32, `H = logsumexp(z) - sum(softmax(z) * z)`
with `z = logits.float() / temperature`, computed over chunks of the flattened `[N, V]` rows
so at most one chunk of fp32 logits is materialised per step of the loop (autograd keeps
each chunk for the backward; the fused Triton kernel of a later issue avoids that).
"""

from __future__ import annotations

import torch

from megathink.kernels.token_logprobs import DEFAULT_CHUNK_ELEMENTS


def token_entropy(logits: torch.Tensor, *, temperature: float = 1.0) -> torch.Tensor:
    """Entropy (nats) of each position's distribution at `temperature`, float32 `[B, T]`."""
    if logits.dim() != 3:
        raise ValueError(f"token_entropy: logits must be [B, T, V], got shape {tuple(logits.shape)}.")
    if not temperature > 0:
        raise ValueError(f"token_entropy: temperature = {temperature!r} must be > 0.")
    batch, time, vocab = logits.shape
    rows = logits.reshape(batch * time, vocab)  # [N, V]
    chunk = max(1, DEFAULT_CHUNK_ELEMENTS // max(vocab, 1))
    parts = []
    for start in range(0, rows.shape[0], chunk):
        z = rows[start : start + chunk].float() / temperature  # [n, V]
        log_p = torch.log_softmax(z, dim=-1)
        parts.append(-(log_p.exp() * log_p).sum(-1))  # [n]
    if not parts:
        return logits.new_zeros((batch, time), dtype=torch.float32)
    return torch.cat(parts).reshape(batch, time)

"""Log-probability of each target token under `softmax(logits / temperature)`: the torch reference.

`token_logprobs(logits [B, T, V], targets [B, T]) -> [B, T]` float32, computed row by row as
`z[y] - logsumexp(z)` with `z = logits.float() / temperature`, over chunks of the flattened
`[N = B*T, V]` rows. Only one chunk of fp32 logits exists at a time, in the forward *and* in
the backward: a custom autograd function keeps the input logits (in their own dtype) and the
per-row logsumexp `[N]`, and rebuilds each chunk's softmax when the gradient is needed,
instead of letting autograd keep a full fp32 `[N, V]` log_softmax alive.

Targets < 0 (padding, prompt positions) give a log-prob of 0 and no gradient.

This is the plain torch reference. A later issue adds Triton kernels (fused with the lm_head
matmul, so the `[N, V]` logits are never written out at all) beside it behind one dispatch in
`megathink.kernels`; those are tested against this function.
"""

from __future__ import annotations

from typing import Optional

import torch

DEFAULT_CHUNK_ELEMENTS = 1 << 24
"""Default fp32 working-set size of one chunk, in elements (64 MiB): rows per chunk = this / V."""


def token_logprobs(
    logits: torch.Tensor,
    targets: torch.Tensor,
    *,
    temperature: float = 1.0,
    chunk_rows: Optional[int] = None,
) -> torch.Tensor:
    """log p(targets[b, t]) under softmax(logits[b, t] / temperature), float32 `[B, T]`.

    logits: [B, T, V] (any float dtype); targets: [B, T] long, < 0 means "no target" (gives 0).
    chunk_rows: rows of the flattened [B*T, V] processed at once (default: 64 MiB of fp32).
    """
    if logits.dim() != 3 or targets.dim() != 2 or logits.shape[:2] != targets.shape:
        raise ValueError(
            f"token_logprobs expects logits [B, T, V] and targets [B, T]; got {tuple(logits.shape)} "
            f"and {tuple(targets.shape)}."
        )
    if not temperature > 0:
        raise ValueError(f"token_logprobs temperature = {temperature!r} is invalid: must be > 0.")
    batch, time, vocab = logits.shape
    if chunk_rows is None:
        chunk_rows = max(1, DEFAULT_CHUNK_ELEMENTS // max(vocab, 1))
    flat_logits = logits.reshape(batch * time, vocab)  # [N, V]
    flat_targets = targets.reshape(batch * time).long()  # [N]
    out = _TokenLogprobs.apply(flat_logits, flat_targets, float(temperature), int(chunk_rows))  # [N]
    return out.view(batch, time)


class _TokenLogprobs(torch.autograd.Function):
    """Chunked `z[y] - logsumexp(z)` with a recomputing backward (saves logits and lse only)."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor, temperature: float, chunk_rows: int):
        rows = logits.shape[0]
        out_dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
        valid = targets >= 0  # [N]
        safe_targets = targets.clamp(min=0)  # [N]
        lse = torch.empty(rows, dtype=out_dtype, device=logits.device)  # [N]
        picked = torch.empty(rows, dtype=out_dtype, device=logits.device)  # [N]
        for start in range(0, rows, chunk_rows):
            stop = min(start + chunk_rows, rows)
            z = logits[start:stop].to(out_dtype) / temperature  # [n, V]
            lse[start:stop] = torch.logsumexp(z, dim=-1)
            picked[start:stop] = z.gather(1, safe_targets[start:stop, None]).squeeze(1)
        out = torch.where(valid, picked - lse, torch.zeros_like(lse))  # [N]
        ctx.save_for_backward(logits, safe_targets, valid, lse)
        ctx.temperature = temperature
        ctx.chunk_rows = chunk_rows
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        logits, safe_targets, valid, lse = ctx.saved_tensors
        temperature, chunk_rows = ctx.temperature, ctx.chunk_rows
        # d out / d logits = (onehot(y) - softmax(z)) / T on valid rows.
        scale = torch.where(valid, grad_out.to(lse.dtype), torch.zeros_like(lse)) / temperature  # [N]
        grad_logits = torch.empty_like(logits)  # [N, V]
        for start in range(0, logits.shape[0], chunk_rows):
            stop = min(start + chunk_rows, logits.shape[0])
            z = logits[start:stop].to(lse.dtype) / temperature  # [n, V]
            grad = torch.exp(z - lse[start:stop, None]).mul_(-scale[start:stop, None])  # [n, V]
            grad.scatter_add_(1, safe_targets[start:stop, None], scale[start:stop, None])
            grad_logits[start:stop] = grad.to(logits.dtype)
        return grad_logits, None, None, None

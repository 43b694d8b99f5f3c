"""The chunked torch implementation of `linear_logprob`: CPU, and wherever Triton is not.

Two functions, the same two the fused Triton module provides, so `linear_logprob.py` drives
either one:

* `chunked_row_stats(hidden [N, H], weight [V, H], targets [N]) -> RowStats` walks the tokens
  `chunk_tokens` rows at a time: one matmul gives the chunk's logits `[C, V]`, reduced at
  once to `lse`, `mu` (entropy only) and the target logit. The buffers are reused from chunk
  to chunk and updated in place, so at most two `[C, V]` buffers in the accumulation dtype
  (fp32, or fp64 for fp64 inputs) exist at a time, plus the matmul's own `[C, V]` output when
  the inputs are bf16/fp16.
* `chunked_dlogits(...)` recomputes one chunk's logits for the backward and turns them, in
  place, into `d loss / d logits` (`[C, V]`) from the saved `lse` and entropy and the
  per-token upstream gradients.

The logits matmul runs in the input dtype and is then cast up, exactly like the naive path's
`lm_head(h).float()`, so chunked and naive agree to the rounding of the reductions.
"""

from __future__ import annotations

from typing import Optional

import torch

from megathink.kernels.row_stats import RowStats

DEFAULT_CHUNK_BYTES = 1 << 28
"""Default size of one `[C, V]` fp32 buffer of the chunked path (256 MiB): C = this / (4 V)."""


def default_chunk_tokens(vocab: int) -> int:
    return max(1, DEFAULT_CHUNK_BYTES // (4 * max(vocab, 1)))


def target_columns(targets: torch.Tensor, vocab_start: int, vocab: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Column of each target inside the slice `[vocab_start, vocab_start + vocab)`, clamped to it
    (`[N]` long), and whether the target lies there at all (`[N]` bool; never for targets < 0)."""
    local = targets.long() - vocab_start  # [N]
    inside = (targets >= 0) & (local >= 0) & (local < vocab)
    return local.clamp(0, max(vocab - 1, 0)), inside


def _logits(
    hidden: torch.Tensor, weight: torch.Tensor, temperature: float, out: torch.Tensor
) -> torch.Tensor:
    """`hidden [C, H] @ weight.T / temperature` into `out [C, V]` (the accumulation dtype)."""
    if out.dtype == hidden.dtype:
        torch.mm(hidden, weight.t(), out=out)
    else:
        out.copy_(torch.mm(hidden, weight.t()))
    if temperature != 1.0:
        out.div_(temperature)
    return out


def chunked_row_stats(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    vocab_start: int,
    temperature: float,
    entropy: bool,
    chunk_tokens: Optional[int] = None,
) -> RowStats:
    """`RowStats` `[N]` of the columns `weight` holds (ids `vocab_start ...`), chunk by chunk."""
    rows, vocab = hidden.shape[0], weight.shape[0]
    acc = torch.promote_types(hidden.dtype, torch.float32)
    chunk = min(chunk_tokens or default_chunk_tokens(vocab), max(rows, 1))
    lse = torch.empty(rows, dtype=acc, device=hidden.device)  # [N]
    mu = torch.empty(rows, dtype=acc, device=hidden.device) if entropy else None  # [N]
    picked = torch.empty(rows, dtype=acc, device=hidden.device)  # [N]
    columns, inside = target_columns(targets, vocab_start, vocab)  # [N] each
    buf = torch.empty((chunk, vocab), dtype=acc, device=hidden.device)  # [C, V]
    exp_buf = torch.empty_like(buf) if entropy else None  # [C, V]
    for start in range(0, rows, chunk):
        stop = min(start + chunk, rows)
        n = stop - start
        z = _logits(hidden[start:stop], weight, temperature, buf[:n])  # [n, V]
        top = z.amax(dim=1)  # [n]
        pick = z.gather(1, columns[start:stop, None]).squeeze(1)  # [n]
        picked[start:stop] = torch.where(inside[start:stop], pick, torch.zeros_like(pick))
        z.sub_(top[:, None])  # z - max
        if entropy:
            e = torch.exp(z, out=exp_buf[:n])  # [n, V]
            total = e.sum(dim=1)
            shifted_mean = e.mul_(z).sum(dim=1) / total  # sum p (z - max)
            mu[start:stop] = top + shifted_mean
        else:
            total = z.exp_().sum(dim=1)
        lse[start:stop] = top + torch.log(total)
    return RowStats(lse=lse, mu=mu, picked=picked)


def chunked_dlogits(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    lse: torch.Tensor,
    entropy: Optional[torch.Tensor],
    grad_logp: torch.Tensor,
    grad_entropy: Optional[torch.Tensor],
    *,
    vocab_start: int,
    temperature: float,
    out: torch.Tensor,
) -> torch.Tensor:
    """`d loss / d logits` of one chunk, `[C, V]` in the accumulation dtype, written into `out`.

    With z = logits / T, p = softmax(z), log p = z - lse and the per-token upstream gradients
    g (of log p(y)) and g_H (of the entropy H = lse - sum p z):

        d loss / d z_j = g (1[j = y] - p_j) - g_H p_j (log p_j + H)

    `grad_logp` and `grad_entropy` arrive already divided by T and zero on ignored rows.
    """
    columns, inside = target_columns(targets, vocab_start, weight.shape[0])  # [C] each
    z = _logits(hidden, weight, temperature, out)  # [C, V]
    z.sub_(lse[:, None])  # log p
    if grad_entropy is None:
        grad = z.exp_().mul_(-grad_logp[:, None])
    else:
        p = torch.exp(z)  # [C, V]
        grad = z.add_(entropy[:, None]).mul_(grad_entropy[:, None]).add_(grad_logp[:, None]).mul_(p).neg_()
    on_target = torch.where(inside, grad_logp, torch.zeros_like(grad_logp))  # [C]
    return grad.scatter_add_(1, columns[:, None], on_target[:, None])

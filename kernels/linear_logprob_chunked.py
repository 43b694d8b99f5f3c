"""The chunked torch implementation of `linear_logprob`: CPU, and wherever Triton is not.

Two functions, the same two the fused Triton module provides, so `linear_logprob.py` drives
either one:

* `chunked_row_stats(hidden [N, H], weight [V, H], targets [N]) -> RowStats` walks the
  vocabulary a tile at a time (`tiles.py`: `[N, w]` holds `chunk_tokens * V` elements): one
  matmul gives every token's logits over the tile, reduced at once to the tile's `lse`, `mu`
  (entropy only) and target logit, which merge exactly into the running statistics
  (`row_stats.merge_row_stats`). The buffers are reused from tile to tile and updated in
  place, so at most two tile buffers in the accumulation dtype (fp32, or fp64 for fp64
  inputs) exist at a time, plus the matmul's own output when the inputs are bf16/fp16.
* `chunked_dlogits(...)` recomputes the logits of the rows and columns it is given (the
  backward passes every token and one vocabulary tile, `linear_logprob.tiled_gradients`) and
  turns them, in place, into `d loss / d logits` from the saved `lse` and entropy and the
  per-token upstream gradients.

The logits matmul runs in the input dtype and is then cast up, exactly like the naive path's
`lm_head(h).float()`, so chunked and naive agree to the rounding of the reductions.
"""

from __future__ import annotations

from typing import Optional

import torch

from megathink.kernels.row_stats import RowStats, merge_row_stats
from megathink.kernels.tiles import tile_columns

DEFAULT_CHUNK_BYTES = 1 << 28
"""Default size of one fp32 tile buffer of the chunked path (256 MiB): C = this / (4 V) tokens'
worth of full-vocabulary logits."""


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
    """`RowStats` `[N]` of the columns `weight` holds (ids `vocab_start ...`), a vocabulary tile
    (`tiles.py`) at a time, each tile's statistics merged into the running ones."""
    rows, vocab = hidden.shape[0], weight.shape[0]
    acc = torch.promote_types(hidden.dtype, torch.float32)
    width = tile_columns(rows, vocab, chunk_tokens or default_chunk_tokens(vocab))
    buf = torch.empty(rows * width, dtype=acc, device=hidden.device)  # one [N, w] tile
    exp_buf = torch.empty_like(buf) if entropy else None
    stats: Optional[RowStats] = None
    for start in range(0, vocab, width):
        stop = min(start + width, vocab)
        shape = (rows, stop - start)
        tile = _tile_stats(
            hidden, weight[start:stop], targets, vocab_start=vocab_start + start, temperature=temperature,
            buf=buf[: rows * shape[1]].view(shape), exp_buf=None if exp_buf is None else exp_buf[: rows * shape[1]].view(shape),
        )
        stats = tile if stats is None else _merge(stats, tile)
    return stats


def _tile_stats(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    vocab_start: int,
    temperature: float,
    buf: torch.Tensor,
    exp_buf: Optional[torch.Tensor],
) -> RowStats:
    """`RowStats` `[N]` of one tile `weight [w, H]`, its logits computed into `buf [N, w]` (and
    `exp_buf [N, w]` for the entropy) and reduced in place."""
    columns, inside = target_columns(targets, vocab_start, weight.shape[0])  # [N] each
    z = _logits(hidden, weight, temperature, buf)  # [N, w]
    top = z.amax(dim=1)  # [N]
    pick = z.gather(1, columns[:, None]).squeeze(1)  # [N]
    picked = torch.where(inside, pick, torch.zeros_like(pick))
    z.sub_(top[:, None])  # z - max
    mu = None
    if exp_buf is not None:
        e = torch.exp(z, out=exp_buf)  # [N, w]
        total = e.sum(dim=1)
        mu = top + e.mul_(z).sum(dim=1) / total  # max + sum p (z - max)
    else:
        total = z.exp_().sum(dim=1)
    return RowStats(lse=top + torch.log(total), mu=mu, picked=picked)


def _merge(a: RowStats, b: RowStats) -> RowStats:
    """The statistics `[N]` of two disjoint column slices, merged (`row_stats.merge_row_stats`)."""
    mu = None if a.mu is None else torch.stack([a.mu, b.mu])
    return merge_row_stats(RowStats(lse=torch.stack([a.lse, b.lse]), mu=mu, picked=torch.stack([a.picked, b.picked])))


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
    """`d loss / d logits` `[C, V]` of `hidden [C, H]` over the columns of `weight [V, H]` (ids
    from `vocab_start`), in the accumulation dtype, written into `out`.

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

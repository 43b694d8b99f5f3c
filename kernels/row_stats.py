"""Per-row softmax statistics over a slice of the vocabulary, and how slices combine.

Every `linear_logprob` implementation (chunked torch, fused Triton, vocab-parallel) first
reduces each token's logits `z = h W^T / temperature` over the columns it sees to three
numbers per row, `RowStats`:

* `lse`    = logsumexp_j z_j                       (-inf when the slice is empty)
* `mu`     = sum_j softmax_j(z) z_j                (the mean logit under the slice's softmax)
* `picked` = z_y when the row's target y falls in the slice, else 0

Slices of disjoint columns (a Triton split of the vocabulary, or one tensor-parallel rank's
shard) merge exactly: with w_k = exp(lse_k - max_k lse_k),

    lse = max_k lse_k + log sum_k w_k,   mu = sum_k w_k mu_k / sum_k w_k,   picked = sum_k picked_k

and then `log p(y) = picked - lse` and the entropy is `H = lse - mu`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch


@dataclass(frozen=True)
class RowStats:
    lse: torch.Tensor  # [N] (or [K, N] before merging), fp32/fp64
    mu: Optional[torch.Tensor]  # like lse; None when the entropy was not asked for
    picked: torch.Tensor  # like lse; 0 where the target is outside the slice or ignored


def merge_row_stats(stats: RowStats) -> RowStats:
    """Merge `[K, N]` statistics of K disjoint column slices into `[N]`."""
    top = stats.lse.amax(dim=0)  # [N]
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    weight = torch.exp(stats.lse - top)  # [K, N]; 0 for empty slices
    total = weight.sum(dim=0)  # [N]
    mu = None
    if stats.mu is not None:
        mu_k = torch.where(weight > 0, stats.mu, torch.zeros_like(stats.mu))  # empty slices hold nan/garbage
        mu = (weight * mu_k).sum(dim=0) / total
    return RowStats(lse=top + torch.log(total), mu=mu, picked=stats.picked.sum(dim=0))


def all_reduce_row_stats(stats: RowStats, group: object) -> RowStats:
    """Merge each rank's `[N]` statistics over the ranks of `group` (two all-reduces).

    One MAX all-reduce of `lse` and one SUM all-reduce of `[w, w * mu, picked]` stacked, with
    `w = exp(lse_rank - lse_max)`, whatever the number of tokens or chunks.
    """
    import torch.distributed as dist

    top = stats.lse.clone()
    dist.all_reduce(top, op=dist.ReduceOp.MAX, group=group)
    weight = torch.exp(stats.lse - top)  # [N]
    parts = [weight, stats.picked] if stats.mu is None else [weight, stats.picked, weight * stats.mu]
    packed = torch.stack(parts)  # [2 or 3, N]
    dist.all_reduce(packed, op=dist.ReduceOp.SUM, group=group)
    mu = None if stats.mu is None else packed[2] / packed[0]
    return RowStats(lse=top + torch.log(packed[0]), mu=mu, picked=packed[1])

"""Masked reductions over response-aligned tensors, safe on padding and on empty masks.

`mask` is read as binary: any non-zero entry (bool, int or float) marks a real token. Values
under a zero mask never reach the result, not even as `0 * inf = nan`: they are replaced by 0
with `torch.where` before reducing, so padding may hold any garbage. An empty selection
reduces to 0 (the count is clamped to 1), never to nan.
"""

from __future__ import annotations

from typing import Optional, Union

import torch

Dim = Optional[Union[int, tuple[int, ...]]]


def as_bool_mask(mask: torch.Tensor) -> torch.Tensor:
    """`mask != 0` as a bool tensor (returned as is when already bool)."""
    return mask if mask.dtype == torch.bool else mask != 0


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: Dim = None) -> torch.Tensor:
    """Sum of `x` where `mask` is set; `mask` broadcasts to `x`. dim=None sums everything (0-dim)."""
    keep = as_bool_mask(mask).expand_as(x)
    picked = torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device))
    return picked.sum() if dim is None else picked.sum(dim=dim)


def masked_count(mask: torch.Tensor, dim: Dim = None, *, like: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Number of set entries of `mask` (over `dim`, or all), in `like`'s dtype when given."""
    keep = as_bool_mask(mask)
    if like is not None:
        keep = keep.expand_as(like)
    count = keep.sum() if dim is None else keep.sum(dim=dim)
    return count.to(like.dtype) if like is not None else count


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: Dim = None) -> torch.Tensor:
    """Mean of `x` where `mask` is set, over `dim` (None: over everything, 0-dim result).

    x: any shape; mask: broadcastable to x. Rows (or a whole tensor) with nothing selected give 0.
    """
    total = masked_sum(x, mask, dim)
    count = masked_count(mask, dim, like=x)
    return total / count.clamp(min=1)

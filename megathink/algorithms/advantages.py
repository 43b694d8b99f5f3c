"""Group-relative advantages (GRPO / Thinkless DeGRPO): `A_i = r_i - mean_{j in group(i)} r_j`.

Thinkless uses the centred reward only; `std_normalize=True` divides by `std_group + eps`.
The std is the **unbiased** (Bessel-corrected, divide by n - 1) sample std, as `torch.std`
computes it in the authors' verl code. A group of one has A = 0 (its reward is its own mean)
and, with std_normalize, its std is defined as 0, so no nan appears. This departs from verl,
which gives a lone sample mean 0 and std 1, i.e. A = r: a baseline of 0 is no baseline, and a
lone sample carries no group-relative signal.

Groups are found with `torch.unique` on `group_ids`, so ids may be any integers, in any order,
with groups of unequal size; the reductions are `index_add_` scatters, no Python loop.
"""

from __future__ import annotations

import torch


def group_advantages(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    *,
    std_normalize: bool = False,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Per-sample advantage `[B]`: reward minus its group mean, optionally over (std + eps).

    rewards: [B] (float; integer rewards are cast to the default float dtype);
    group_ids: [B] integer, equal ids = responses to the same prompt.
    """
    if rewards.dim() != 1:
        raise ValueError(f"group_advantages: rewards must be 1-D [B]; got shape {tuple(rewards.shape)}.")
    if group_ids.shape != rewards.shape:
        raise ValueError(
            f"group_advantages: group_ids must have the shape of rewards {tuple(rewards.shape)}; "
            f"got {tuple(group_ids.shape)}."
        )
    if group_ids.dtype.is_floating_point or group_ids.dtype.is_complex or group_ids.dtype == torch.bool:
        raise ValueError(f"group_advantages: group_ids must be an integer tensor; got dtype {group_ids.dtype}.")
    if not eps >= 0:
        raise ValueError(f"group_advantages: eps = {eps!r} is invalid: must be >= 0.")

    dtype = rewards.dtype if rewards.dtype.is_floating_point else torch.get_default_dtype()
    r = rewards.to(dtype)  # [B]
    _, inverse, counts = torch.unique(group_ids, return_inverse=True, return_counts=True)  # [B], [G]
    n = counts.to(dtype)  # [G]
    group_sum = r.new_zeros(counts.shape).index_add_(0, inverse, r)  # [G]
    centred = r - (group_sum / n)[inverse]  # [B]
    if not std_normalize:
        return centred
    group_sq = r.new_zeros(counts.shape).index_add_(0, inverse, centred * centred)  # [G]
    std = (group_sq / (counts - 1).clamp(min=1).to(dtype)).sqrt()  # [G]; 0 for a group of one
    denom = std[inverse] + eps  # [B]
    # eps = 0 and a constant group: 0 / 0 -> 0 (every centred reward of that group is 0).
    safe = torch.where(denom > 0, denom, torch.ones_like(denom))
    return torch.where(denom > 0, centred / safe, torch.zeros_like(centred))

"""The per-token PPO clipped surrogate shared by GRPO and DeGRPO.

    rho[i,t] = exp(logp[i,t] - old_logp[i,t])
    l[i,t]   = max(-A_i * rho[i,t], -A_i * clip(rho[i,t], 1 - eps, 1 + eps))

The max is taken with `torch.where(clipped_branch > unclipped_branch, ...)`: a token is
*clipped* when the clipped branch is strictly larger, and then its gradient is exactly 0
(the ratio lies strictly outside [1 - eps, 1 + eps]). Otherwise the gradient is the
unclipped one, `d l / d logp = -A * rho`. Ties (A = 0, or rho inside the range) count as
unclipped.
"""

from __future__ import annotations

import torch


def clipped_surrogate(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    clip_eps: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token loss `l [B, T]`, clip indicator `[B, T]` (bool) and ratio `rho [B, T]`.

    logp, old_logp: [B, T]; advantages: [B] (one scalar per sequence, broadcast over tokens).
    No masking here: callers pass padding already neutralised.
    """
    ratio = torch.exp(logp - old_logp)  # [B, T]
    adv = advantages[:, None]  # [B, 1]
    unclipped = -adv * ratio  # [B, T]
    clipped = -adv * ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps)  # [B, T]
    is_clipped = clipped > unclipped  # [B, T]
    return torch.where(is_clipped, clipped, unclipped), is_clipped, ratio

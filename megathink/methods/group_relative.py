"""What GRPO and DeGRPO share: Thinkless rewards and group-relative advantages.

Rewards: the Thinkless table (`reward.correct_short`, `reward.gamma`, `reward.wrong`: short and
correct 1, think and correct 1 - gamma, otherwise -1) from each response's mode (its first
token) and correctness (then the `reward.*` shaping). Advantages: `A_i = r_i - mean_group(r)`,
divided by the group's std with `algorithm.std_normalize` (ALGORITHMS.md section 1), or by the
std of all the batch's centred advantages with `algorithm.batch_std_normalize` (DLER's
batch-level normalisation). The losses differ (grpo.py, degrpo.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from megathink.algorithms import group_advantages
from megathink.config.algorithm import AlgorithmConfig
from megathink.config.validation import fail
from megathink.methods.base import RLMethod, Rollouts
from megathink.rewards import thinkless_rewards


@dataclass(kw_only=True)
class GroupRelativeConfig(AlgorithmConfig):
    std_normalize: bool = False
    """Divide group-relative advantages by the group std (+1e-6); Thinkless does not."""

    batch_std_normalize: bool = False
    """Divide group-relative advantages by their std over the whole batch (+1e-6): DLER's
    batch-level normalisation (pair with reward.truncate_tokens). Excludes std_normalize."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.std_normalize, bool):
            fail("algorithm.std_normalize", self.std_normalize, "must be true or false")
        if not isinstance(self.batch_std_normalize, bool):
            fail("algorithm.batch_std_normalize", self.batch_std_normalize, "must be true or false")
        if self.std_normalize and self.batch_std_normalize:
            fail("algorithm.batch_std_normalize", True, "cannot be combined with algorithm.std_normalize=true")


class GroupRelativeMethod(RLMethod):
    """Thinkless rewards, group-relative advantages; subclasses give the loss."""

    cfg: GroupRelativeConfig

    def rewards(self, rollouts: Rollouts) -> list[float]:
        judged = rollouts.judged
        return thinkless_rewards([j.mode for j in judged], [j.correct for j in judged], self.ctx.run.reward)

    def advantages(self, rollouts: Rollouts, rewards: torch.Tensor) -> torch.Tensor:
        group_ids = torch.tensor([s.group_id for s in rollouts.samples])
        advantages = group_advantages(rewards, group_ids, std_normalize=self.cfg.std_normalize)  # [B]
        if self.cfg.batch_std_normalize and advantages.numel() > 1:
            advantages = advantages / (advantages.std() + 1e-6)
        return advantages


__all__ = ["GroupRelativeConfig", "GroupRelativeMethod"]

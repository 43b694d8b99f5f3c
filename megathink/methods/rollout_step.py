"""One RL step's rollouts, graded, with their rewards and advantages, for any method.

    arms = method.arms(params)                       # the method's rollout plan
    samples = sample_arms(engine, prompts, arms)     # every arm over every prompt
    judged = judge_samples(...)                      # mode and correctness per sample
    r = method.rewards(...)                          # per-sample rewards
    r = shaping.apply(r, ...)                        # reward.* terms and guards (rewards/shaping.py)
    A = method.advantages(..., r)                    # per sample, group or batch

The loop runs this on rank 0 and broadcasts the result (`trainer.ranks`). Shaping lengths are
response tokens (a forced opener included); HAPO keys its history by the prompt's id; L1 reads
a prompt's budget from its record (`budget`, set by effort levels), None where it has none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import torch

from megathink.data.rl_prompts import RLRecord
from megathink.data.types import prompt_id
from megathink.evaluation.batch_graders import GradeFn
from megathink.evaluation.policy_eval import judge_samples
from megathink.methods.base import RLMethod, Rollouts
from megathink.methods.rollout_plan import sample_arms
from megathink.rewards.shaping import RewardShaping, ShapingInputs
from megathink.rollout.protocol import RolloutEngine
from megathink.rollout.types import SamplingParams


@dataclass
class GradedRollout:
    """What the update and the metrics need from one step's rollouts."""

    rollouts: Rollouts
    rewards: list[float]
    """[B] the shaped rewards the advantages were computed from."""
    advantages: torch.Tensor
    """[B] float32."""
    control_advantages: Optional[torch.Tensor]
    """[B] float32, the first response token's own advantage (methods that train the mode choice
    apart), else None."""
    metrics: dict[str, float]
    """The shaping terms' own metrics."""


def graded_rollout(
    method: RLMethod,
    engine: RolloutEngine,
    prompts: Sequence[list[int]],
    records: Sequence[RLRecord],
    params: SamplingParams,
    grade: GradeFn,
    shaping: Optional[RewardShaping] = None,
    progress: float = 0.0,
) -> GradedRollout:
    """Sample `method`'s plan over `prompts` (group id = index into `records`), grade, reward,
    shape (`progress` = step / max_steps, for the guards that decay), advantage."""
    sampled = sample_arms(engine, prompts, method.arms(params), params)
    judged = judge_samples(sampled.samples, records, method.ctx.bundle, grade, template=method.judge_template)
    rollouts = Rollouts(sampled.samples, judged, records, sampled.arm, sampled.opener_prob)
    rewards = torch.tensor(method.rewards(rollouts), dtype=torch.float32)  # [B]
    metrics: dict[str, float] = {}
    if shaping is not None and shaping.cfg.shaping_on:
        shaped, metrics = shaping.apply(rewards.tolist(), shaping_inputs(rollouts), progress)
        rewards = torch.tensor(shaped, dtype=torch.float32)
    advantages = method.advantages(rollouts, rewards).to(torch.float32)
    control = method.control_advantages(rollouts, rewards)
    control = None if control is None else control.to(torch.float32)
    return GradedRollout(rollouts, rewards.tolist(), advantages, control, metrics)


def shaping_inputs(rollouts: Rollouts) -> ShapingInputs:
    """What the shaping terms read from one step's rollouts."""
    records = rollouts.records
    groups = [s.group_id for s in rollouts.samples]
    return ShapingInputs(
        lengths=[len(s.response_ids) for s in rollouts.samples],
        correct=[j.correct for j in rollouts.judged],
        modes=[j.mode for j in rollouts.judged],
        groups=groups,
        prompts=[prompt_id(records[g].problem) for g in groups],
        budgets=[getattr(records[g], "budget", None) for g in groups],
    )


__all__ = ["GradedRollout", "graded_rollout", "shaping_inputs"]

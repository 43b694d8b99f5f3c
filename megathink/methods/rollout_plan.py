"""A method's rollout plan: the sampling arms of each prompt's group, and running them.

`RolloutArm(count, forced_prefix, max_new_tokens, proposal_prob, tag)`: `count` samples per
prompt that all open with the tokens `forced_prefix` (nothing forced when empty), capped at
`max_new_tokens` (None: the step's `params.max_new_tokens`). `proposal_prob` is the
importance-sampling probability pi_IS of the forced opener (AdaptThink: the share of the group
the arm got); None where the arm's samples are the policy's own (no importance weight).

`split_group(n, share)` splits a group of n between two forced arms (AdaptThink's NoThinking /
Thinking openers, both-mode groups' short / think). `sample_arms(engine, prompts, arms, params)`
runs every arm over every prompt (group id =
prompt index) and returns the samples in arm order, each sample's arm index and its opener
probability (1 where none). A plan of one free arm is one `generate` call with `params`
unchanged; with several arms, arm i samples with seed `sequence_seed(params.seed, i, 1)`, so
the samples are the same however the engine batches them (the seeds AdaptThink's two forced
halves always used).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Optional

import torch

from megathink.rollout.protocol import RolloutEngine
from megathink.rollout.rng import sequence_seed
from megathink.rollout.types import RolloutRequest, Sample, SamplingParams


@dataclass(frozen=True)
class RolloutArm:
    """One kind of sample in every prompt's group (see the module doc)."""

    count: int
    forced_prefix: tuple[int, ...] = ()
    max_new_tokens: Optional[int] = None
    proposal_prob: Optional[float] = None
    tag: str = "free"

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"RolloutArm.count = {self.count} is invalid: an arm samples at least once per prompt.")
        if self.proposal_prob is not None and not 0.0 < self.proposal_prob <= 1.0:
            raise ValueError(f"RolloutArm.proposal_prob = {self.proposal_prob!r} is invalid: must be in (0, 1].")


@dataclass
class ArmSamples:
    """The samples of a plan, in arm order, with their arm index `[B]` and opener probability `[B]`."""

    samples: list[Sample]
    arm: torch.Tensor  # [B] long
    opener_prob: torch.Tensor  # [B] float32, 1 where nothing importance-weighted was forced


def sample_arms(
    engine: RolloutEngine, prompts: Sequence[list[int]], arms: Sequence[RolloutArm], params: SamplingParams
) -> ArmSamples:
    """Run every arm over every prompt (see the module doc)."""
    if not arms:
        raise ValueError("sample_arms: a rollout plan needs at least one arm.")
    samples: list[Sample] = []
    arm_of: list[int] = []
    prob: list[float] = []
    for index, arm in enumerate(arms):
        requests = [
            RolloutRequest(ids, group_id=g, forced_prefix=list(arm.forced_prefix), max_new_tokens=arm.max_new_tokens)
            for g, ids in enumerate(prompts)
        ]
        arm_params = replace(params, n=arm.count)
        if len(arms) > 1:
            arm_params = replace(arm_params, seed=sequence_seed(params.seed, index, 1))
        got = engine.generate(requests, arm_params)
        samples += got
        arm_of += [index] * len(got)
        prob += [1.0 if arm.proposal_prob is None else arm.proposal_prob] * len(got)
    return ArmSamples(samples, torch.tensor(arm_of, dtype=torch.long), torch.tensor(prob, dtype=torch.float32))


def split_group(n: int, share: float, *, what: str) -> int:
    """How many of a group's `n` samples the first of two forced arms gets: round(n * share), kept
    in [1, n - 1] so each arm has a sample. `what` names the method in the error (n < 2)."""
    if n < 2:
        from megathink.errors import ConfigError

        raise ConfigError(
            f"rollout.n_samples = {n} is invalid with {what}: each prompt needs a sample of each forced arm; use >= 2."
        )
    return min(max(round(n * share), 1), n - 1)


__all__ = ["ArmSamples", "RolloutArm", "sample_arms", "split_group"]

"""The RL stage: rollout batch shape, updates per rollout step, and its optimizer.

One RL step samples `rollout.n_samples` responses for each of `prompts_per_step` prompts,
grades them, and takes `mini_batches` optimizer steps over that rollout batch (the authors of
Thinkless: 128 prompts x 8 samples, 2 optimizer steps per rollout step).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from megathink.config.optimizer import OptimizerConfig
from megathink.config.validation import ConfigError, check_int


def _rl_optimizer() -> OptimizerConfig:
    # Thinkless RL (1.5B): lr 1e-6 constant, AdamW (0.9, 0.95), weight decay 0.01, clip 1.0.
    return OptimizerConfig(
        lr=1e-6, min_lr=1e-6, schedule="constant", warmup_ratio=0.0, betas=[0.9, 0.95], weight_decay=0.01
    )


@dataclass(kw_only=True)
class RLConfig:
    max_steps: int = 300
    """Rollout steps to run."""

    prompts_per_step: int = 128
    """Prompts sampled per rollout step; each gets rollout.n_samples responses."""

    mini_batches: int = 2
    """Optimizer steps per rollout step: the rollout batch is split into this many parts
    (whole groups stay together)."""

    micro_batch_size: int = 16
    """Sequences per forward/backward pass; gradients accumulate over a mini-batch."""

    filter_zero_advantage: bool = False
    """Drop groups whose advantages are all zero (every sample got the same reward) before the
    update; kept by default, as in the papers."""

    eval_every: int = 0
    """Evaluate the policy every this many rollout steps; 0 evaluates only before and after."""

    optimizer: OptimizerConfig = field(default_factory=_rl_optimizer)
    """AdamW and the schedule of this stage (defaults: the Thinkless 1.5B RL recipe)."""

    def __post_init__(self) -> None:
        check_int("rl.max_steps", self.max_steps, low=1)
        check_int("rl.prompts_per_step", self.prompts_per_step, low=1)
        check_int("rl.mini_batches", self.mini_batches, low=1)
        check_int("rl.micro_batch_size", self.micro_batch_size, low=1)
        check_int("rl.eval_every", self.eval_every, low=0)
        if self.mini_batches > self.prompts_per_step:
            raise ConfigError(
                f"rl.mini_batches = {self.mini_batches} is invalid: more than rl.prompts_per_step "
                f"({self.prompts_per_step}); each mini-batch needs at least one prompt's group."
            )
        if self.eval_every > self.max_steps:
            raise ConfigError(
                f"rl.eval_every = {self.eval_every} is invalid: larger than rl.max_steps ({self.max_steps}); "
                "use 0 to evaluate only before and after."
            )

"""The RL stage: rollout batch shape, updates per rollout step, and its optimizer.

One RL step samples `rollout.n_samples` responses for each of `prompts_per_step` prompts,
grades them, and takes `mini_batches` optimizer steps over that rollout batch (the authors of
Thinkless: 128 prompts x 8 samples, 2 optimizer steps per rollout step).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from megathink.config.optimizer import OptimizerConfig
from megathink.config.validation import ConfigError, check_choice, check_int

LOSS_NORMALIZATIONS = ("mini_batch", "micro_batch")


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
    """Sequences per forward/backward pass; gradients accumulate over a mini-batch. Ignored when
    max_tokens_per_micro_batch > 0."""

    max_tokens_per_micro_batch: int = 0
    """Token budget of a forward/backward pass: when > 0, micro-batches are built by token count
    (each sequence's real prompt + response length) instead of by sequence count, balanced
    (Karmarkar-Karp) so they hold about the same number of tokens, and over the data-parallel
    replicas so each gets the same number of micro-batches; each is padded only to its own
    longest row (HF backend) or packed (megatron, which then needs parallel.pack_sequences).
    A sequence longer than the budget gets a micro-batch of its own. 0: fixed
    rl.micro_batch_size sequences per micro-batch."""

    loss_normalization: str = "mini_batch"
    """Denominators of the loss's token and sequence means: 'mini_batch' (default) counts over
    the whole mini-batch (every micro-batch, every data-parallel replica), so the optimizer step
    is the same for any micro-batch size, token budget or parallel layout; 'micro_batch' is the
    authors' (verl's) behaviour, reproduced exactly: each micro-batch normalised by its own
    counts and weighted by its share of the mini-batch's sequences."""

    park_reference: bool = True
    """With algorithm.kl_coef > 0: keep the frozen KL reference model in host memory and move it to
    the trainer's device only for its scoring pass each step (trainer/parked_reference.py), so
    it takes no GPU memory at the update's peak; false keeps it on the device (saves one
    host-to-device copy of its weights per step)."""

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
        check_int("rl.max_tokens_per_micro_batch", self.max_tokens_per_micro_batch, low=0)
        check_choice("rl.loss_normalization", self.loss_normalization, LOSS_NORMALIZATIONS)
        if not isinstance(self.park_reference, bool):
            raise ConfigError(f"rl.park_reference = {self.park_reference!r} is invalid: must be true or false.")
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

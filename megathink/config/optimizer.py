"""AdamW with linear warm-up and a cosine or constant schedule, and gradient clipping."""

from __future__ import annotations

from dataclasses import dataclass, field

from megathink.config.validation import ConfigError, check_choice, check_float

SCHEDULES = ("cosine", "constant")


@dataclass(kw_only=True)
class OptimizerConfig:
    lr: float = 1e-5
    """Peak learning rate (after warm-up)."""

    min_lr: float = 1e-6
    """Floor the cosine schedule decays to; ignored by the constant schedule."""

    schedule: str = "cosine"
    """'cosine' (decay to min_lr at the last step) or 'constant' (after warm-up)."""

    warmup_ratio: float = 0.05
    """Share of the total steps spent ramping the learning rate linearly from 0."""

    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    """AdamW (beta1, beta2)."""

    eps: float = 1e-8
    """AdamW epsilon."""

    weight_decay: float = 0.1
    """Decoupled weight decay (not applied to biases and norm weights)."""

    grad_clip: float = 1.0
    """Clip the global gradient norm to this value; 0 disables clipping."""

    def __post_init__(self) -> None:
        check_float("optimizer.lr", self.lr, low=0.0, high=1.0, low_inclusive=False)
        check_float("optimizer.min_lr", self.min_lr, low=0.0)
        if self.min_lr > self.lr:
            raise ConfigError(
                f"optimizer.min_lr = {self.min_lr!r} is invalid: must not exceed optimizer.lr ({self.lr!r})."
            )
        check_choice("optimizer.schedule", self.schedule, SCHEDULES)
        check_float("optimizer.warmup_ratio", self.warmup_ratio, low=0.0, high=1.0, high_inclusive=False)
        if len(self.betas) != 2:
            raise ConfigError(f"optimizer.betas = {list(self.betas)!r} is invalid: give two numbers [beta1, beta2].")
        for beta in self.betas:
            check_float("optimizer.betas[*]", beta, low=0.0, high=1.0, high_inclusive=False)
        self.betas = [float(b) for b in self.betas]
        check_float("optimizer.eps", self.eps, low=0.0, low_inclusive=False)
        check_float("optimizer.weight_decay", self.weight_decay, low=0.0)
        check_float("optimizer.grad_clip", self.grad_clip, low=0.0)

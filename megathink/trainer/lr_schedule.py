"""Learning-rate schedule: linear warm-up, then cosine decay to `min_lr` or a constant rate.

`lr_multiplier(step, ...)` is the factor applied to the peak `optimizer.lr` before optimizer
step `step` (0-based), in the form `torch.optim.lr_scheduler.LambdaLR` expects. Warm-up ramps
as (step + 1) / warmup_steps, so the very first step already moves the weights; the cosine
reaches exactly `min_lr` at the last step (`total_steps - 1`), as in the Thinkless SFT recipe
(1e-5 cosine to 1e-6 with 5% warm-up).

The scheduler built here holds a closure, so a checkpoint stores only its step counter and a
resumed run recomputes the schedule from the config (raising `sft.max_steps` / `rl.max_steps` on resume
stretches the schedule instead of silently keeping the old one).
"""

from __future__ import annotations

import math

import torch

from megathink.config.optimizer import OptimizerConfig


def warmup_steps_for(cfg: OptimizerConfig, total_steps: int) -> int:
    """Number of warm-up steps: round(warmup_ratio * total_steps)."""
    return int(round(cfg.warmup_ratio * total_steps))


def lr_multiplier(step: int, *, total_steps: int, warmup_steps: int, schedule: str, min_ratio: float) -> float:
    """Factor of the peak learning rate at optimizer step `step` (0-based)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    decay_steps = max(1, total_steps - 1 - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: OptimizerConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR over `total_steps` optimizer steps with the schedule of `cfg`."""
    warmup = warmup_steps_for(cfg, total_steps)
    min_ratio = cfg.min_lr / cfg.lr

    def multiplier(step: int) -> float:
        return lr_multiplier(
            step, total_steps=total_steps, warmup_steps=warmup, schedule=cfg.schedule, min_ratio=min_ratio
        )

    return torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)

"""Runtime settings shared by every stage: device, seed, threads, logging cadence, time limit.

How long each stage runs and with which batch sizes and optimizer lives in the stage's own
section (`sft`, `rl`), so one run can warm up with SFT and then do RL with its own settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from megathink.config.validation import check_choice, check_float, check_int

DEVICES = ("auto", "cpu", "cuda")


@dataclass(kw_only=True)
class TrainerConfig:
    device: str = "auto"
    """'auto' (CUDA when available, else CPU), 'cpu' or 'cuda'."""

    seed: int = 0
    """Seed for model initialisation, dropout and sampling."""

    num_threads: int = 0
    """torch CPU threads; 0 keeps torch's default."""

    log_every: int = 10
    """Write metrics every this many optimizer steps (SFT) or rollout steps (RL)."""

    max_time_minutes: float = 0.0
    """Stop a stage early (with a checkpoint, eval and HF export) after this much wall time of
    the current process; 0 means no time limit."""

    dist_timeout_minutes: float = 30.0
    """Deadline of every collective of a torchrun (megatron) job: the process group and megatron's
    groups are created with it. Ranks wait this long for rank 0's rollouts and evaluations (which
    run on rank 0 alone); past it they stop with an error naming this field. Raise it above the
    longest evaluation (e.g. 120 for MATH-500 at 16K tokens on rank 0's model)."""

    def __post_init__(self) -> None:
        check_choice("trainer.device", self.device, DEVICES)
        check_int("trainer.seed", self.seed, low=0)
        check_int("trainer.num_threads", self.num_threads, low=0)
        check_int("trainer.log_every", self.log_every, low=1)
        check_float("trainer.max_time_minutes", self.max_time_minutes, low=0.0)
        check_float("trainer.dist_timeout_minutes", self.dist_timeout_minutes, low=0.0, low_inclusive=False)

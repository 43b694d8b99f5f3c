"""The Thinkless reward table and grading limits (ALGORITHMS.md section 1)."""

from __future__ import annotations

from dataclasses import dataclass

from megathink.config.validation import ConfigError, check_float, check_int


@dataclass(kw_only=True)
class RewardConfig:
    correct_short: float = 1.0
    """Reward of a correct answer in short mode."""

    gamma: float = 0.5
    """Think-mode penalty: a correct answer in think mode earns correct_short - gamma."""

    wrong: float = -1.0
    """Reward of a wrong, unparsable or control-token-less answer."""

    grade_timeout_s: float = 5.0
    """Time budget for grading one answer; a slower one counts as wrong."""

    grade_workers: int = 2
    """Worker processes that grade answers."""

    grade_memory_mb: int = 1024
    """Address-space cap of a grading worker, in MiB."""

    def __post_init__(self) -> None:
        check_float("reward.correct_short", self.correct_short)
        check_float("reward.gamma", self.gamma, low=0.0)
        check_float("reward.wrong", self.wrong)
        if self.wrong >= self.correct_short - self.gamma:
            raise ConfigError(
                f"reward.wrong = {self.wrong!r} is invalid: must be below the correct-think reward "
                f"correct_short - gamma = {self.correct_short - self.gamma!r}, or wrong answers would pay."
            )
        check_float("reward.grade_timeout_s", self.grade_timeout_s, low=0.0, high=600.0, low_inclusive=False)
        check_int("reward.grade_workers", self.grade_workers, low=1)
        check_int("reward.grade_memory_mb", self.grade_memory_mb, low=64)

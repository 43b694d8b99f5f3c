"""Held-out evaluation: each mode forced in turn, per difficulty level."""

from __future__ import annotations

from dataclasses import dataclass

from megathink.config.validation import check_float, check_int


@dataclass(kw_only=True)
class EvalConfig:
    max_new_tokens: int = 128
    """Cap on generated tokens per evaluation answer."""

    temperature: float = 0.0
    """Evaluation sampling temperature; 0 is greedy."""

    batch_size: int = 256
    """Sequences generated together."""

    def __post_init__(self) -> None:
        check_int("eval.max_new_tokens", self.max_new_tokens, low=1)
        check_float("eval.temperature", self.temperature, low=0.0, high=10.0)
        check_int("eval.batch_size", self.batch_size, low=1)

"""Sampling settings of the rollout engine (and of evaluation, which samples the same way)."""

from __future__ import annotations

from dataclasses import dataclass

from megathink.config.validation import check_choice, check_float, check_int

ENGINES = ("local",)


@dataclass(kw_only=True)
class RolloutConfig:
    engine: str = "local"
    """'local': batched sampling from the policy in this process."""

    temperature: float = 0.6
    """Sampling temperature; log-probs for the loss are computed at the same temperature.
    0 means greedy decoding."""

    top_p: float = 1.0
    """Nucleus sampling mass in (0, 1]; 1 disables it."""

    top_k: int = 0
    """Keep only the k most likely tokens; 0 disables it."""

    n_samples: int = 8
    """Responses sampled per prompt (the group size of GRPO/DeGRPO)."""

    max_new_tokens: int = 256
    """Cap on generated tokens per response."""

    batch_size: int = 256
    """Sequences generated together in one batch."""

    def __post_init__(self) -> None:
        check_choice("rollout.engine", self.engine, ENGINES)
        check_float("rollout.temperature", self.temperature, low=0.0, high=10.0)
        check_float("rollout.top_p", self.top_p, low=0.0, high=1.0, low_inclusive=False)
        check_int("rollout.top_k", self.top_k, low=0)
        check_int("rollout.n_samples", self.n_samples, low=1)
        check_int("rollout.max_new_tokens", self.max_new_tokens, low=1)
        check_int("rollout.batch_size", self.batch_size, low=1)

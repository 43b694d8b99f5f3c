"""`RewardShaping`: the `reward.*` shaping terms and guards applied to any method's rewards.

Order, on the method's per-sample rewards r (GRPO/DeGRPO: the Thinkless table; AdaptThink: R):

    r += kimi_length_coef * kimi + hapo_coef * hapo + autothink_length_coef * z-term   (terms)
    r += l1 'exact' term;  r *= l1 'max' factor where r > 0                          (budgets)
    r  = 0 where the response is longer than truncate_tokens                         (DLER)
    r *= Ada-GRPO scale;  r = AutoThink balance(r)                                    (guards)

so a truncated response's reward stays 0 whatever its length terms, and the guards see the
final reward. Lengths are response tokens (forced openers included, the prompt excluded). The
HAPO history is the one piece of state: `state_dict` / `load_state_dict`, saved in every RL
checkpoint. `metrics` report the mean of each active term. No torch: plain lists.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from megathink.config.reward import RewardConfig
from megathink.rewards.length_shaping import (
    HapoHistory,
    kimi_length_terms,
    l1_exact_terms,
    l1_max_factors,
    truncate_over,
)
from megathink.rewards.mode_balance import ada_grpo_scales, autothink_balance, autothink_length_terms


@dataclass
class ShapingInputs:
    """Per-response facts the terms need (one entry per response, batch order)."""

    lengths: Sequence[int]
    correct: Sequence[bool]
    modes: Sequence[str]
    groups: Sequence[Hashable]
    """The prompt of each response within the step (responses of a prompt form a group)."""

    prompts: Sequence[str]
    """A stable id of each response's prompt across steps (HAPO's history key)."""

    budgets: Sequence[Optional[int]]
    """The token budget the prompt states (L1), None where it states none."""


class RewardShaping:
    """The shaping of `cfg` (module doc); `apply` is the identity when everything is off."""

    def __init__(self, cfg: RewardConfig) -> None:
        self.cfg = cfg
        self.hapo = HapoHistory()

    def apply(self, rewards: Sequence[float], x: ShapingInputs, progress: float) -> tuple[list[float], dict[str, float]]:
        """(shaped rewards, the mean of each active term); `progress` = step / max_steps in [0, 1]."""
        cfg = self.cfg
        out = [float(r) for r in rewards]
        metrics: dict[str, float] = {}
        if not out:
            return out, metrics

        def add(name: str, coef: float, terms: list[float]) -> None:
            for i, term in enumerate(terms):
                out[i] += coef * term
            metrics[f"shaping/{name}"] = sum(terms) / len(terms)

        if cfg.kimi_length_coef:
            add("kimi_length", cfg.kimi_length_coef, kimi_length_terms(x.lengths, x.correct, x.groups))
        if cfg.hapo_coef:
            add("hapo", cfg.hapo_coef, self.hapo.terms(x.lengths, x.correct, x.prompts))
        if cfg.autothink_length_coef:
            add("autothink_length", cfg.autothink_length_coef, autothink_length_terms(x.lengths, x.correct, x.groups))
        if cfg.l1_mode == "exact":
            add("l1_exact", 1.0, l1_exact_terms(x.lengths, x.budgets, cfg.l1_alpha))
        elif cfg.l1_mode in ("max", "max_sigmoid"):
            factors = l1_max_factors(
                x.lengths, x.budgets, cfg.l1_alpha, delta=cfg.l1_delta, smooth=cfg.l1_mode == "max_sigmoid"
            )
            out = [r * f if r > 0 else r for r, f in zip(out, factors)]
            metrics["shaping/l1_factor"] = sum(factors) / len(factors)
        if cfg.truncate_tokens:
            over = [length > cfg.truncate_tokens for length in x.lengths]
            out = truncate_over(out, x.lengths, cfg.truncate_tokens)
            metrics["shaping/truncated"] = sum(over) / len(over)
        if cfg.ada_grpo:
            scales = ada_grpo_scales(x.modes, x.groups, progress)
            out = [r * s for r, s in zip(out, scales)]
            metrics["shaping/ada_grpo_scale"] = sum(scales) / len(scales)
        if cfg.autothink_balance:
            out = autothink_balance(out, x.modes, x.correct)
        return out, metrics

    def state_dict(self) -> dict[str, Any]:
        return {"hapo": self.hapo.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.hapo.load_state_dict(state.get("hapo", {}))


__all__ = ["RewardShaping", "ShapingInputs"]

"""The Thinkless reward table, the composable reward-shaping terms, and grading limits.

The table (ALGORITHMS.md section 1) is what GRPO and DeGRPO reward; AdaptThink rewards
1[correct]. The shaping fields switch on terms that compose with any method's reward
(rewards/length_shaping.py, rewards/mode_balance.py; applied by rewards/shaping.py): length
terms with their coefficients, LCPO-Max's budget factor, DLER's truncation, and the mode-collapse
guards. All are off by default, so the papers' rewards are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

from megathink.config.validation import ConfigError, check_choice, check_float, check_int, fail

L1_MODES = ("off", "exact", "max", "max_sigmoid")


@dataclass(kw_only=True)
class RewardConfig:
    correct_short: float = 1.0
    """Reward of a correct answer in short mode."""

    gamma: float = 0.5
    """Think-mode penalty: a correct answer in think mode earns correct_short - gamma."""

    wrong: float = -1.0
    """Reward of a wrong, unparsable or control-token-less answer."""

    kimi_length_coef: float = 0.0
    """Kimi k1.5's group length reward, added with this weight: 0.5 - (L - L_min) / (L_max - L_min)
    within the prompt's group for a correct response, min(0, that) for a wrong one. 0: off."""

    l1_mode: str = "off"
    """L1's budget reward (the prompt states a token budget N, data.effort_levels): 'exact' adds
    -l1_alpha * |N - L|; 'max' multiplies positive rewards by clip(l1_alpha (N - L) + l1_delta, 0, 1);
    'max_sigmoid' by sigmoid(l1_alpha (N - L)); 'off'. Prompts without a budget are unaffected."""

    l1_alpha: float = 0.0003
    """L1's length weight alpha (per token)."""

    l1_delta: float = 0.5
    """LCPO-Max's offset: the factor at exactly the budget ('max')."""

    truncate_tokens: int = 0
    """DLER's truncation: a response longer than this many tokens gets reward 0 (pair with
    algorithm.batch_std_normalize for DLER's batch-level advantage normalisation). 0: off."""

    hapo_coef: float = 0.0
    """HAPO's history length reward, added with this weight: per prompt the shortest correct
    length h seen so far, cos(pi/2 L / h) for L < 2h else -1, at least -0.7 when correct, at most
    0 when wrong, 0 while no correct answer is known (the history is checkpointed). 0: off."""

    ada_grpo: bool = False
    """ARM's Ada-GRPO: scale each reward by 1 + 0.5 (G / F - 1)(1 + cos(pi t / T)), F the count of
    the response's mode in its group of G, t / T the training progress (rare modes up early)."""

    autothink_balance: bool = False
    """AutoThink's batch balance: when think (no-think) responses are a share rho > 0.5 of the
    batch, their rewards move towards 0 / -1 (correct / wrong) by s = clip(2 (rho - 0.5), 0, 1)."""

    autothink_length_coef: float = 0.0
    """AutoThink's stage-3 length term with this weight: -z for a correct response, +z for a wrong
    one, z its length's z-score within its group. 0: off."""

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
        check_float("reward.kimi_length_coef", self.kimi_length_coef, low=0.0)
        check_choice("reward.l1_mode", self.l1_mode, L1_MODES)
        check_float("reward.l1_alpha", self.l1_alpha, low=0.0)
        check_float("reward.l1_delta", self.l1_delta, low=0.0, high=1.0)
        check_int("reward.truncate_tokens", self.truncate_tokens, low=0)
        check_float("reward.hapo_coef", self.hapo_coef, low=0.0)
        for name in ("ada_grpo", "autothink_balance"):
            if not isinstance(getattr(self, name), bool):
                fail(f"reward.{name}", getattr(self, name), "must be true or false")
        check_float("reward.autothink_length_coef", self.autothink_length_coef, low=0.0)
        check_float("reward.grade_timeout_s", self.grade_timeout_s, low=0.0, high=600.0, low_inclusive=False)
        check_int("reward.grade_workers", self.grade_workers, low=1)
        check_int("reward.grade_memory_mb", self.grade_memory_mb, low=64)

    @property
    def shaping_on(self) -> bool:
        """Whether any shaping term or guard is on."""
        return bool(
            self.kimi_length_coef or self.l1_mode != "off" or self.truncate_tokens or self.hapo_coef
            or self.ada_grpo or self.autothink_balance or self.autothink_length_coef
        )

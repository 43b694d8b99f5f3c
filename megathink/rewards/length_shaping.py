"""Length-shaping reward terms, each a small function composable with any method's reward.

Lengths are response tokens (the prompt excluded). `groups[i]` is the prompt of response i
(responses with the same id form a group). Plain lists of floats, no torch (see __init__).

* `kimi_length_terms` (Kimi k1.5, arXiv 2501.12599): within a group with lengths L_min..L_max,
  `lambda_i = 0.5 - (L_i - L_min) / (L_max - L_min)` (0 when every length is equal); the term
  is `lambda_i` for a correct response and `min(0, lambda_i)` for a wrong one (a short wrong
  answer is not rewarded for being short).
* `l1_exact_terms` (L1 / LCPO-Exact, arXiv 2503.04697): `-alpha * |N_i - L_i|` with N_i the
  token budget stated in the prompt (no term for a prompt without one); with the base reward
  1[correct] this is the paper's `r = 1[correct] - alpha |N - L|`.
* `l1_max_factors` (LCPO-Max): a factor for positive rewards, `clip(alpha (N - L) + delta, 0, 1)`
  ('max', the paper's form; delta = 0.5 in the paper) or `sigmoid(alpha (N - L))` ('max_sigmoid',
  a smooth form, 0.5 at the budget): over-budget answers keep less of their reward.
* `truncate_over` (DLER): responses longer than the cap get reward 0; DLER
  pairs it with batch-level advantage normalisation (`algorithm.batch_std_normalize`).
* `HapoHistory.terms` (HAPO, history-aware policy optimisation): per prompt q the shortest correct
  length h_q seen so far (kept across steps, checkpointed); `f = cos(pi/2 * L / h_q)` for
  L < 2 h_q, else -1; the term is `max(f, -0.7)` for a correct response, `min(f, 0)` for a
  wrong one, and 0 while h_q is unknown (no correct answer to q yet). The history is updated
  with the step's correct answers *after* their terms are computed.

Departures: the papers use these as the whole reward with their own base terms; here each is
an additive term (or factor) with a coefficient (`reward.*`), so it composes with Thinkless's
mode table or AdaptThink's R.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any, Optional

from megathink.errors import DataError

HAPO_CORRECT_FLOOR = -0.7
"""HAPO's lowest length term of a correct response (a long correct answer beats a wrong one)."""


def _check_lengths(name: str, n: int, **columns: Sequence[Any]) -> None:
    for key, column in columns.items():
        if len(column) != n:
            raise DataError(f"{name}: got {n} lengths but {len(column)} {key}: pass one per response.")


def _groups(groups: Sequence[Hashable]) -> dict[Hashable, list[int]]:
    out: dict[Hashable, list[int]] = {}
    for index, group in enumerate(groups):
        out.setdefault(group, []).append(index)
    return out


def kimi_length_terms(lengths: Sequence[int], correct: Sequence[bool], groups: Sequence[Hashable]) -> list[float]:
    """Kimi k1.5's group length reward of each response (see the module doc)."""
    _check_lengths("kimi_length_terms", len(lengths), correct=correct, groups=groups)
    terms = [0.0] * len(lengths)
    for members in _groups(groups).values():
        low = min(lengths[i] for i in members)
        high = max(lengths[i] for i in members)
        for i in members:
            value = 0.5 - (lengths[i] - low) / (high - low) if high > low else 0.0
            terms[i] = value if correct[i] else min(0.0, value)
    return terms


def l1_exact_terms(lengths: Sequence[int], budgets: Sequence[Optional[int]], alpha: float) -> list[float]:
    """`-alpha * |N - L|` per response (0 where the prompt states no budget N)."""
    _check_lengths("l1_exact_terms", len(lengths), budgets=budgets)
    return [0.0 if budget is None else -alpha * abs(budget - length) for length, budget in zip(lengths, budgets)]


def l1_max_factors(
    lengths: Sequence[int], budgets: Sequence[Optional[int]], alpha: float, *, delta: float = 0.5, smooth: bool = False
) -> list[float]:
    """LCPO-Max's factor on a positive reward: clip(alpha (N - L) + delta, 0, 1), or sigmoid(alpha (N - L))."""
    _check_lengths("l1_max_factors", len(lengths), budgets=budgets)
    out = []
    for length, budget in zip(lengths, budgets):
        if budget is None:
            out.append(1.0)
        elif smooth:
            out.append(1.0 / (1.0 + math.exp(-max(min(alpha * (budget - length), 60.0), -60.0))))
        else:
            out.append(min(max(alpha * (budget - length) + delta, 0.0), 1.0))
    return out


def truncate_over(rewards: Sequence[float], lengths: Sequence[int], cap: int) -> list[float]:
    """DLER's truncation: the reward of a response longer than `cap` tokens becomes 0."""
    _check_lengths("truncate_over", len(lengths), rewards=rewards)
    return [0.0 if length > cap else float(reward) for reward, length in zip(rewards, lengths)]


class HapoHistory:
    """HAPO's per-prompt history h_q: the shortest correct response length seen so far."""

    def __init__(self) -> None:
        self.shortest: dict[str, int] = {}

    def terms(self, lengths: Sequence[int], correct: Sequence[bool], prompts: Sequence[str]) -> list[float]:
        """The length terms of this step's responses from the history so far, then the history
        updated with this step's correct responses (see the module doc)."""
        _check_lengths("HapoHistory.terms", len(lengths), correct=correct, prompts=prompts)
        out = []
        for length, ok, prompt in zip(lengths, correct, prompts):
            best = self.shortest.get(prompt)
            if best is None:
                out.append(0.0)
                continue
            value = math.cos(math.pi / 2 * length / best) if length < 2 * best else -1.0
            out.append(max(value, HAPO_CORRECT_FLOOR) if ok else min(value, 0.0))
        for length, ok, prompt in zip(lengths, correct, prompts):
            if ok and length > 0 and (prompt not in self.shortest or length < self.shortest[prompt]):
                self.shortest[prompt] = int(length)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"shortest": dict(self.shortest)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.shortest = {str(k): int(v) for k, v in state.get("shortest", {}).items()}


__all__ = [
    "HAPO_CORRECT_FLOOR",
    "HapoHistory",
    "kimi_length_terms",
    "l1_exact_terms",
    "l1_max_factors",
    "truncate_over",
]

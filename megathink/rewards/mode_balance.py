"""Mode-collapse guards: reward transforms that keep a hybrid model from settling on one mode.

`modes[i]` is "short" (no-think) or "think" (and "none" for a response without a mode, which
both guards leave alone); plain lists of floats, no torch.

* `ada_grpo_scales` (ARM's Ada-GRPO, arXiv 2505.20258): each reward is multiplied by
  `alpha_i(t) = 1 + 0.5 * (G / F(o_i) - 1) * (1 + cos(pi * t / T))` with G the group size,
  F(o_i) the number of responses in o_i's group with o_i's mode and t / T the training progress
  in [0, 1]: early on a rare mode's rewards are scaled up (up to G / F), and the scale decays to
  1 by the end (cosine), so the final objective is the plain one.
* `autothink_balance` (AutoThink, arXiv 2505.10832, its batch-level balance): with rho the
  batch share of think responses (among responses with a mode) and
  `s = clip(2 (rho - 0.5), 0, 1)`, every think reward becomes `(1 - s) r + s * target` with
  target 0 for a correct and -1 for a wrong response; symmetrically for no-think responses with
  `s' = clip(2 (0.5 - rho), 0, 1)`. The dominant mode's rewards shrink towards "correct is worth
  nothing", so the other mode stays competitive while one dominates.
* `autothink_length_terms` (AutoThink's stage-3 length term): with z_i the length z-score of
  response i within its group (0 when the group's lengths are all equal), the term is `-z_i`
  for a correct response (shorter correct answers preferred) and `+z_i` for a wrong one
  (longer attempts preferred when wrong), times the coefficient.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

from megathink.errors import DataError
from megathink.rewards.modes import SHORT, THINK


def _same_length(name: str, n: int, **columns: Sequence[object]) -> None:
    for key, column in columns.items():
        if len(column) != n:
            raise DataError(f"{name}: got {n} rewards but {len(column)} {key}: pass one per response.")


def ada_grpo_scales(modes: Sequence[str], groups: Sequence[Hashable], progress: float) -> list[float]:
    """Ada-GRPO's `alpha_i(t)` of each response; `progress` = t / T in [0, 1]."""
    _same_length("ada_grpo_scales", len(modes), groups=groups)
    if not 0.0 <= progress <= 1.0:
        raise DataError(f"ada_grpo_scales: progress = {progress!r} is invalid: must be t / T in [0, 1].")
    size: dict[Hashable, int] = {}
    count: dict[tuple[Hashable, str], int] = {}
    for mode, group in zip(modes, groups):
        size[group] = size.get(group, 0) + 1
        count[group, mode] = count.get((group, mode), 0) + 1
    decay = 1.0 + math.cos(math.pi * progress)
    return [1.0 + 0.5 * (size[g] / count[g, m] - 1.0) * decay for m, g in zip(modes, groups)]


def autothink_balance(rewards: Sequence[float], modes: Sequence[str], correct: Sequence[bool]) -> list[float]:
    """AutoThink's batch balance of the rewards (see the module doc)."""
    _same_length("autothink_balance", len(rewards), modes=modes, correct=correct)
    moded = [m for m in modes if m in (SHORT, THINK)]
    if not moded:
        return [float(r) for r in rewards]
    rho = sum(m == THINK for m in moded) / len(moded)
    weight = {THINK: min(max(2.0 * (rho - 0.5), 0.0), 1.0), SHORT: min(max(2.0 * (0.5 - rho), 0.0), 1.0)}
    out = []
    for reward, mode, ok in zip(rewards, modes, correct):
        s = weight.get(mode, 0.0)
        out.append((1.0 - s) * float(reward) + s * (0.0 if ok else -1.0))
    return out


def autothink_length_terms(lengths: Sequence[int], correct: Sequence[bool], groups: Sequence[Hashable]) -> list[float]:
    """AutoThink's stage-3 length term: -z (correct) or +z (wrong), z the in-group length z-score."""
    _same_length("autothink_length_terms", len(lengths), correct=correct, groups=groups)
    members: dict[Hashable, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    terms = [0.0] * len(lengths)
    for rows in members.values():
        values = [float(lengths[i]) for i in rows]
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        for i, value in zip(rows, values):
            z = (value - mean) / std if std > 0 else 0.0
            terms[i] = -z if correct[i] else z
    return terms


__all__ = ["ada_grpo_scales", "autothink_balance", "autothink_length_terms"]

"""The Thinkless reward table (ALGORITHMS.md section 1).

| outcome                                  | reward                      |
|------------------------------------------|-----------------------------|
| `<short>` and correct                    | `correct_short` (1.0)       |
| `<think>` and correct                    | `correct_short - gamma` (0.5 with gamma 0.5; 0.2 with 0.8) |
| wrong, unparsable, or no control token   | `wrong` (-1.0)              |

"Correct" already includes the format rules (`grading.grade_responses`). The batch helper
returns a plain list of floats (`torch.tensor(rewards)` gives the `[B]` tensor), so this
package never imports torch and grading workers start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from megathink.errors import DataError
from megathink.rewards.modes import SHORT, THINK, check_mode

if TYPE_CHECKING:
    from megathink.config.reward import RewardConfig


def thinkless_reward(mode: str, correct: bool, cfg: "RewardConfig") -> float:
    """Reward of one response from its mode ("short", "think", "none") and correctness."""
    check_mode(mode)
    if correct and mode == SHORT:
        return float(cfg.correct_short)
    if correct and mode == THINK:
        return float(cfg.correct_short - cfg.gamma)
    return float(cfg.wrong)


def thinkless_rewards(modes: Sequence[str], correct: Sequence[bool], cfg: "RewardConfig") -> list[float]:
    """Rewards of a batch, `[B]` floats in input order."""
    if len(modes) != len(correct):
        raise DataError(
            f"thinkless_rewards got {len(modes)} modes and {len(correct)} correctness flags: pass one per response."
        )
    return [thinkless_reward(mode, bool(flag), cfg) for mode, flag in zip(modes, correct)]


__all__ = ["thinkless_reward", "thinkless_rewards"]

"""`Judged`: one graded response, the unit every evaluation table is built from.

The policy evaluation, the forced-mode evaluation and the RL loop's rollout metrics all turn
samples into `Judged` records (prompt, level, mode read from the first response token,
correctness, response tokens, truncation) and pool them; `hybrid_metrics` computes the
per-prompt metrics (avg@k, pass@k, HAcc) from the same records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Judged:
    """One graded response: its prompt, the prompt's level, the mode it is in, and the outcome."""

    prompt_index: int
    """Index of the prompt in its dataset: the samples of one prompt share it."""
    level: Optional[int]
    mode: str
    """"short", "think" or "none", read from the first response token (forced tokens included)."""
    correct: bool
    tokens: int
    """Response tokens: the forced prefix and the generated tokens, the stop token included; never
    the prompt."""
    truncated: bool
    format_ok: Optional[bool] = None
    """Forced-mode evaluation only: the response ended within the cap and has the forced mode's
    shape (short: no think/end-think token; think: exactly one end-think token); None elsewhere."""

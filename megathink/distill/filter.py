"""Which sample of n is kept per answer form (`--pick`), and which questions go into the SFT file (`--filter`).

Shape (`well_formed`): a long answer must have stopped by itself, hold exactly one end-think
token and no control token (`rewards.modes.answer_region` in "think" mode; `load_hybrid_sft`
refuses any other count); a short answer must have stopped by itself, be non-empty and hold no
end-think or control token ("short" mode). Correct = well formed and graded right.

Pick rule, over the n samples of one form, best tier first (correct, then well formed, then
any), in sampling order within a tier:
- `first_correct`: the first sample of the best tier;
- `shortest_correct`: the shortest sample of the best tier (tokens when the server reported
  them for every sample of the tier, else characters).

Keep filter, per question, on the two picked samples. Whatever the filter, a question is
dropped when a picked sample did not finish (`long_truncated`, `short_truncated`) or is
malformed (`long_malformed`, `short_malformed`): the SFT file must load and must not teach
answers cut at the token cap. Then:

| filter | keeps | drop reasons |
|---|---|---|
| `both_correct` (default) | long and short correct | `long_wrong`, `short_wrong`, `both_wrong` |
| `long_correct` | long correct (short right or wrong) | `long_wrong` |
| `any_correct` | long or short correct | `both_wrong` |
| `all` | every well-formed, finished pair | (none) |

The first reason that applies is the one counted, in the order listed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from megathink.distill.outcomes import QuestionResult, Sample
from megathink.distill.settings import FILTERS
from megathink.rewards.modes import answer_region

DROP_REASONS = (
    "long_truncated", "short_truncated", "long_malformed", "short_malformed", "long_wrong", "short_wrong", "both_wrong",
)


def well_formed(text: str, mode: str, finished: bool, *, think_token: str, end_think_token: str, short_token: str) -> bool:
    """Whether an answer of form `mode` ("think" = long, "short") can go into the SFT file."""
    if not finished or not text.strip():
        return False
    region = answer_region(
        text, mode, end_think_token=end_think_token, think_token=think_token, short_token=short_token
    )
    return region is not None


def pick(samples: Sequence[Sample], rule: str) -> Sample:
    """The kept sample of one form under `rule` (see the module docstring)."""
    if not samples:
        raise ValueError("pick needs at least one sample")
    for tier in ([s for s in samples if s.correct], [s for s in samples if s.well_formed], list(samples)):
        if not tier:
            continue
        if rule == "first_correct":
            return tier[0]
        if rule == "shortest_correct":
            by_tokens = all(s.tokens is not None for s in tier)
            return min(tier, key=lambda s: s.tokens if by_tokens else len(s.text))  # min keeps the first of ties
        raise ValueError(f"pick rule {rule!r} is unknown: use first_correct or shortest_correct")
    raise AssertionError("unreachable: the last tier holds every sample")


def drop_reason(result: QuestionResult, keep: str) -> Optional[str]:
    """None when the question is kept under filter `keep`, else the reason it is dropped."""
    if keep not in FILTERS:
        raise ValueError(f"filter {keep!r} is unknown: use {', '.join(FILTERS)}")
    long, short = result.long.picked, result.short.picked
    if not long.finished:
        return "long_truncated"
    if not short.finished:
        return "short_truncated"
    if not long.well_formed:
        return "long_malformed"
    if not short.well_formed:
        return "short_malformed"
    if keep == "all":
        return None
    if keep == "long_correct":
        return None if long.correct else "long_wrong"
    if keep == "any_correct":
        return None if long.correct or short.correct else "both_wrong"
    if long.correct and short.correct:  # both_correct
        return None
    if not long.correct and not short.correct:
        return "both_wrong"
    return "short_wrong" if long.correct else "long_wrong"

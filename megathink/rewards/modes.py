"""Which mode a response is in, and which part of it holds the answer (ALGORITHMS.md section 1).

`detect_mode` reads the mode from the FIRST generated token only (Thinkless: the control token
is the first token of the response, never part of the prompt). `answer_region` applies the
format rules to the decoded text after that control token: think mode needs exactly one
end-of-thinking token and the answer is what follows it; short mode must contain none and the
answer is the whole text. A control token repeated inside the response makes it malformed in
both modes (as the toy verifier and `evaluation.graders.grade_boxed` do); the Thinkless paper
only says "take the text after `</think>`", so these format rules follow AdaptThink's "exactly
one `</think>`, no `<think>` in the response".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

from megathink.errors import DataError

if TYPE_CHECKING:  # the data package imports torch; grading workers must not pay for it
    from megathink.data.types import ControlTokenIds

SHORT = "short"
THINK = "think"
NONE = "none"
MODES = (SHORT, THINK, NONE)


def detect_mode(response_ids: Sequence[int], control: "ControlTokenIds") -> str:
    """"short", "think" or "none" from the first response token (an empty response is "none")."""
    if len(response_ids) == 0:
        return NONE
    first = int(response_ids[0])
    if first == control.short:
        return SHORT
    if first == control.think:
        return THINK
    return NONE


def answer_region(
    text: str,
    mode: str,
    *,
    end_think_token: str = "</think>",
    think_token: str = "<think>",
    short_token: str = "<short>",
) -> Optional[str]:
    """The part of `text` (the decoded response after its control token) that holds the answer.

    None when the response is malformed for its mode or the mode is "none".
    """
    check_mode(mode)
    if mode == NONE or think_token in text or short_token in text:
        return None
    if mode == THINK:
        if text.count(end_think_token) != 1:
            return None
        return text.split(end_think_token, 1)[1]
    if end_think_token in text:
        return None
    return text


def check_mode(mode: str) -> None:
    """Raise `DataError` unless `mode` is "short", "think" or "none"."""
    if mode not in MODES:
        raise DataError(f"mode = {mode!r} is invalid: use one of {', '.join(MODES)}.")


__all__ = ["MODES", "NONE", "SHORT", "THINK", "answer_region", "check_mode", "detect_mode"]

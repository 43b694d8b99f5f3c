"""Verifiers for forced-mode evaluation: `Verifier` (the call shape) and the boxed-answer grader.

A verifier receives the decoded response *after* the control token (special tokens kept), the
forced mode ("short" or "think") and the reference answer. The toy task brings its own
(`ArithmeticTask.verify`); prompt files use `grade_boxed`, a plain string comparison of the
last `\\boxed{}` in the answer region with the reference, all whitespace removed. The math
datasets need symbolic equivalence on top of this, which the RL reward grader adds.
"""

from __future__ import annotations

from typing import Protocol

from megathink.rewards.grading import extract_answer


class Verifier(Protocol):
    def __call__(
        self,
        response_text: str,
        mode: str,
        answer: str,
        end_think_token: str = "</think>",
        think_token: str = "<think>",
        short_token: str = "<short>",
    ) -> bool: ...


def grade_boxed(
    response_text: str,
    mode: str,
    answer: str,
    end_think_token: str = "</think>",
    think_token: str = "<think>",
    short_token: str = "<short>",
) -> bool:
    """Correct iff the last `\\boxed{}` of the answer region equals `answer`, ignoring all whitespace.

    The answer region is the text after the single end-think token in think mode (a response
    without exactly one is wrong) and the whole response in short mode (which must not contain
    an end-think token). A control token inside the response makes it wrong in both modes.
    """
    if mode not in ("short", "think"):
        raise ValueError(f"mode = {mode!r} is invalid: use 'short' or 'think'.")
    boxed = extract_answer(
        response_text, mode, end_think_token=end_think_token, think_token=think_token, short_token=short_token
    )
    return boxed is not None and _squeeze(boxed) == _squeeze(answer)


def _squeeze(text: str) -> str:
    return "".join(text.split())

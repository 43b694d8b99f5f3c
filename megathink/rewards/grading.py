"""Correctness of whole responses: answer region, last `\\boxed{}`, then equivalence grading.

`grade_responses` extracts every answer first and sends the well-formed ones to the grader in
one batch (a `GraderPool` grades them in parallel, each time-bounded); `grade_response` is the
one-response form. The grader is either a `GraderPool` (anything with `grade_many`) or a plain
function `(pred, ref) -> bool` such as `is_equivalent` (time-bounded, one answer at a time) or
`is_equivalent_trusted` (no time bound: trusted input only).
"""

from __future__ import annotations

from typing import Callable, Optional, Protocol, Sequence, Union, runtime_checkable

from megathink.errors import DataError
from megathink.rewards.boxed import extract_last_boxed
from megathink.rewards.modes import answer_region


@runtime_checkable
class BatchGrader(Protocol):
    def grade_many(self, items: Sequence[tuple[str, str]]) -> list[bool]: ...


Grader = Union[BatchGrader, Callable[[str, str], bool]]


def extract_answer(
    text_after_control: str,
    mode: str,
    *,
    end_think_token: str = "</think>",
    think_token: str = "<think>",
    short_token: str = "<short>",
) -> Optional[str]:
    """The content of the LAST `\\boxed{}` in the answer region; None when malformed or unboxed."""
    region = answer_region(
        text_after_control, mode, end_think_token=end_think_token, think_token=think_token, short_token=short_token
    )
    return None if region is None else extract_last_boxed(region)


def grade_responses(
    texts_after_control: Sequence[str],
    modes: Sequence[str],
    references: Sequence[str],
    grader: Grader,
    *,
    end_think_token: str = "</think>",
    think_token: str = "<think>",
    short_token: str = "<short>",
) -> list[bool]:
    """Whether each response is well formed in its mode and its last boxed answer is correct."""
    if not (len(texts_after_control) == len(modes) == len(references)):
        raise DataError(
            f"grade_responses got {len(texts_after_control)} responses, {len(modes)} modes and "
            f"{len(references)} references: pass one mode and one reference per response."
        )
    results = [False] * len(texts_after_control)
    positions: list[int] = []
    items: list[tuple[str, str]] = []
    for position, (text, mode, reference) in enumerate(zip(texts_after_control, modes, references)):
        answer = extract_answer(
            text, mode, end_think_token=end_think_token, think_token=think_token, short_token=short_token
        )
        if answer is not None:
            positions.append(position)
            items.append((answer, reference))
    if isinstance(grader, BatchGrader):
        verdicts = grader.grade_many(items)
    elif callable(grader):
        verdicts = [bool(grader(pred, ref)) for pred, ref in items]
    else:
        raise DataError(f"grader = {grader!r:.80} is invalid: pass a GraderPool or a (pred, ref) -> bool function.")
    for position, verdict in zip(positions, verdicts):
        results[position] = bool(verdict)
    return results


def grade_response(
    text_after_control: str,
    mode: str,
    reference: str,
    pool_or_fn: Grader,
    *,
    end_think_token: str = "</think>",
    think_token: str = "<think>",
    short_token: str = "<short>",
) -> bool:
    """Whether one response is well formed in its mode and its last boxed answer is correct."""
    return grade_responses(
        [text_after_control],
        [mode],
        [reference],
        pool_or_fn,
        end_think_token=end_think_token,
        think_token=think_token,
        short_token=short_token,
    )[0]


__all__ = ["BatchGrader", "Grader", "extract_answer", "grade_response", "grade_responses"]

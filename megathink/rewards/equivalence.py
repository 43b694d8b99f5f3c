"""Is a predicted final answer equivalent to the reference? The grading rules, in this process.

`is_equivalent_trusted(pred, ref)` runs three steps, the first that says "equal" wins:

1. Cheap pre-checks (`precheck`): an exact match (ignoring surrounding whitespace) is correct;
   an empty answer, one longer than `MAX_ANSWER_CHARS` (or a reference longer than
   `MAX_REFERENCE_CHARS`), one with a NUL byte or with braces nested deeper than
   `MAX_BRACE_DEPTH` is wrong. These run in the caller's process (the
   `GraderPool` applies them before sending anything to a worker).
2. Rules (`normalize.py`): equal normalised strings, `x = 5` against `5`, plain words compared
   case-insensitively, numbers compared exactly (fractions in every spelling, `1,000`, `.5`)
   or, when either side is a decimal, within a relative tolerance of 1e-4, and tuples,
   intervals and sets compared element by element (same brackets; sets and bare lists in any
   order).
3. Symbolic equivalence with math-verify (`parse`/`verify`), LaTeX extraction only. Its own
   `signal.alarm` timeouts are disabled (they only work on the main thread), so this step has
   no time bound here: `is_equivalent_trusted` is for trusted input only. The public
   `megathink.rewards.is_equivalent` (bounded_grading.py) runs steps 1-2 here and step 3 in a
   `GraderPool` worker, which bounds time and memory per answer from outside.

Nothing is ever evaluated as code: math-verify's plain-expression extraction (which runs
sympy's `parse_expr`, an `eval`) is not used, only its ANTLR LaTeX parser. Two plain words
are never sent to math-verify, which would read `Monday` and `Dynamo` as equal products of
single-letter symbols. math-verify (and with it sympy) is imported on first use, so a process
that only sends answers to a `GraderPool` never loads it. Departure from the papers' graders: the numeric tolerance (theirs
differ per code base; 1e-4 relative here) and the rule set above, written for megathink.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Optional

from megathink.errors import DataError
from megathink.rewards.normalize import (
    SplitList,
    is_word,
    numbers_close,
    parse_number,
    split_list,
    strip_assignment,
    strip_string,
)

MAX_ANSWER_CHARS = 1000
"""Answers longer than this are wrong (unless they equal the reference exactly)."""

MAX_REFERENCE_CHARS = 10 * MAX_ANSWER_CHARS
"""References longer than this match only an identical answer (keeps the rules' time bounded)."""

MAX_BRACE_DEPTH = 50
"""Answers with braces nested deeper than this are wrong (unless they equal the reference)."""

REL_TOL = Fraction(1, 10_000)
"""Relative tolerance of a numeric comparison when either side is written as a decimal."""

_MAX_LIST_RECURSION = 8


def precheck(pred: str, ref: str, max_answer_chars: int = MAX_ANSWER_CHARS) -> Optional[bool]:
    """The verdict when cheap checks settle it, else None (the answer needs real grading).

    Linear in the input; safe on any string. Raises `DataError` when an argument is not a str.
    """
    if not isinstance(pred, str) or not isinstance(ref, str):
        raise DataError(
            f"an answer pair to grade must be two strings, got {type(pred).__name__} and "
            f"{type(ref).__name__}: pass the extracted answer and the reference answer text."
        )
    pred_stripped = pred.strip()
    if not pred_stripped:
        return False
    if pred_stripped == ref.strip():
        return True
    if len(pred) > max_answer_chars or "\x00" in pred or len(ref) > MAX_REFERENCE_CHARS:
        return False
    if _max_brace_depth(pred) > MAX_BRACE_DEPTH:
        return False
    return None


def is_equivalent_trusted(pred: str, ref: str) -> bool:
    """Whether `pred` is equivalent to `ref`, all three steps in this process: TRUSTED input only.

    Both are final answers (the content of a `\\boxed{}`), not whole responses. No time bound
    of its own (a power tower never returns): for model output use the public
    `megathink.rewards.is_equivalent` or a `GraderPool`, which bound it.
    """
    verdict = rules_verdict(pred, ref)
    return symbolic_equivalent(pred, ref) if verdict is None else verdict


def rules_verdict(pred: str, ref: str) -> Optional[bool]:
    """Steps 1-2 (pre-checks and rules): True/False when they settle it, None when only the
    symbolic step can. Bounded: linear pre-checks, then regexes and exact arithmetic on
    answers of at most `MAX_ANSWER_CHARS` (numbers of at most 400 digits)."""
    verdict = precheck(pred, ref)
    if verdict is not None:
        return verdict
    pred_norm = strip_string(pred)
    ref_norm = strip_string(ref)
    if not pred_norm or not ref_norm:
        return False
    if rule_equivalent(pred_norm, ref_norm):
        return True
    if is_word(pred_norm) and is_word(ref_norm):
        return False
    return None


def rule_equivalent(pred_norm: str, ref_norm: str, _depth: int = 0) -> bool:
    """The rule-based step on two `strip_string` outputs (no symbolic algebra)."""
    if pred_norm == ref_norm:
        return bool(pred_norm)
    if "=" in pred_norm and "=" not in ref_norm:
        pred_norm = strip_assignment(pred_norm)
    elif "=" in ref_norm and "=" not in pred_norm:
        ref_norm = strip_assignment(ref_norm)
    if pred_norm == ref_norm:
        return bool(pred_norm)
    if is_word(pred_norm) and is_word(ref_norm):
        return pred_norm.lower() == ref_norm.lower()
    pred_number = parse_number(pred_norm)
    ref_number = parse_number(ref_norm)
    if pred_number is not None and ref_number is not None:
        return numbers_close(pred_number, ref_number, REL_TOL)
    if _depth < _MAX_LIST_RECURSION:
        pred_list = split_list(pred_norm) if pred_number is None else None
        ref_list = split_list(ref_norm) if ref_number is None else None
        if pred_list is not None and ref_list is not None:
            return _lists_equivalent(pred_list, ref_list, _depth + 1)
    return False


def symbolic_equivalent(pred: str, ref: str) -> bool:
    """math-verify's verdict (gold = `ref`), with its signal-based timeouts disabled; False on error."""
    from math_verify import LatexExtractionConfig, parse, verify

    config = [LatexExtractionConfig()]
    try:
        gold = parse(_as_math(ref), extraction_config=config, parsing_timeout=None)
        target = parse(_as_math(pred), extraction_config=config, parsing_timeout=None)
        if not gold or not target:
            return False
        return bool(verify(gold, target, timeout_seconds=None))
    except Exception:  # any failure of the parser or of sympy means "not shown equal"
        return False


def _lists_equivalent(pred: SplitList, ref: SplitList, depth: int) -> bool:
    if len(pred.elements) != len(ref.elements):
        return False
    if (pred.opener, pred.closer) != (ref.opener, ref.closer):
        return False
    if pred.opener in ("", "\\{"):
        return _unordered_match(pred.elements, ref.elements, depth)
    return all(rule_equivalent(p, r, depth) for p, r in zip(pred.elements, ref.elements))


def _unordered_match(pred: list[str], ref: list[str], depth: int) -> bool:
    remaining = list(ref)
    for element in pred:
        for index, candidate in enumerate(remaining):
            if rule_equivalent(element, candidate, depth):
                del remaining[index]
                break
        else:
            return False
    return True


def _as_math(answer: str) -> str:
    """Wrap an answer as inline math for math-verify's LaTeX extraction."""
    return "$" + answer.replace("\\$", "").replace("$", "") + "$"


def _max_brace_depth(text: str) -> int:
    depth = deepest = 0
    for char in text:
        if char == "{":
            depth += 1
            if depth > deepest:
                deepest = depth
        elif char == "}" and depth > 0:
            depth -= 1
    return deepest


__all__ = [
    "MAX_ANSWER_CHARS",
    "MAX_BRACE_DEPTH",
    "MAX_REFERENCE_CHARS",
    "REL_TOL",
    "is_equivalent_trusted",
    "precheck",
    "rule_equivalent",
    "rules_verdict",
    "symbolic_equivalent",
]

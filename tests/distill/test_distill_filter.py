"""filter.py: the shape rules, the pick rules over n samples, and every keep filter's drop reasons."""

from __future__ import annotations

import pytest

from megathink.distill.filter import DROP_REASONS, drop_reason, pick, well_formed
from megathink.distill.outcomes import FormResult, QuestionResult, Sample

TOKENS = dict(think_token="<think>", end_think_token="</think>", short_token="<short>")


@pytest.mark.parametrize(
    "text, mode, finished, expected",
    [
        ("\nthought</think>\\boxed{1}", "think", True, True),
        ("\nthought</think>\\boxed{1}", "think", False, False),  # cut at the cap
        ("thought without an end", "think", True, False),
        ("a</think>b</think>\\boxed{1}", "think", True, False),  # two end-think tokens: load_hybrid_sft refuses it
        ("a<think>b</think>\\boxed{1}", "think", True, False),  # a control token inside
        ("\\boxed{1}", "short", True, True),
        ("   ", "short", True, False),
        ("x</think>\\boxed{1}", "short", True, False),
        ("<short>\\boxed{1}", "short", True, False),
    ],
)
def test_well_formed(text: str, mode: str, finished: bool, expected: bool) -> None:
    assert well_formed(text, mode, finished, **TOKENS) is expected


def _s(text: str, *, correct: bool = False, shaped: bool = True, tokens: int | None = None) -> Sample:
    return Sample(text=text, finished=shaped, well_formed=shaped, correct=correct, tokens=tokens)


def test_pick_prefers_correct_then_well_formed_then_first() -> None:
    bad, wrong_long, right_long, right_short = _s("bad", shaped=False), _s("wrong ..."), _s("right!!", correct=True), _s("ok", correct=True)
    assert pick([bad, wrong_long, right_long, right_short], "first_correct") is right_long
    assert pick([bad, wrong_long, right_long, right_short], "shortest_correct") is right_short
    assert pick([bad, _s("w1"), _s("w22")], "first_correct").text == "w1"
    assert pick([bad, _s("w333"), _s("w22")], "shortest_correct").text == "w22"
    assert pick([bad, _s("zz", shaped=False)], "shortest_correct").text == "zz"  # no well-formed one: shortest of all
    assert pick([bad], "first_correct") is bad


def test_shortest_uses_tokens_when_every_sample_has_them() -> None:
    few_tokens_many_chars = _s("x" * 50, correct=True, tokens=3)
    many_tokens_few_chars = _s("y", correct=True, tokens=9)
    assert pick([many_tokens_few_chars, few_tokens_many_chars], "shortest_correct") is few_tokens_many_chars
    unknown = _s("y", correct=True, tokens=None)
    assert pick([unknown, few_tokens_many_chars], "shortest_correct") is unknown  # falls back to characters
    with pytest.raises(ValueError, match="pick rule"):
        pick([unknown], "longest")


def _result(long: Sample, short: Sample) -> QuestionResult:
    form = lambda s: FormResult(picked=s, samples=1, correct=int(s.correct), finished=int(s.finished))  # noqa: E731
    return QuestionResult(prompt_id="p", problem="q", answer="1", level=None, long=form(long), short=form(short))


RIGHT, WRONG = _s("r", correct=True), _s("w")
CUT = Sample(text="t", finished=False, well_formed=False, correct=False)
MALFORMED = Sample(text="m", finished=True, well_formed=False, correct=False)

CASES = [  # (long, short): reason under both_correct, long_correct, any_correct, all
    ((RIGHT, RIGHT), (None, None, None, None)),
    ((RIGHT, WRONG), ("short_wrong", None, None, None)),
    ((WRONG, RIGHT), ("long_wrong", "long_wrong", None, None)),
    ((WRONG, WRONG), ("both_wrong", "long_wrong", "both_wrong", None)),
    ((CUT, RIGHT), ("long_truncated",) * 4),
    ((RIGHT, CUT), ("short_truncated",) * 4),
    ((CUT, CUT), ("long_truncated",) * 4),
    ((MALFORMED, RIGHT), ("long_malformed",) * 4),
    ((RIGHT, MALFORMED), ("short_malformed",) * 4),
]


@pytest.mark.parametrize("pair, reasons", CASES)
def test_drop_reasons_per_filter(pair: tuple[Sample, Sample], reasons: tuple) -> None:
    result = _result(*pair)
    for keep, reason in zip(("both_correct", "long_correct", "any_correct", "all"), reasons):
        assert drop_reason(result, keep) == reason, keep
        assert reason is None or reason in DROP_REASONS
    with pytest.raises(ValueError, match="filter"):
        drop_reason(result, "most")

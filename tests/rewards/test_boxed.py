"""Extraction of the last \\boxed{...} answer."""

import time

from megathink.rewards import extract_last_boxed


def test_simple_and_nested():
    assert extract_last_boxed("so \\boxed{605}") == "605"
    assert extract_last_boxed("\\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert extract_last_boxed("\\boxed{{a}{b{c}}}.") == "{a}{b{c}}"
    assert extract_last_boxed("\\boxed{}") == ""


def test_last_box_wins():
    assert extract_last_boxed("\\boxed{1} then \\boxed{2}") == "2"
    assert extract_last_boxed("\\boxed{1}</think>\\boxed{22}") == "22"


def test_missing_or_unclosed_gives_none():
    assert extract_last_boxed("no answer") is None
    assert extract_last_boxed("\\boxed{12") is None
    assert extract_last_boxed("\\boxed{1} and \\boxed{2") is None
    assert extract_last_boxed("\\boxed") is None
    assert extract_last_boxed("\\boxedx") is None


def test_space_form():
    assert extract_last_boxed("so \\boxed 5") == "5"
    assert extract_last_boxed("$\\boxed 5$.") == "5"


def test_long_input_is_fast():
    text = "{" * 50_000 + "\\boxed{" + "{}" * 25_000 + "}"
    start = time.perf_counter()
    assert extract_last_boxed(text) == "{}" * 25_000
    assert extract_last_boxed("{" * 100_000 + "\\boxed{" + "{" * 100_000) is None
    assert time.perf_counter() - start < 1.0

"""Checks shared by the config dataclasses.

Every check raises `ConfigError` with one message that names the field by its full dotted
path (`sft.micro_batch_size`), the value it got, and what is allowed, so a bad override on
the command line reads as a fix, never as a traceback from deep inside torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from megathink.errors import ConfigError

__all__ = ["ConfigError", "check_choice", "check_float", "check_int", "check_nonempty_str", "fail"]


def fail(path: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{path} = {value!r} is invalid: {allowed}.")


def check_int(path: str, value: Any, *, low: int | None = None, high: int | None = None) -> None:
    """An integer (not a bool) within [low, high] (either bound may be omitted)."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    if ok and low is not None and value < low:
        ok = False
    if ok and high is not None and value > high:
        ok = False
    if not ok:
        fail(path, value, f"must be an integer {_describe(low, high, True, True)}")


def check_float(
    path: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> None:
    """A finite real number within the given bounds."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value >= low if low_inclusive else value > low
    if ok and high is not None:
        ok = ok and (value <= high if high_inclusive else value < high)
    if not ok:
        fail(path, value, f"must be a finite number {_describe(low, high, low_inclusive, high_inclusive)}")


def check_choice(path: str, value: Any, choices: Iterable[Any]) -> None:
    choices = tuple(choices)
    if value not in choices:
        fail(path, value, "must be one of " + ", ".join(repr(c) for c in choices))


def check_nonempty_str(path: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        fail(path, value, "must be a non-empty string")


def _describe(low: Any, high: Any, low_inclusive: bool, high_inclusive: bool) -> str:
    if low is not None and high is not None:
        left = "[" if low_inclusive else "("
        right = "]" if high_inclusive else ")"
        return f"in {left}{low}, {high}{right}"
    if low is not None:
        return (">= " if low_inclusive else "> ") + str(low)
    if high is not None:
        return ("<= " if high_inclusive else "< ") + str(high)
    return ""

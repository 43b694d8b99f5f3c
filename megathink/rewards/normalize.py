"""Rule-based normalisation of final answers, in the spirit of the MATH benchmark's grader.

The Thinkless and AdaptThink graders compare the last boxed answer with the reference "by
string normalisation or symbolic equivalence" (ALGORITHMS.md section 1). This module is the
string half, written for megathink (not copied from either code base):

* `strip_string` removes presentation: `\\left`/`\\right`, spacing commands and all
  whitespace, `\\dfrac`/`\\tfrac`, degree signs, dollar and percent signs, trailing unit text
  (`5\\text{ cm}`, `5 inches`), `\\text{...}` wrappers, a trailing full stop, and rewrites the
  brace-less shorthands `\\frac12` and `\\sqrt2`.
* `parse_number` reads integers (leading zeros and `1,000` thousands separators allowed),
  decimals (`.5`), `\\frac{a}{b}` and `a/b` into an exact `Fraction`, remembering whether the
  text was a decimal (only decimals get the numeric tolerance).
* `split_list` splits tuples, intervals, sets and bare comma lists at their top-level commas.
* `strip_assignment` turns `x = 5` into `5`.

Departures from the papers' graders: percent signs are dropped (`50\\%` equals `50`, not
`0.5`), as in the MATH grader; plain words are compared case-insensitively; mixed numbers
(`1\\frac{1}{2}`) are not read as numbers. Every function here is linear-ish in its input and
never evaluates the text as code.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import NamedTuple, Optional

MAX_NUMBER_CHARS = 400
"""Numbers longer than this are not parsed (they are compared as strings)."""

_SPACING = re.compile(r"\\[!,:; ]|\\q?quad(?![a-zA-Z])|~|\\displaystyle(?![a-zA-Z])")
_LEFT_RIGHT = re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big)(?![a-zA-Z])")
_FRAC_ALIASES = re.compile(r"\\[dt]frac(?![a-zA-Z])")
_DEGREES = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ(?![a-zA-Z])|\\degree(?![a-zA-Z])|°")
_TRAILING_UNIT_TEXT = re.compile(
    r"(?<=\S)\s*\\(?:text|mbox|mathrm|textrm)\s*\{(?=[^{}]*[A-Za-z]{2})[^{}]*\}"
    r"(?:\^\s*\{?\s*[23]\s*\}?)?\s*$"
)
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|textit|mbox|mathrm|textrm|mathbf)\s*\{([^{}]*)\}")
_WHITESPACE = re.compile(r"\s+")
_UNIT_WORDS = (
    "squareunits|squareinches|squarefeet|squaremeters|squarecentimeters|sq\\.?units|"
    "cubicunits|cubicinches|cubicfeet|cubicmeters|cubiccentimeters|units|unit|"
    "centimeters|centimeter|millimeters|millimeter|kilometers|kilometer|meters|meter|"
    "inches|inch|feet|foot|ft|yards|yard|yd|miles|mile|mph|cm|mm|km|"
    "degrees|degree|dollars|dollar|cents|cent|hours|hour|minutes|minute|seconds|second|"
    "days|day|weeks|week|months|month|years|year|pounds|pound|lbs|kg|grams|gram|ounces|ounce|"
    "liters|liter|gallons|gallon"
)
_NUMBER_WITH_UNIT = re.compile(
    r"^(?P<number>-?[0-9][0-9.,/]*|-?\.[0-9]+)(?:" + _UNIT_WORDS + r")(?:\^\{?[23]\}?)?$", re.IGNORECASE
)
_FRAC_TWO_CHARS = re.compile(r"\\frac([0-9a-zA-Z])([0-9a-zA-Z])")
_FRAC_FIRST_CHAR = re.compile(r"\\frac([0-9a-zA-Z])(?=\{)")
_FRAC_SECOND_CHAR = re.compile(r"(\\frac\{[^{}]*\})([0-9a-zA-Z])")
_SQRT_CHAR = re.compile(r"\\sqrt([0-9a-zA-Z])")
_LETTER_IN_PARENS = re.compile(r"^\(([A-Za-z])\)$")
_ASSIGNMENT = re.compile(r"^(?:[a-zA-Z]|\\[a-zA-Z]+)(?:_\{?[a-zA-Z0-9]+\}?)?=(?!=)(?P<value>.+)$")
_WORD = re.compile(r"^[A-Za-z]{2,}$")

_UNSIGNED = r"(?:[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?|[0-9]*\.[0-9]+|[0-9]+)"
_PLAIN_NUMBER = re.compile(r"^(?P<sign>[-+]?)(?P<body>" + _UNSIGNED + r")$")
_LATEX_FRACTION = re.compile(
    r"^(?P<sign>[-+]?)\\frac\{(?P<num>[-+]?" + _UNSIGNED + r")\}\{(?P<den>[-+]?" + _UNSIGNED + r")\}$"
)
_SLASH_FRACTION = re.compile(r"^(?P<num>[-+]?" + _UNSIGNED + r")/(?P<den>[-+]?" + _UNSIGNED + r")$")

_OPENERS = "([{"
_CLOSERS = ")]}"


class ParsedNumber(NamedTuple):
    """A number read from an answer: its exact value and whether it was written as a decimal."""

    value: Fraction
    decimal: bool


def strip_string(text: str) -> str:
    """The answer with presentation removed; equal outputs mean equal answers (see module doc)."""
    s = text.strip()
    s = _SPACING.sub(" ", s)
    s = _LEFT_RIGHT.sub("", s)
    s = _FRAC_ALIASES.sub(r"\\frac", s)
    s = _DEGREES.sub("", s)
    s = s.replace("\\$", "").replace("$", "")
    s = s.replace("\\%", "").replace("%", "")
    s = s.replace("{,}", ",")
    previous = None
    while previous != s:
        previous = s
        s = _TRAILING_UNIT_TEXT.sub("", s)
    s = _TEXT_WRAPPER.sub(r"\1", s)
    s = _WHITESPACE.sub("", s)
    s = s.rstrip(".")
    unit = _NUMBER_WITH_UNIT.match(s)
    if unit:
        s = unit.group("number")
    s = _FRAC_TWO_CHARS.sub(r"\\frac{\1}{\2}", s)
    s = _FRAC_FIRST_CHAR.sub(r"\\frac{\1}", s)
    s = _FRAC_SECOND_CHAR.sub(r"\1{\2}", s)
    s = _SQRT_CHAR.sub(r"\\sqrt{\1}", s)
    letter = _LETTER_IN_PARENS.match(s)
    if letter:
        s = letter.group(1)
    return s


def strip_assignment(normalized: str) -> str:
    """`x=5` -> `5` (also `\\theta=5`, `x_1=5`); anything else unchanged. Input: `strip_string` output."""
    match = _ASSIGNMENT.match(normalized)
    return match.group("value") if match else normalized


def is_word(normalized: str) -> bool:
    """True for a plain word of two or more letters (a text answer such as `Monday`)."""
    return _WORD.match(normalized) is not None


def parse_number(normalized: str) -> Optional[ParsedNumber]:
    """The exact value of a plain number, `\\frac{a}{b}` or `a/b`; None for anything else."""
    if len(normalized) > MAX_NUMBER_CHARS:
        return None
    plain = _PLAIN_NUMBER.match(normalized)
    if plain:
        value = _read_unsigned(plain.group("body"))
        return ParsedNumber(-value if plain.group("sign") == "-" else value, "." in normalized)
    fraction = _LATEX_FRACTION.match(normalized) or _SLASH_FRACTION.match(normalized)
    if fraction is None:
        return None
    numerator = _read_signed(fraction.group("num"))
    denominator = _read_signed(fraction.group("den"))
    if denominator == 0:
        return None
    value = numerator / denominator
    if fraction.groupdict().get("sign") == "-":
        value = -value
    return ParsedNumber(value, "." in normalized)


def numbers_close(a: ParsedNumber, b: ParsedNumber, rel_tol: Fraction) -> bool:
    """Exact equality, or within `rel_tol` relative error when either side was a decimal."""
    if a.value == b.value:
        return True
    if not (a.decimal or b.decimal):
        return False
    return abs(a.value - b.value) <= rel_tol * max(abs(a.value), abs(b.value))


class SplitList(NamedTuple):
    """A bracketed or bare comma list: its outer brackets ("" when bare) and its elements."""

    opener: str
    closer: str
    elements: list[str]


def split_list(normalized: str) -> Optional[SplitList]:
    """Split `(a,b)`, `[a,b)`, `\\{a,b\\}` or a bare `a,b` at top-level commas; None if not a list.

    A list has at least two elements. Brackets of every kind count toward the nesting depth
    (so `(1,2]` parses, and commas inside `\\frac{..}{..}` or inner tuples do not split).
    """
    opener, closer, inner = "", "", normalized
    if normalized.startswith("\\{") and normalized.endswith("\\}") and len(normalized) >= 4:
        opener, closer, inner = "\\{", "\\}", normalized[2:-2]
    elif len(normalized) >= 2 and normalized[0] in "([" and normalized[-1] in ")]":
        opener, closer, inner = normalized[0], normalized[-1], normalized[1:-1]
    elements = _split_top_level(inner)
    if elements is None and opener:
        # The outer brackets did not enclose everything, e.g. "(1)+(2)": try it as a bare list.
        opener, closer, elements = "", "", _split_top_level(normalized)
    if elements is None or len(elements) < 2 or any(not element for element in elements):
        return None
    return SplitList(opener, closer, elements)


def _split_top_level(text: str) -> Optional[list[str]]:
    depth = 0
    parts: list[str] = []
    start = 0
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and text.startswith(("\\{", "\\}"), index):
            depth += 1 if text[index + 1] == "{" else -1
            index += 2
            if depth < 0:
                return None
            continue
        if char in _OPENERS:
            depth += 1
        elif char in _CLOSERS:
            depth -= 1
            if depth < 0:
                return None
        elif char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
        index += 1
    if depth != 0:
        return None
    parts.append(text[start:])
    return parts


def _read_unsigned(body: str) -> Fraction:
    return Fraction(body.replace(",", ""))


def _read_signed(text: str) -> Fraction:
    sign = -1 if text.startswith("-") else 1
    return sign * _read_unsigned(text.lstrip("+-"))

"""Extract the final answer of a response: the content of its LAST `\\boxed{...}`.

Both papers grade the last boxed answer (ALGORITHMS.md section 1). Braces inside the box are
balanced by counting depth in one forward scan, so the cost is linear in the text length and
there is no recursion. `\\boxed 5` (a space and one token, as some models write) is accepted
too. Full equivalence grading (symbolic math) lives elsewhere; this is the extraction step.
"""

from __future__ import annotations

from typing import Optional

BOXED = "\\boxed"


def extract_last_boxed(text: str) -> Optional[str]:
    """Content of the last `\\boxed{...}` in `text`, or None when there is none or it is unclosed."""
    start = text.rfind(BOXED)
    if start < 0:
        return None
    pos = start + len(BOXED)
    if text.startswith(" ", pos):
        words = text[pos:].split(None, 1)
        answer = words[0].rstrip("$.,;") if words else ""
        return answer or None
    if not text.startswith("{", pos):
        return None
    depth = 0
    for index in range(pos, len(text)):
        char = text[index]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[pos + 1 : index]
    return None

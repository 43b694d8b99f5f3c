"""AdaptThink's reward and advantage (ALGORITHMS.md section 2).

    R(x, y) = 1 if y is correct and well formed, else 0
    A(x, y) = delta * 1[y_0 = </think>] + R(x, y) - Rbar_ref(x)

"Well formed" is AdaptThink's rule, applied by the grader before R is set: exactly one
`</think>` in the response (the forced one for NoThinking, the end of the thought for
Thinking) and no `<think>`. Rbar_ref(x) is the reference model's Thinking accuracy on x
(`megathink presample`). There is no group baseline and no std normalisation: the reference
accuracy is the baseline. Plain lists of floats, no torch (as `thinkless_reward`).
"""

from __future__ import annotations

import math
from typing import Sequence

from megathink.errors import DataError


def adaptthink_advantages(
    nothinking: Sequence[bool], correct: Sequence[float], rbar: Sequence[float], *, delta: float
) -> list[float]:
    """`[B]` advantages, one per response: its mode, its R (1/0 for correct/wrong, or a bool; a
    shaped reward where length shaping is on), its prompt's Rbar_ref."""
    if not len(nothinking) == len(correct) == len(rbar):
        raise DataError(
            f"adaptthink_advantages got {len(nothinking)} modes, {len(correct)} correctness flags and "
            f"{len(rbar)} Rbar_ref values: pass one of each per response."
        )
    if not (isinstance(delta, (int, float)) and math.isfinite(delta) and delta >= 0):
        raise DataError(f"delta = {delta!r} is invalid: must be a finite number >= 0 (algorithm.delta).")
    out = []
    for no_think, ok, reference in zip(nothinking, correct, rbar):
        if not 0.0 <= reference <= 1.0:
            raise DataError(f"Rbar_ref = {reference!r} is invalid: a reference accuracy lies in [0, 1].")
        out.append(delta * float(bool(no_think)) + float(ok) - float(reference))
    return out


__all__ = ["adaptthink_advantages"]

"""`is_equivalent`: the public grading function, safe on untrusted answers from any thread.

A model's answer can make symbolic algebra hang (`9^{9^{9^{9}}}`, `100000000!`) or exhaust
memory; math-verify's own timeout uses `signal.alarm`, which works on the main thread only.
So the public function splits the work:

* the pre-checks and the rules (`equivalence.rules_verdict`: exact match, caps, normalised
  strings, exact numbers, lists) run in the caller's process: they are bounded, and they settle
  most answers;
* only what needs symbolic algebra goes to one process-wide `GraderPool` (one worker,
  started on first use, 1 GiB address-space cap), with a deadline per answer: an answer that is
  not back in time is `False` and its worker is replaced.

The caller never has to know about the pool. The first symbolic answer pays the worker's
start-up (~1-2 s: Python, sympy, math-verify). A process that forks gets its own pool in the
child. Calls from several threads share the worker one at a time, so each waits at most its
own deadline plus the deadlines of the answers queued before it.

Trusted input (references graded against themselves, the test tables of the rules) can use
`equivalence.is_equivalent_trusted`, which runs all three steps in-process with no bound.
Many untrusted answers at once are faster through your own `GraderPool(workers=N)`.
"""

from __future__ import annotations

import os
import threading
from typing import Optional

from megathink.rewards.equivalence import rules_verdict
from megathink.rewards.grader_pool import GraderPool

DEFAULT_TIMEOUT_S = 5.0
"""Seconds the symbolic step of one answer may take (the default of `reward.grade_timeout_s`)."""

DEFAULT_MEMORY_MB = 1024
"""Address-space cap of the shared worker, MiB (the default of `reward.grade_memory_mb`)."""

_shared_lock = threading.Lock()
_shared: Optional[tuple[int, GraderPool]] = None


def is_equivalent(pred: str, ref: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
    """Whether the final answer `pred` is equivalent to the reference answer `ref`.

    Returns within about `timeout_s` seconds (plus a worker's start-up on first use) whatever
    the input, from any thread: a pathological answer is `False`. Raises `DataError` when an
    argument is not a string.
    """
    verdict = rules_verdict(pred, ref)
    if verdict is not None:
        return verdict
    return shared_grader_pool().grade_many([(pred, ref)], timeout_s=timeout_s)[0]


def shared_grader_pool() -> GraderPool:
    """The process-wide pool behind `is_equivalent` (created on first use; a new one after fork)."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared[0] != os.getpid():
            # After a fork the parent's workers belong to the parent: leave them alone.
            _shared = (os.getpid(), GraderPool(workers=1, timeout_s=DEFAULT_TIMEOUT_S, memory_mb=DEFAULT_MEMORY_MB))
        return _shared[1]


__all__ = ["DEFAULT_MEMORY_MB", "DEFAULT_TIMEOUT_S", "is_equivalent", "shared_grader_pool"]

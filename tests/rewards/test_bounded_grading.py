"""The public `is_equivalent` is safe on untrusted answers: bounded time from any thread.

The hostile answers run in a child Python (killed if it hangs), so a regression fails this test
instead of hanging the suite: before the shared pool, each of them never returned.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from megathink.rewards import is_equivalent, is_equivalent_trusted
from megathink.rewards.bounded_grading import shared_grader_pool

HOSTILE = ["9^{9^{9^{9}}}", "100000000!", "10^{10^{10^{10}}}"]
TIMEOUT_S = 1.0
# A hostile answer costs its deadline plus, when its worker was replaced by the answer before,
# that worker's start-up (Python + sympy + math-verify: ~1 s, more on a busy 2-core CI).
MARGIN_S = 6.0

_CHILD = textwrap.dedent(
    """
    import json, sys, threading, time
    from megathink.rewards import is_equivalent

    answers = json.loads(sys.argv[1])
    timeout_s = float(sys.argv[2])

    def grade_all(where, out):
        for answer in answers:
            start = time.monotonic()
            verdict = is_equivalent(answer, "1", timeout_s=timeout_s)
            out.append({"where": where, "answer": answer, "verdict": verdict,
                        "seconds": time.monotonic() - start})

    results = []
    grade_all("main", results)
    worker_results = []
    thread = threading.Thread(target=grade_all, args=("thread", worker_results))
    thread.start()
    thread.join()
    start = time.monotonic()
    sane = is_equivalent("x = \\\\frac{\\\\sqrt{2}}{2}", "\\\\frac{1}{\\\\sqrt2}", timeout_s=timeout_s)
    results += worker_results + [{"where": "main", "answer": "sane", "verdict": sane,
                                  "seconds": time.monotonic() - start}]
    print(json.dumps(results))
    """
)


def test_hostile_answers_are_false_within_the_bound_from_main_and_worker_threads(tmp_path):
    # A script file without a `__main__` guard: the grading workers must not re-run it.
    script = tmp_path / "grade_untrusted.py"
    script.write_text(_CHILD, encoding="utf-8")
    budget = 2 * len(HOSTILE) * (TIMEOUT_S + MARGIN_S) + 30
    done = subprocess.run(
        [sys.executable, str(script), json.dumps(HOSTILE), str(TIMEOUT_S)],
        capture_output=True,
        text=True,
        timeout=budget,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    hostile = [row for row in results if row["answer"] in HOSTILE]
    assert sorted((row["where"], row["answer"]) for row in hostile) == sorted(
        (where, answer) for where in ("main", "thread") for answer in HOSTILE
    )
    for row in hostile:
        assert row["verdict"] is False, row
        assert row["seconds"] < TIMEOUT_S + MARGIN_S, row
    assert results[-1]["answer"] == "sane" and results[-1]["verdict"] is True


def test_default_deadline_is_bounded():
    start = time.monotonic()
    assert is_equivalent("9^{9^{9^{9}}}", "1") is False
    assert time.monotonic() - start < 5.0 + MARGIN_S


def test_rules_settle_common_answers_without_a_worker(monkeypatch):
    def no_pool():
        raise AssertionError("the rules should have settled this answer")

    monkeypatch.setattr("megathink.rewards.bounded_grading.shared_grader_pool", no_pool)
    assert is_equivalent("\\frac{1}{2}", "0.5") is True
    assert is_equivalent("1,000", "1000") is True
    assert is_equivalent("  ", "2") is False
    assert is_equivalent("Monday", "\\text{monday}") is True
    assert is_equivalent("7" * 3_000_000, "7") is False
    assert is_equivalent("1", "7" * 3_000_000) is False


def test_symbolic_answers_still_graded_and_trusted_path_agrees():
    pairs = [("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt2}", True), ("x^2 + 2x + 1", "(x+1)^2", True), ("\\pi", "3", False)]
    for pred, ref, expected in pairs:
        assert is_equivalent(pred, ref) is expected
        assert is_equivalent_trusted(pred, ref) is expected


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_its_own_pool_and_leaves_the_parents_worker_alone():
    pool = shared_grader_pool()
    assert is_equivalent("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt2}") is True
    parent_pids = pool.worker_pids
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        ok = is_equivalent("\\frac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt3}") and shared_grader_pool() is not pool
        shared_grader_pool().close()
        os._exit(0 if ok else 1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert shared_grader_pool() is pool and pool.worker_pids == parent_pids
    assert is_equivalent("\\frac{\\sqrt{5}}{5}", "\\frac{1}{\\sqrt5}") is True

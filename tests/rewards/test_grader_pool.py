"""GraderPool: untrusted answers are wrong within the time limit, workers are replaced, no leaks."""

import os
import threading
import time

import pytest

from megathink.config.reward import RewardConfig
from megathink.errors import ConfigError, DataError
from megathink.rewards import GraderPool
from megathink.rewards.grader_worker import SELF_DESTRUCT_GRACE_S, start_worker

TIMEOUT_S = 1.0
# An answer's clock starts when a worker takes it; when every worker was just replaced, the
# answer first waits for a fresh worker to start (spawn + import sympy: ~1 s, more on a busy CI).
MARGIN_S = 4.0

ADVERSARIAL = {
    "power_tower": "9^{9^{9^{9}}}",
    "huge_exponent": "10^{10^{10}}",
    "two_tower": "2^{2^{2^{2^{2^{2}}}}}",
    "deep_frac_40": "\\frac{" * 40 + "1" + "}{2}" * 40,
    "nested_braces_100k": "{" * 100_000 + "}" * 100_000,
    "megabytes_of_digits": "7" * 3_000_000,
    "broken_latex": "\\frac{1}{\\sqrt{\\left(}}}\\right]^{",
    "unbalanced": "\\frac{1}{2",
    "nul_bytes": "1\x002\x00",
    "eval_payload": "__import__('os').system('echo pwned')",
    "backslashes": "\\" * 900,
    "deep_sqrt": "\\sqrt{" * 45 + "2" + "}" * 45,
}


@pytest.fixture(scope="module")
def pool():
    with GraderPool(workers=2, timeout_s=TIMEOUT_S, memory_mb=512) as shared:
        shared.wait_ready()
        yield shared


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_each_adversarial_answer_is_wrong_within_the_timeout(pool, name):
    start = time.monotonic()
    assert pool.grade_many([(ADVERSARIAL[name], "1")]) == [False]
    assert time.monotonic() - start < TIMEOUT_S + MARGIN_S


def test_normal_answers_still_graded_in_a_batch_with_pathological_ones(pool):
    items = []
    expected = []
    names = ["power_tower", "nested_braces_100k", "deep_frac_40", "broken_latex", "nul_bytes", "eval_payload"]
    for answer in (ADVERSARIAL[name] for name in names):
        items += [(answer, "1"), ("\\frac{1}{2}", "0.5"), ("(1, 2)", "(2, 1)")]
        expected += [False, True, False]
    items.append(("x = \\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt2}"))
    expected.append(True)
    start = time.monotonic()
    assert pool.grade_many(items) == expected
    # Two answers hang: about one round of timeout plus worker restarts.
    assert time.monotonic() - start < 2 * (TIMEOUT_S + MARGIN_S)


def test_stuck_worker_is_replaced_and_pool_keeps_working(pool):
    before = set(pool.worker_pids)
    assert pool.grade_many([("9^{9^{9^{9}}}", "1")]) == [False]
    after = set(pool.worker_pids)
    assert len(before - after) == 1
    assert pool.grade_many([("\\frac{3}{6}", "0.5"), ("2", "3")]) == [True, False]


def test_worker_killed_from_outside_is_replaced(pool):
    pool.wait_ready()
    for pid in pool.worker_pids:
        os.kill(pid, 9)
    time.sleep(0.2)
    assert pool.grade_many([("1/4", "0.25"), ("5", "6"), ("\\sqrt{4}", "2")]) == [True, False, True]


def test_grade_many_from_a_worker_thread(pool):
    out = []
    items = [("10^{10^{10}}", "1"), ("1,000", "1000"), ("\\text{Monday}", "monday")]
    thread = threading.Thread(target=lambda: out.append(pool.grade_many(items)))
    thread.start()
    thread.join(TIMEOUT_S + MARGIN_S + 10)
    assert out == [[False, True, True]]


def test_memory_cap_is_set_on_workers(pool):
    pool.wait_ready()
    for pid in pool.worker_pids:
        with open(f"/proc/{pid}/limits", encoding="utf-8") as limits:
            line = next(row for row in limits if row.startswith("Max address space"))
        assert line.split()[3:5] == [str(512 * 2**20)] * 2


def test_close_leaves_no_processes():
    pool = GraderPool.from_config(RewardConfig(grade_timeout_s=TIMEOUT_S, grade_workers=1, grade_memory_mb=512))
    pids = set(pool.worker_pids)
    assert pool.grade_many([("9^{9^{9^{9}}}", "1"), ("1", "1.0")]) == [False, True]
    pids |= set(pool.worker_pids)
    assert len(pids) == 2  # the stuck worker was replaced
    pool.close()
    pool.close()  # idempotent
    for pid in pids:  # stopped and reaped, not zombies
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with pytest.raises(RuntimeError):
        pool.grade_many([("1", "2")])


def test_unclosed_pool_is_cleaned_up_when_collected():
    import gc

    pool = GraderPool(workers=1, timeout_s=TIMEOUT_S)
    pids = pool.worker_pids
    del pool
    gc.collect()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_worker_left_alone_on_a_hanging_answer_ends_itself():
    # The pool kills a worker at the answer's deadline; if the pool's process cannot (it died),
    # the worker's own timer ends it a little later instead of spinning forever.
    worker = start_worker(memory_mb=1024)
    try:
        assert worker.conn.poll(60) and worker.conn.recv() == ("ready",)
        start = time.monotonic()
        worker.conn.send((0, "9^{9^{9^{9}}}", "1", TIMEOUT_S))
        assert worker.exit_code(TIMEOUT_S + SELF_DESTRUCT_GRACE_S + 10) is not None
        assert time.monotonic() - start >= TIMEOUT_S + SELF_DESTRUCT_GRACE_S - 0.5
    finally:
        worker.kill()


def test_prechecks_need_no_worker():
    with GraderPool(workers=1, timeout_s=TIMEOUT_S) as pool:
        assert pool.grade_many([]) == []
        assert pool.grade_many([("5", "5"), ("", "5"), ("9" * 5000, "9")]) == [True, False, False]
        with pytest.raises(DataError):
            pool.grade_many([("5",)])
        with pytest.raises(DataError):
            pool.grade_many([(5, "5")])


def test_invalid_settings():
    with pytest.raises(ConfigError):
        GraderPool(workers=0)
    with pytest.raises(ConfigError):
        GraderPool(timeout_s=0)
    with pytest.raises(ConfigError):
        GraderPool(memory_mb=32)


def test_memory_cap_turns_a_memory_bomb_into_a_quick_wrong():
    # 2^(10^9) has 125 MB of digits: uncapped, sympy spends ~13 s on it; under a 128 MiB cap the
    # worker gets MemoryError within about a second, answers False and stays alive.
    with GraderPool(workers=1, timeout_s=30.0, memory_mb=128) as pool:
        pool.wait_ready()
        pids = pool.worker_pids
        start = time.monotonic()
        assert pool.grade("2^{10^{9}}", "1") is False
        assert time.monotonic() - start < 8.0
        assert pool.worker_pids == pids
        assert pool.grade("\\frac{2}{4}", "0.5") is True

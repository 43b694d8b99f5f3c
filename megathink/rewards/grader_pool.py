"""`GraderPool`: time-bounded, memory-capped answer grading in worker processes.

Symbolic grading of an untrusted answer can hang (`9^{9^{9^{9}}}`), exhaust memory
(`10^{10^{10}}`) or crash, and math-verify's own timeout uses `signal.alarm`, which only works
on the main thread (PLATFORM_NOTES.md). So answers are graded in separate processes:

* Workers are fresh Python processes (`grader_worker.start_worker`: `sys.executable -c`, not
  multiprocessing's spawn, so the caller's main script is never re-imported and the pool can be
  started from any thread of a process that already runs torch). On start each worker ignores
  SIGINT, caps its own address space with `resource.setrlimit(RLIMIT_AS, memory_mb MiB)`,
  imports math-verify and grades one warm-up pair, then reports ready; an allocation past the
  cap raises MemoryError inside the worker, which counts as "wrong".
* Each worker has its own socket pair and runs one answer at a time. The parent waits on all of
  them with a deadline per answer (`timeout_s`, or the call's own `timeout_s`, counted from when
  the answer is sent). An answer
  that is not back by its deadline, or whose worker dies, is wrong; that worker is killed
  (SIGKILL), reaped and replaced, and the other answers keep going on the other workers.
* Cheap pre-checks (`equivalence.precheck`: exact match, length cap, NUL bytes, brace depth)
  run in the caller's process and never reach a worker.
* `close()` (also on `with` exit, garbage collection and interpreter exit) asks each worker to
  stop, kills any that does not within a second, and reaps them all: no zombies. The pool is
  usable from any thread; calls from several threads are serialised by a lock. A forked child
  that inherits a pool never stops its parent's workers.

A worker that reports it cannot start (the memory cap is too small for Python and sympy, or
math-verify is missing), or more than `MAX_STARTUP_DEATHS` workers in a row that die while
starting, raise `ConfigError` naming `reward.grade_memory_mb`.

`megathink.rewards.is_equivalent` grades through one process-wide pool of this kind
(`bounded_grading.py`), so the public function is time-bounded too.
"""

from __future__ import annotations

import multiprocessing.connection
import os
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from megathink.errors import ConfigError, DataError
from megathink.rewards.equivalence import MAX_ANSWER_CHARS, precheck
from megathink.rewards.grader_worker import WorkerProcess, start_worker

STARTUP_TIMEOUT_S = 120.0
"""How long a worker may take to start (spawn, import sympy and math-verify, warm up)."""

MAX_STARTUP_DEATHS = 3
"""Workers that may die while starting (killed from outside, say) before the pool gives up."""

_STOP_GRACE_S = 1.0


@dataclass
class _Worker:
    process: WorkerProcess
    started_at: float
    ready: bool = False

    @property
    def conn(self) -> multiprocessing.connection.Connection:
        return self.process.conn


class GraderPool:
    """A small pool of grading processes; `grade_many` grades (answer, reference) pairs.

    `workers` processes, each answer bounded by `timeout_s` seconds and each worker by
    `memory_mb` MiB of address space; answers longer than `max_answer_chars` are wrong unless
    they equal the reference exactly. Use as a context manager or call `close()`.
    """

    def __init__(
        self,
        workers: int = 2,
        timeout_s: float = 5.0,
        memory_mb: int = 1024,
        max_answer_chars: int = MAX_ANSWER_CHARS,
    ) -> None:
        _check_positive_int("reward.grade_workers", workers, 1)
        _check_positive_int("reward.grade_memory_mb", memory_mb, 64)
        _check_positive_int("max_answer_chars", max_answer_chars, 1)
        self.timeout_s = _check_timeout("reward.grade_timeout_s", timeout_s)
        self.memory_mb = memory_mb
        self.max_answer_chars = max_answer_chars
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._closed = False
        self._startup_deaths = 0
        self._finalizer = weakref.finalize(self, _stop_workers, self._workers, os.getpid())
        for _ in range(workers):
            self._workers.append(self._start_worker())

    @classmethod
    def from_config(cls, cfg: Any) -> "GraderPool":
        """A pool sized by a `RewardConfig` (grade_workers, grade_timeout_s, grade_memory_mb)."""
        return cls(workers=cfg.grade_workers, timeout_s=cfg.grade_timeout_s, memory_mb=cfg.grade_memory_mb)

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the current workers (they change when a stuck worker is replaced)."""
        return [worker.process.pid for worker in self._workers]

    def grade(self, pred: str, ref: str) -> bool:
        """Grade one (answer, reference) pair; see `grade_many`."""
        return self.grade_many([(pred, ref)])[0]

    def grade_many(self, items: Sequence[tuple[str, str]], timeout_s: Optional[float] = None) -> list[bool]:
        """Whether each predicted answer is equivalent to its reference, in input order.

        Each item gets at most `timeout_s` seconds of a worker (the pool's own when None); one
        that times out or crashes its worker is False, and the others are still graded.
        """
        deadline_s = self.timeout_s if timeout_s is None else _check_timeout("timeout_s", timeout_s)
        pairs = _check_items(items)
        results = [False] * len(pairs)
        pending: list[int] = []
        for index, (pred, ref) in enumerate(pairs):
            verdict = precheck(pred, ref, self.max_answer_chars)
            if verdict is None:
                pending.append(index)
            else:
                results[index] = verdict
        if not pending:
            return results
        with self._lock:
            if self._closed:
                raise RuntimeError("GraderPool.grade_many called after close().")
            self._run(pairs, pending[::-1], results, deadline_s)
        return results

    def wait_ready(self) -> None:
        """Block until every worker has started (to pay the start-up cost up front)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("GraderPool.wait_ready called after close().")
            while not all(worker.ready for worker in self._workers):
                self._wait_and_collect({}, [])

    def close(self) -> None:
        """Stop and reap every worker. Safe to call more than once."""
        with self._lock:
            self._closed = True
            self._finalizer()

    def __enter__(self) -> "GraderPool":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self, pairs: list[tuple[str, str]], todo: list[int], results: list[bool], timeout_s: float) -> None:
        # todo is a stack (reversed pending list); busy maps a worker slot to (item, deadline).
        busy: dict[int, tuple[int, float]] = {}
        try:
            while todo or busy:
                for slot, worker in enumerate(self._workers):
                    if not todo or slot in busy or not worker.ready:
                        continue
                    index = todo.pop()
                    try:
                        worker.conn.send((index, pairs[index][0], pairs[index][1], timeout_s))
                    except OSError:  # the worker died while idle: replace it, retry the item
                        todo.append(index)
                        self._replace(slot)
                        continue
                    busy[slot] = (index, time.monotonic() + timeout_s)
                self._wait_and_collect(busy, results)
        except BaseException:
            # Interrupted (KeyboardInterrupt, say): a worker still busy with an item of this call
            # would answer the next call late, so replace it.
            if not self._closed:
                for slot in list(busy):
                    self._replace(slot)
            raise

    def _wait_and_collect(self, busy: dict[int, tuple[int, float]], results: list[bool]) -> None:
        now = time.monotonic()
        deadlines = [deadline for _, deadline in busy.values()]
        deadlines += [w.started_at + STARTUP_TIMEOUT_S for w in self._workers if not w.ready]
        wait_s = max(0.0, min(deadlines) - now) if deadlines else 0.0
        watched = {id(w.conn): slot for slot, w in enumerate(self._workers) if slot in busy or not w.ready}
        ready_conns = multiprocessing.connection.wait([self._workers[s].conn for s in watched.values()], wait_s)
        for conn in ready_conns:
            slot = watched[id(conn)]
            worker = self._workers[slot]
            try:
                message = conn.recv()
            except (EOFError, OSError):
                message = None
            if message is None:  # the worker died
                if not worker.ready:
                    self._startup_deaths += 1
                    if self._startup_deaths > MAX_STARTUP_DEATHS:
                        self._fail_startup(
                            f"{self._startup_deaths} grading workers in a row exited while starting "
                            f"(last exit code {worker.process.exit_code(1.0)})"
                        )
                busy.pop(slot, None)
                self._replace(slot)
            elif message[0] == "ready":
                worker.ready = True
                self._startup_deaths = 0
            elif message[0] == "error":
                self._fail_startup(f"a grading worker failed to start: {message[1]}")
            elif slot in busy and message[0] == busy[slot][0]:
                results[message[0]] = bool(message[1])
                del busy[slot]
        now = time.monotonic()
        for slot, (_, deadline) in list(busy.items()):
            if now >= deadline:  # too slow: wrong, and the worker is replaced
                del busy[slot]
                self._replace(slot)
        for worker in self._workers:
            if not worker.ready and now >= worker.started_at + STARTUP_TIMEOUT_S:
                self._fail_startup(f"a grading worker did not start within {STARTUP_TIMEOUT_S:.0f} s")

    def _start_worker(self) -> _Worker:
        return _Worker(process=start_worker(self.memory_mb), started_at=time.monotonic())

    def _replace(self, slot: int) -> None:
        self._workers[slot].process.kill()
        self._workers[slot] = self._start_worker()

    def _fail_startup(self, reason: str) -> None:
        self._closed = True
        self._finalizer()
        raise ConfigError(
            f"{reason}. reward.grade_memory_mb = {self.memory_mb!r} may be too small for Python with "
            "sympy (use at least 256), or math-verify is not installed (pip install -c constraints.txt -e .)."
        )


def _stop_workers(workers: list[_Worker], owner_pid: int) -> None:
    if os.getpid() != owner_pid:
        # A forked child holds a copy of the pool: the workers are its parent's, leave them running.
        workers.clear()
        return
    for worker in workers:
        try:
            worker.conn.send(None)
        except OSError:
            pass
    deadline = time.monotonic() + _STOP_GRACE_S
    for worker in workers:
        worker.process.exit_code(max(0.0, deadline - time.monotonic()))
        worker.process.kill()
    workers.clear()


def _check_items(items: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for position, item in enumerate(items):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise DataError(f"items[{position}] = {item!r:.80} is invalid: each item must be an (answer, reference) pair.")
        pairs.append((item[0], item[1]))
    return pairs


def _check_timeout(path: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"{path} = {value!r} is invalid: must be a number of seconds > 0.")
    return float(value)


def _check_positive_int(path: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{path} = {value!r} is invalid: must be an integer >= {low}.")


__all__ = ["MAX_STARTUP_DEATHS", "STARTUP_TIMEOUT_S", "GraderPool"]

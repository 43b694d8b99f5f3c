"""Run one job per item on at most `concurrency` threads and hand back each outcome as it finishes.

`run_concurrently(items, work, concurrency, recoverable)` is a generator of `Done` / `Failed`
outcomes in completion order, consumed by one thread (the caller's), which is the only one that
writes results. `work(item)` raising one of `recoverable` yields `Failed` and the others go on;
any other exception stops the run: no new item starts, and it is re-raised in the caller.

Workers are daemon threads pulling from a queue, and the caller waits with a short timeout, so
Ctrl-C (or a fatal error) returns at once even while requests are still in flight; the
threads die with the process, and what they were doing is lost (the journal only ever gets
finished questions).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar, Union

T = TypeVar("T")
R = TypeVar("R")

_POLL_S = 0.2


@dataclass(frozen=True)
class Done(Generic[T, R]):
    item: T
    result: R


@dataclass(frozen=True)
class Failed(Generic[T]):
    item: T
    error: BaseException


def run_concurrently(
    items: Sequence[T],
    work: Callable[[T], R],
    concurrency: int,
    recoverable: tuple[type[BaseException], ...],
) -> Iterator[Union[Done[T, R], Failed[T]]]:
    """Outcomes of `work(item)` for every item, at most `concurrency` at a time (see the module docstring)."""
    todo: queue.SimpleQueue[T] = queue.SimpleQueue()
    for item in items:
        todo.put(item)
    outcomes: queue.SimpleQueue[tuple[str, T, object]] = queue.SimpleQueue()
    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            try:
                item = todo.get_nowait()
            except queue.Empty:
                return
            try:
                outcomes.put(("done", item, work(item)))
            except recoverable as err:
                outcomes.put(("failed", item, err))
            except BaseException as err:  # noqa: BLE001 - handed to the caller, who re-raises it
                outcomes.put(("fatal", item, err))
                return

    threads = [threading.Thread(target=worker, name=f"distill-{i}", daemon=True)
               for i in range(min(concurrency, len(items)))]
    for thread in threads:
        thread.start()
    try:
        for _ in range(len(items)):
            while True:
                try:
                    kind, item, payload = outcomes.get(timeout=_POLL_S)
                    break
                except queue.Empty:
                    continue
            if kind == "done":
                yield Done(item, payload)  # type: ignore[arg-type]
            elif kind == "failed":
                yield Failed(item, payload)  # type: ignore[arg-type]
            else:
                raise payload  # type: ignore[misc]
    finally:
        stop.set()

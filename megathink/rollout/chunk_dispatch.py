"""Run a rollout's HTTP calls over an `EnginePool`, retrying failed ones on other engines.

`run_chunks(pool, chunks, call, ...)` runs `call(engine, chunk)` for every chunk, several at a
time (up to `INFLIGHT_PER_ENGINE` per engine: SGLang batches concurrent requests itself). A call
that fails with `EngineDown` takes its engine out of rotation and is retried, after
`backoff_s * 2**(attempt - 1)`, on the least busy other healthy engine (reviving dead ones
when none is left); after `max_retries` retries the whole rollout fails with a
`RolloutServerError` that lists every attempt. `EngineRefused` (the request itself is wrong)
fails at once. Results come back in chunk order, all of them or an exception: never a partial
batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, TypeVar

from megathink.rollout.engine_pool import EnginePool, EngineSlot
from megathink.rollout.http_client import EngineDown, EngineRefused, RolloutServerError

INFLIGHT_PER_ENGINE = 4

C = TypeVar("C")
R = TypeVar("R")


def run_chunks(
    pool: EnginePool, chunks: Sequence[C], call: Callable[[EngineSlot, C], R], *, max_retries: int, backoff_s: float,
    what: str = "/generate call",
) -> list[R]:
    if not chunks:
        return []

    def run(index: int) -> R:
        errors: list[str] = []
        avoid: Optional[EngineSlot] = None
        for attempt in range(max_retries + 1):
            if attempt:
                time.sleep(backoff_s * 2 ** (attempt - 1))
            slot = pool.acquire(avoid=avoid)
            try:
                return call(slot, chunks[index])
            except EngineDown as err:
                errors.append(f"try {attempt + 1} on {slot.describe()}: {err}")
                pool.mark_down(slot, err)
                avoid = slot
            except EngineRefused as err:
                raise RolloutServerError(f"rollout {slot.describe()} refused {what} {index + 1}/{len(chunks)}: {err}") from err
            finally:
                pool.release(slot)
        raise RolloutServerError(
            f"{what} {index + 1}/{len(chunks)} failed on all {max_retries + 1} tries (rollout.sglang.max_retries = "
            f"{max_retries}); the rollout step is abandoned, no partial batch is used: " + " | ".join(errors)
        )

    workers = max(1, min(len(chunks), INFLIGHT_PER_ENGINE * len(pool.slots)))
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rollout")
    try:
        futures = [executor.submit(run, i) for i in range(len(chunks))]
        return [future.result() for future in futures]
    finally:
        executor.shutdown(wait=True, cancel_futures=True)

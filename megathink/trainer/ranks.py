"""Which process of a torchrun job this is, and running a step on rank 0 only.

One process (the HF backend) is rank 0 of a world of one, so stage code reads the same for both
backends: files, logs and progress bars come from `is_main_process()`; rollouts and grading run
on rank 0 and reach every rank through `on_main_then_broadcast` (the other ranks must train on
exactly the same batch, and a grader time-out must not be decided differently per rank).
Evaluations also run on rank 0 alone; `wait_for_main` is the barrier the other ranks wait at
meanwhile (for evaluations and before each rollout broadcast), and turns a collective time-out (the process group's deadline,
`trainer.dist_timeout_minutes`) into a `CollectiveTimeoutError` that names the field.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

import torch.distributed as dist

from megathink.errors import CollectiveTimeoutError

T = TypeVar("T")


def process_rank() -> int:
    """This process's global rank: the process group's once it exists, torchrun's RANK before."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    return process_rank() == 0


def distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def on_main_then_broadcast(fn: Callable[[], T], what: str, timeout_minutes: float, shorten: str = "") -> T:
    """`fn()` on rank 0; its (picklable) result on every rank. Without a process group: `fn()`.

    The other ranks wait for rank 0 to finish `fn` at `wait_for_main` (`what`, `timeout_minutes`:
    a store wait that names `trainer.dist_timeout_minutes` past its deadline, and `shorten`, how to make
    `fn` faster), and only then enter
    the broadcast, so a slow rollout never sits in a device collective under its watchdog."""
    if not distributed():
        return fn()
    box: list[object] = [fn() if dist.get_rank() == 0 else None]
    wait_for_main(what, timeout_minutes, shorten)
    dist.broadcast_object_list(box, src=0)
    return box[0]  # type: ignore[return-value]


def barrier() -> None:
    if distributed():
        dist.barrier()


def wait_for_main(
    what: str, timeout_minutes: float,
    shorten: str = "fewer eval prompts or seeds, a lower eval.max_new_tokens, rollout.engine=sglang",
) -> None:
    """Where the other ranks wait for work rank 0 does alone (`what`, e.g. "the SFT stage's final
    evaluation"); call it on every rank, at the same point of the program.

    Rank 0 posts a key in the process group's store when it gets here; the others wait for the
    key for `timeout_minutes` (`trainer.dist_timeout_minutes`, the deadline the process group was
    created with) and raise `CollectiveTimeoutError` naming the field past it, and `shorten` (the knobs
    that make `what` faster). The wait is on the
    store (TCP), not in a device collective, so a long evaluation never sits in an NCCL kernel
    under its watchdog. Other failures (rank 0 died) are raised as they are. Without a process
    group: nothing."""
    global _waits
    if not distributed():
        return
    _waits += 1
    store = dist.distributed_c10d._get_default_store()
    key = f"megathink/wait_for_main/{_waits}"
    if dist.get_rank() == 0:
        store.set(key, "1")
        return
    try:
        store.wait([key], timedelta(minutes=timeout_minutes))
    except Exception as err:  # the store raises DistStoreError (a RuntimeError) on its deadline
        if not is_timeout(err):
            raise
        raise CollectiveTimeoutError(
            f"rank {dist.get_rank()} waited more than trainer.dist_timeout_minutes = {timeout_minutes:g} minutes "
            f"for {what} on rank 0: raise trainer.dist_timeout_minutes above its duration (e.g. "
            f"trainer.dist_timeout_minutes={max(60, int(4 * timeout_minutes))}), or make it shorter ({shorten}). "
            f"({type(err).__name__}: {err})"
        ) from err


_waits = 0
"""`wait_for_main` calls so far in this process: every rank counts the same, so the n-th call of
each rank waits for the same key."""


def is_timeout(err: BaseException) -> bool:
    """Whether a collective's or the store's exception reports its deadline passing."""
    text = f"{type(err).__name__} {err}".lower()
    return any(word in text for word in ("timed out", "timeout", "time out", "deadline"))

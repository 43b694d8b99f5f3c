"""Which process of a torchrun job this is, and running a step on rank 0 only.

One process (the HF backend) is rank 0 of a world of one, so stage code reads the same for both
backends: files, logs and progress bars come from `is_main_process()`; rollouts and grading run
on rank 0 and reach every rank through `on_main_then_broadcast` (the other ranks must train on
exactly the same batch, and a grader time-out must not be decided differently per rank).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import torch.distributed as dist

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


def on_main_then_broadcast(fn: Callable[[], T]) -> T:
    """`fn()` on rank 0; its (picklable) result on every rank. Without a process group: `fn()`."""
    if not distributed():
        return fn()
    box: list[object] = [fn() if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]  # type: ignore[return-value]


def barrier() -> None:
    if distributed():
        dist.barrier()

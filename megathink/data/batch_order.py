"""Which questions each SFT batch takes: shuffled epochs, resumable, computable ahead of time.

One rule serves every SFT reader (the in-memory `SFTBatchIterator`, the memory-mapped shard
reader and the DALI reader), so they produce the same batches for the same seed:

- epoch e visits question indices 0..N-1 in the order `random.Random(f"sft:{seed}:{e}")`
  shuffles them into;
- a batch takes the next `per_batch` indices of that order; when fewer than `per_batch` are
  left, the rest of the epoch is skipped and the next epoch starts, so every batch is full;
- the state is (epoch, position), position being how many indices of the epoch were taken.

`advance` gives the state after any number of batches without drawing them, which lets a
prefetching reader compute batch k on its own (in a worker process) while the training loop
still reports the state of the batches it actually consumed.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from megathink.errors import DataError


def epoch_order(size: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled question indices of one epoch: int64 [size]."""
    order = list(range(size))
    random.Random(f"sft:{seed}:{epoch}").shuffle(order)
    return np.asarray(order, dtype=np.int64)


class EpochOrder:
    """Batches of `per_batch` question indices out of `size`, epoch after epoch (module docstring)."""

    def __init__(self, size: int, per_batch: int, seed: int) -> None:
        if per_batch < 1:
            raise DataError(f"questions_per_batch = {per_batch} must be >= 1.")
        if size < per_batch:
            raise DataError(
                f"only {size} SFT questions for {per_batch} questions per batch: lower the "
                "batch size or give more data (or raise data.max_seq_len if many were dropped)."
            )
        self.size = size
        self.per_batch = per_batch
        self.seed = seed
        self.epoch = 0
        self.position = 0
        self._cached_epoch = -1
        self._cached_order = np.empty(0, dtype=np.int64)

    @property
    def batches_per_epoch(self) -> int:
        return self.size // self.per_batch

    def order(self, epoch: int) -> np.ndarray:
        """`epoch_order` of this (size, seed), the last one kept (an epoch is reused batch after batch)."""
        if epoch != self._cached_epoch:
            self._cached_order = epoch_order(self.size, self.seed, epoch)
            self._cached_epoch = epoch
        return self._cached_order

    def advance(self, epoch: int, position: int, batches: int) -> tuple[int, int]:
        """The (epoch, position) after taking `batches` batches from (epoch, position)."""
        left = (self.size - position) // self.per_batch  # full batches left in this epoch
        if batches <= left:
            return epoch, position + batches * self.per_batch
        later = batches - left - 1  # batches after the first one of the next epoch
        per_epoch = self.batches_per_epoch
        return epoch + 1 + later // per_epoch, (later % per_epoch + 1) * self.per_batch

    def indices_at(self, epoch: int, position: int) -> list[int]:
        """The question indices of the batch taken from state (epoch, position)."""
        if position + self.per_batch > self.size:
            epoch, position = epoch + 1, 0
        return self.order(epoch)[position : position + self.per_batch].tolist()

    def next_indices(self) -> list[int]:
        """The next batch's question indices; the state moves past them."""
        chosen = self.indices_at(self.epoch, self.position)
        self.epoch, self.position = self.advance(self.epoch, self.position, 1)
        return chosen

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        epoch, position = int(state["epoch"]), int(state["position"])
        if epoch < 0 or not 0 <= position <= self.size:
            raise DataError(
                f"SFT data state {state!r} does not fit {self.size} questions: the checkpoint was written "
                "for other SFT data; resume with the same data (and data.max_seq_len) or start a fresh run."
            )
        self.epoch, self.position = epoch, position

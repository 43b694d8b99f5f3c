"""SFT batches from memory-mapped shards: the same batches as `SFTBatchIterator` on the same data.

`ShardBatchIterator` draws question indices with `EpochOrder` (the in-memory iterator's own
rule: same seed, same order, same skipped tail, same (epoch, position) state) and collates the
questions' rows into an `SFTBatch` equal to what `collate_sft` makes of the same examples:
input_ids [B, T] long right-padded with pad_id, attention_mask [B, T] long, loss_mask [B, T]
float32, T the longest row of the batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from megathink.data.batch_order import EpochOrder
from megathink.data.shards.reader import ShardRows, ShardSet
from megathink.data.types import SFTBatch


def row_masks(lengths: torch.Tensor, target_starts: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(attention_mask [B, T] long, loss_mask [B, T] float32) of rows with these lengths and mask starts [B]."""
    positions = torch.arange(width, device=lengths.device)[None, :]  # [1, T]
    real = positions < lengths[:, None]  # [B, T]
    trained = real & (positions >= target_starts[:, None])  # [B, T]
    return real.long(), trained.to(torch.float32)


def collate_rows(rows: ShardRows, pad_id: int) -> SFTBatch:
    """Right-padded batch of shard rows, equal to `collate_sft` of the same examples."""
    width = int(rows.lengths.max())
    ids = np.full((len(rows.tokens), width), pad_id, dtype=np.int64)  # [B, T]
    for b, tokens in enumerate(rows.tokens):
        ids[b, : len(tokens)] = tokens
    attention_mask, loss_mask = row_masks(torch.from_numpy(rows.lengths), torch.from_numpy(rows.target_starts), width)
    return SFTBatch(input_ids=torch.from_numpy(ids), attention_mask=attention_mask, loss_mask=loss_mask,
                    modes=rows.modes)


class ShardBatchIterator:
    """Endless SFT batches of `questions_per_batch` questions read from `shards` (module docstring)."""

    def __init__(self, shards: ShardSet, questions_per_batch: int, seed: int, pad_id: int) -> None:
        self.shards = shards
        self.order = EpochOrder(len(shards), questions_per_batch, seed)
        self.pad_id = pad_id

    @property
    def batches_per_epoch(self) -> int:
        return self.order.batches_per_epoch

    def __iter__(self) -> "ShardBatchIterator":
        return self

    def __next__(self) -> SFTBatch:
        return collate_rows(self.shards.rows(self.order.next_indices()), self.pad_id)

    def state_dict(self) -> dict[str, Any]:
        return self.order.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.order.load_state_dict(state)

    def close(self) -> None:
        """Nothing to release (the memory maps go with the object)."""

"""SFT batches from shards prepared ahead by NVIDIA DALI: the same batches as `ShardBatchIterator`.

The DALI pipeline has one external source, `ShardBatchSource`, which returns batch k's rows
(each row's token ids, and one (length, mask start, mode) triple per row: two outputs, as
DALI's cost per batch grows with their number) computed from (start state, k) alone with
`EpochOrder.advance`, so DALI may prepare batches `data.sft_prefetch` steps ahead, in worker
processes (`data.sft_reader_workers`, DALI's parallel external source), without changing the
order. DALI pads the token ids to the batch's longest row (`fn.pad`, on the GPU when the
pipeline has a device); the masks are then built from lengths and mask starts with the plain
reader's own `row_masks`. The state reported for checkpoints is that of the batches the
training loop took, not of those prefetched.

CPU pipelines (`device_id=None`) run anywhere DALI installs; with a GPU the padding runs on it
and the batch arrives on that device. DALI is imported only when a pipeline is built;
without it, asking for this reader fails with the package to install.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from megathink.data.batch_order import EpochOrder
from megathink.data.shards.batches import row_masks
from megathink.data.shards.format import MODES
from megathink.data.shards.reader import ShardSet
from megathink.data.types import SFTBatch
from megathink.errors import ConfigError

OUTPUTS = ("input_ids", "rows")


def require_dali() -> Any:
    """The `nvidia.dali` module, or a ConfigError naming the setting and the package to install."""
    try:
        import nvidia.dali as dali
    except ImportError as err:
        raise ConfigError(
            "data.sft_reader = 'dali' needs NVIDIA DALI, which is not installed: `pip install megathink[dali]` "
            f"(the nvidia-dali-cuda120 package), or use data.sft_reader=plain. ({err})"
        ) from err
    return dali


class ShardBatchSource:
    """DALI batch source: batch `info.iteration` after state (epoch, position), as per-row arrays.

    Picklable without its memory maps (DALI's worker processes open the shards themselves)."""

    def __init__(self, folder: Path, max_seq_len: Optional[int], per_batch: int, seed: int, epoch: int,
                 position: int) -> None:
        self.folder, self.max_seq_len = folder, max_seq_len
        self.per_batch, self.seed, self.epoch, self.position = per_batch, seed, epoch, position
        self._shards: Optional[ShardSet] = None
        self._order: Optional[EpochOrder] = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_shards": None, "_order": None}

    def __call__(self, info: Any) -> tuple[list[np.ndarray], ...]:
        if self._shards is None:  # checked by the training process already
            self._shards = ShardSet.open(self.folder, max_seq_len=self.max_seq_len, verify=False)
            self._order = EpochOrder(len(self._shards), self.per_batch, self.seed)
        assert self._order is not None
        epoch, position = self._order.advance(self.epoch, self.position, int(info.iteration))
        rows = self._shards.rows(self._order.indices_at(epoch, position))
        ids = [np.asarray(tokens, dtype=np.int64) for tokens in rows.tokens]  # B x [length]
        modes = np.array([MODES.index(mode) for mode in rows.modes], dtype=np.int64)  # [B]
        meta = np.stack([rows.lengths, rows.target_starts, modes], axis=1)  # [B, 3]: length, mask start, mode
        return ids, list(meta)


class DaliShardBatchIterator:
    """Endless SFT batches of `questions_per_batch` questions, prefetched by a DALI pipeline."""

    def __init__(self, shards: ShardSet, questions_per_batch: int, seed: int, pad_id: int, *,
                 max_seq_len: Optional[int], prefetch: int = 2, workers: int = 0, device_id: Optional[int] = None,
                 threads: int = 1) -> None:
        require_dali()
        self.shards = shards
        self.order = EpochOrder(len(shards), questions_per_batch, seed)
        self.pad_id = pad_id
        self.max_seq_len = max_seq_len
        self.prefetch, self.workers, self.device_id, self.threads = prefetch, workers, device_id, threads
        self._start = (0, 0)  # the state the running pipeline started from
        self._taken = 0  # batches handed out since then
        self._pipe: Any = None
        self._dali_iter: Any = None

    @property
    def batches_per_epoch(self) -> int:
        return self.order.batches_per_epoch

    def __iter__(self) -> "DaliShardBatchIterator":
        return self

    def __next__(self) -> SFTBatch:
        if self._dali_iter is None:
            self._build()
        out = next(self._dali_iter)[0]
        self._taken += 1
        ids = out["input_ids"]  # [B, T] long, padded by DALI
        meta = out["rows"]  # [B, 3] long on the CPU: length, mask start, mode
        attention_mask, loss_mask = row_masks(meta[:, 0].to(ids.device), meta[:, 1].to(ids.device), ids.shape[1])
        modes = tuple(MODES[m] for m in meta[:, 2].tolist())
        return SFTBatch(input_ids=ids, attention_mask=attention_mask, loss_mask=loss_mask, modes=modes)

    def state_dict(self) -> dict[str, Any]:
        epoch, position = self.order.advance(*self._start, self._taken)
        return {"epoch": epoch, "position": position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.order.load_state_dict(state)  # validates it
        self.close()
        self._start, self._taken = (self.order.epoch, self.order.position), 0

    def close(self) -> None:
        """Stop the pipeline (and its workers); the next batch starts a new one where this one stopped."""
        if self._pipe is not None:
            self._start, self._taken = self.order.advance(*self._start, self._taken), 0
        self._dali_iter, self._pipe = None, None

    def _build(self) -> None:
        dali = require_dali()
        from nvidia.dali import fn, types
        from nvidia.dali.plugin.pytorch import DALIGenericIterator

        source = ShardBatchSource(self.shards.folder, self.max_seq_len, self.order.per_batch, self.order.seed,
                                  *self._start)
        rows = self.order.per_batch * self.shards.per_question
        parallel = self.workers > 0
        pipe = dali.pipeline.Pipeline(
            batch_size=rows, num_threads=self.threads, device_id=self.device_id,
            prefetch_queue_depth=self.prefetch, py_num_workers=max(self.workers, 1), py_start_method="spawn",
        )
        with pipe:
            ids, meta = fn.external_source(
                source=source, num_outputs=len(OUTPUTS), batch=True, batch_info=True, parallel=parallel,
                dtype=[types.INT64, types.INT64],
            )
            if self.device_id is not None:
                ids = ids.gpu()
            ids = fn.pad(ids, axes=(0,), fill_value=self.pad_id)
            pipe.set_outputs(ids, meta)
        pipe.build()
        self._pipe = pipe
        self._dali_iter = DALIGenericIterator([pipe], list(OUTPUTS))


def dali_device_id(device: str) -> Optional[int]:
    """The DALI device for a trainer.device: the current CUDA device when training on one, else None (CPU)."""
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return None
    return torch.cuda.current_device() if torch.cuda.is_available() else None

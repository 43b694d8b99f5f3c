"""The SFT stage's batch iterator, whichever way the data comes: one call for the trainer.

    data.sft_shards unset                 records (toy task or data.sft_path) tokenized in memory
                                          -> SFTBatchIterator
    data.sft_shards, sft_reader='plain'   memory-mapped shards -> ShardBatchIterator
    data.sft_shards, sft_reader='dali'    the same shards prefetched by NVIDIA DALI -> DaliShardBatchIterator

All three give the same batches for the same data and seed, and the same resumable
(epoch, position) state, so a run may switch reader between resumes. Every iterator has
`__next__`, `state_dict`, `load_state_dict` and `close`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, Optional, Protocol, Sequence

from megathink.config.run import RunConfig
from megathink.data.sft_examples import SFTBatchIterator, prepare_sft_pairs
from megathink.data.types import HybridSFTRecord, SFTBatch, TokenizerBundle
from megathink.errors import ConfigError

log = logging.getLogger(__name__)


class SFTBatchSource(Protocol, Iterator[SFTBatch]):
    """What the SFT loop reads batches from."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def build_sft_batches(
    cfg: RunConfig, bundle: TokenizerBundle, records: Optional[Sequence[HybridSFTRecord]] = None
) -> SFTBatchSource:
    """The SFT batch iterator of `cfg` (module docstring).

    `records` are the training records when `data.sft_shards` is unset (the toy task's, or
    those of data.sft_path) and must be None when it is set.
    """
    data = cfg.data
    if data.sft_shards is None:
        if records is None:
            raise ValueError("build_sft_batches needs the SFT records when data.sft_shards is unset")
        return _in_memory(cfg, bundle, records)
    if records is not None:
        raise ValueError("build_sft_batches got records and data.sft_shards: the shards replace the records")
    from megathink.data.shards.reader import open_shards

    shards = open_shards(
        data.sft_shards, bundle, cfg.tokenizer, long_prefix=data.long_prefix,
        nothinking_answers=cfg.sft.nothinking_answers, max_seq_len=data.max_seq_len, verify=data.sft_shards_verify,
    )
    log.info(
        "SFT shards %s: %d questions, %d dropped as longer than data.max_seq_len, %d shard files, reader %s",
        data.sft_shards, len(shards), shards.dropped, len(shards.manifest.shards), data.sft_reader,
    )
    if len(shards) == 0:
        raise ConfigError(
            f"every question of data.sft_shards = {data.sft_shards!r} is longer than data.max_seq_len = "
            f"{data.max_seq_len} tokens: raise data.max_seq_len (up to the shards' "
            f"{shards.manifest.encoding.get('data.max_seq_len')})."
        )
    if data.sft_reader == "dali":
        from megathink.data.shards.dali_reader import DaliShardBatchIterator, dali_device_id

        return DaliShardBatchIterator(
            shards, cfg.sft.micro_batch_size, data.seed, bundle.pad_id, max_seq_len=data.max_seq_len,
            prefetch=data.sft_prefetch, workers=data.sft_reader_workers, device_id=dali_device_id(cfg.trainer.device),
        )
    from megathink.data.shards.batches import ShardBatchIterator

    return ShardBatchIterator(shards, cfg.sft.micro_batch_size, data.seed, bundle.pad_id)


def _in_memory(cfg: RunConfig, bundle: TokenizerBundle, records: Sequence[HybridSFTRecord]) -> SFTBatchIterator:
    pairs, dropped = prepare_sft_pairs(
        records, bundle, cfg.tokenizer, cfg.data.max_seq_len,
        long_prefix=cfg.data.long_prefix, nothinking_answers=cfg.sft.nothinking_answers,
    )
    log.info("SFT data: %d questions kept, %d dropped as longer than data.max_seq_len", len(pairs), dropped)
    if not pairs:
        raise ConfigError(
            f"all {dropped} SFT questions are longer than data.max_seq_len = {cfg.data.max_seq_len} tokens "
            "(prompt + answer): raise data.max_seq_len or shorten the answers."
        )
    return SFTBatchIterator(pairs, cfg.sft.micro_batch_size, cfg.data.seed, bundle.pad_id)

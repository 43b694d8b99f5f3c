"""Hybrid records to SFT examples for the shard writer, in order, in this process or a worker pool.

Each record goes through `encode_sft_pair`, the builder the in-memory SFT path uses, so shard
contents equal what that path produces. With `workers > 1`, windows of records are encoded by
spawned worker processes (each loads the tokenizer of the same `TokenizerConfig` once) and
come back in input order; one window at a time is in flight, so memory stays bounded however
large the input file is.
"""

from __future__ import annotations

import itertools
import multiprocessing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Optional

from megathink.config.tokenizer import TokenizerConfig
from megathink.data.sft_examples import SFTPair, encode_sft_pair
from megathink.data.types import HybridSFTRecord, TokenizerBundle

CHUNK_RECORDS = 64
"""Records per task sent to a worker."""

CHUNKS_PER_WORKER = 8
"""Tasks per worker in one window (the window is read, encoded and written before the next)."""


@dataclass(frozen=True)
class EncodeSettings:
    """Everything `encode_sft_pair` needs besides the tokenizer itself (picklable for workers)."""

    tokenizer: TokenizerConfig
    long_prefix: str
    nothinking_answers: bool


def encode_records(
    records: Iterable[HybridSFTRecord], bundle: TokenizerBundle, settings: EncodeSettings, workers: int = 1
) -> Iterator[SFTPair]:
    """The examples of each record, in input order (see the module docstring)."""
    if workers <= 1:
        for record in records:
            yield _encode(record, bundle, settings)
        return
    context = multiprocessing.get_context("spawn")  # no fork of a process that ran a tokenizer
    with context.Pool(workers, initializer=_init_worker, initargs=(settings,)) as pool:
        records = iter(records)
        window = CHUNK_RECORDS * CHUNKS_PER_WORKER * workers
        while True:
            block = list(itertools.islice(records, window))
            if not block:
                return
            chunks = [block[i : i + CHUNK_RECORDS] for i in range(0, len(block), CHUNK_RECORDS)]
            for pairs in pool.map(_encode_chunk, chunks):
                yield from pairs


def _encode(record: HybridSFTRecord, bundle: TokenizerBundle, settings: EncodeSettings) -> SFTPair:
    return encode_sft_pair(
        record, bundle, settings.tokenizer,
        long_prefix=settings.long_prefix, nothinking_answers=settings.nothinking_answers,
    )


_WORKER: Optional[tuple[Any, EncodeSettings]] = None


def _init_worker(settings: EncodeSettings) -> None:
    from megathink.data.tokenizer import load_tokenizer

    global _WORKER
    _WORKER = (load_tokenizer(settings.tokenizer), settings)


def _encode_chunk(records: list[HybridSFTRecord]) -> list[SFTPair]:
    assert _WORKER is not None, "worker not initialised"
    bundle, settings = _WORKER
    return [_encode(record, bundle, settings) for record in records]

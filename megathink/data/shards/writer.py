"""Write hybrid SFT records as pre-tokenized shards (layout: format.py), streaming.

`write_shards` encodes the records with the in-memory path's own example builder
(encode.py -> `encode_sft_pair`), drops questions with an example longer than
`max_seq_len` exactly as `prepare_sft_pairs` does, and writes `shard_size` questions per
shard. Only the shard being filled is held in memory. Everything is written into a hidden
sibling folder that is renamed onto the target at the end, so a build that fails or is killed
leaves no folder that looks complete; an existing non-empty target is never touched.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from megathink.config.tokenizer import TokenizerConfig
from megathink.data.sft_examples import SFTPair, pair_fits
from megathink.data.shards.encode import EncodeSettings, encode_records
from megathink.data.shards.fingerprint import encoding_settings, examples_per_question, tokenizer_fingerprint
from megathink.data.shards.format import (
    INDEX_DTYPE,
    MANIFEST_NAME,
    MODES,
    ShardEntry,
    ShardManifest,
    file_sha256,
    level_value,
    shard_file_names,
    token_dtype,
)
from megathink.data.types import HybridSFTRecord, TokenizerBundle
from megathink.errors import DataError, ExistingOutputError

log = logging.getLogger(__name__)

class ShardWriter:
    """Collects encoded questions and writes a shard every `shard_size` of them."""

    def __init__(self, folder: Path, dtype: np.dtype, vocab_size: int, shard_size: int, per_question: int) -> None:
        self.folder = folder
        self.dtype = dtype
        self.vocab_size = vocab_size
        self.shard_size = shard_size
        self.per_question = per_question
        self.entries: list[ShardEntry] = []
        self._tokens: list[np.ndarray] = []  # one [length] array per example of the open shard
        self._rows: list[tuple[int, int, int, int, int]] = []  # INDEX_DTYPE fields per example
        self._offset = 0

    def add(self, pair: SFTPair) -> None:
        if len(pair) != self.per_question:
            raise DataError(f"a question gave {len(pair)} examples, the shards hold {self.per_question} per question.")
        for example in pair:
            ids = np.asarray(example.input_ids, dtype=np.int64)  # [length]
            start = example.loss_mask.index(1) if 1 in example.loss_mask else len(example)
            if start == 0 or sum(example.loss_mask) != len(example) - start:
                raise DataError(
                    "an SFT example's loss mask is not [0] * k + [1] * (length - k) with k >= 1, the form shard "
                    "format 1 stores: the example builder changed; extend megathink/data/shards/format.py."
                )
            if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
                raise DataError(f"token id {int(ids.max())} is outside the vocabulary of {self.vocab_size} tokens.")
            self._tokens.append(ids.astype(self.dtype))
            self._rows.append((self._offset, len(ids), start, MODES.index(example.mode), level_value(example.level)))
            self._offset += len(ids)
        if len(self._rows) == self.shard_size * self.per_question:
            self.flush()

    def flush(self) -> None:
        """Write the open shard (when it holds any question)."""
        if not self._rows:
            return
        tokens_name, index_name = shard_file_names(len(self.entries))
        tokens = np.concatenate(self._tokens) if self._tokens else np.empty(0, dtype=self.dtype)  # [n_tokens]
        index = np.array(self._rows, dtype=INDEX_DTYPE)  # [n_examples]
        np.save(self.folder / tokens_name, tokens, allow_pickle=False)
        np.save(self.folder / index_name, index, allow_pickle=False)
        self.entries.append(
            ShardEntry(
                tokens_file=tokens_name, index_file=index_name, questions=len(index) // self.per_question,
                examples=len(index), tokens=int(tokens.size),
                tokens_sha256=file_sha256(self.folder / tokens_name), index_sha256=file_sha256(self.folder / index_name),
            )
        )
        log.info("wrote %s (%d questions, %d tokens)", tokens_name, self.entries[-1].questions, tokens.size)
        self._tokens, self._rows, self._offset = [], [], 0


def write_shards(
    records: Iterable[HybridSFTRecord],
    out_dir: str | os.PathLike[str],
    bundle: TokenizerBundle,
    tokenizer_cfg: TokenizerConfig,
    *,
    long_prefix: str,
    nothinking_answers: bool,
    max_seq_len: int,
    shard_size: int,
    workers: int = 1,
    source: dict[str, object] | None = None,
) -> ShardManifest:
    """Encode `records` into shards under `out_dir` and return the manifest written there.

    `bundle` must be `load_tokenizer(tokenizer_cfg)` (worker processes load it from the config).
    `source` is extra provenance stored in the manifest beside the tokenizer's kind, path and
    control-token mode (the command line adds the file name and column names).
    """
    if shard_size < 1:
        raise DataError(f"shard_size = {shard_size} must be >= 1 (questions per shard).")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExistingOutputError(f"{out} exists and is not an empty folder: choose a new --out folder or remove it.")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)  # left by a killed build of this same pid number
    work.mkdir()
    try:
        manifest = _write_into(
            records, work, bundle, tokenizer_cfg, long_prefix=long_prefix, nothinking_answers=nothinking_answers,
            max_seq_len=max_seq_len, shard_size=shard_size, workers=workers, source=source or {},
        )
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return manifest


def _write_into(
    records: Iterable[HybridSFTRecord], folder: Path, bundle: TokenizerBundle, tokenizer_cfg: TokenizerConfig, *,
    long_prefix: str, nothinking_answers: bool, max_seq_len: int, shard_size: int, workers: int,
    source: dict[str, object],
) -> ShardManifest:
    per_question = examples_per_question(tokenizer_cfg, nothinking_answers)
    dtype = token_dtype(bundle.vocab_size)
    writer = ShardWriter(folder, dtype, bundle.vocab_size, shard_size, per_question)
    settings = EncodeSettings(tokenizer=tokenizer_cfg, long_prefix=long_prefix, nothinking_answers=nothinking_answers)
    dropped = 0
    for pair in encode_records(records, bundle, settings, workers=workers):
        if pair_fits(pair, max_seq_len):
            writer.add(pair)
        else:
            dropped += 1
    writer.flush()
    entries = writer.entries
    if not entries:
        raise DataError(
            f"all {dropped} SFT questions are longer than data.max_seq_len = {max_seq_len} tokens: raise "
            "data.max_seq_len or shorten the answers; no shards were written."
        )
    manifest = ShardManifest(
        tokenizer_fingerprint=tokenizer_fingerprint(bundle),
        vocab_size=bundle.vocab_size,
        token_dtype=dtype.str,
        pad_id=bundle.pad_id,
        examples_per_question=per_question,
        encoding=encoding_settings(
            bundle, tokenizer_cfg, long_prefix=long_prefix, nothinking_answers=nothinking_answers,
            max_seq_len=max_seq_len,
        ),
        questions=sum(e.questions for e in entries),
        examples=sum(e.examples for e in entries),
        tokens=sum(e.tokens for e in entries),
        dropped=dropped,
        shard_size=shard_size,
        shards=entries,
        source={
            "tokenizer.kind": tokenizer_cfg.kind,
            "tokenizer.path": tokenizer_cfg.path,
            "tokenizer.control_tokens": tokenizer_cfg.control_tokens,
            **source,
        },
    )
    (folder / MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
    return manifest

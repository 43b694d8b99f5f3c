"""Open a shard folder memory-mapped, check it, and look questions up by index.

`open_shards` is what a run calls: it refuses shards whose manifest does not match the run's
tokenizer and settings (fingerprint.py), then `ShardSet.open` checks the files: every listed
file present, the right dtype and shape, the index consistent with its tokens file, and (with
`verify`) each file's sha256. Nothing is read into memory but the small index files.

Questions are numbered 0..N-1 in the order they were written (the order of the source file,
without the dropped ones), which is the order `prepare_sft_pairs` keeps them in; a run with
a lower `data.max_seq_len` than the build skips the questions that no longer fit, so its
numbering still equals the in-memory path's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from megathink.config.tokenizer import TokenizerConfig
from megathink.data.sft_examples import SFTExample, SFTPair
from megathink.data.shards.fingerprint import BUILD_COMMAND, check_compatible, encoding_settings, tokenizer_fingerprint
from megathink.data.shards.format import INDEX_DTYPE, MANIFEST_NAME, MODES, ShardManifest, file_sha256, level_of
from megathink.data.types import TokenizerBundle
from megathink.errors import DataError, MissingPathError


@dataclass
class ShardRows:
    """The examples of some questions, ready to collate (B = questions x examples per question)."""

    tokens: list[np.ndarray]  # B arrays [length_b] of token ids (views into the memory map)
    lengths: np.ndarray  # int64 [B]
    target_starts: np.ndarray  # int64 [B]: loss_mask is 1 from here to the row's end
    modes: tuple[str, ...]  # B answer forms


class ShardSet:
    """The memory-mapped shards of one folder (use `open_shards` from a run)."""

    def __init__(self, folder: Path, manifest: ShardManifest, tokens: list[np.ndarray], index: list[np.ndarray],
                 max_seq_len: Optional[int]) -> None:
        self.folder = folder
        self.manifest = manifest
        self.per_question = manifest.examples_per_question
        self._tokens = tokens  # per shard: memmap [n_tokens]
        self._index = index  # per shard: memmap [n_examples] INDEX_DTYPE
        counts = np.array([len(i) // self.per_question for i in index], dtype=np.int64)
        self._starts = np.concatenate([[0], np.cumsum(counts)])  # [n_shards + 1] first question of each shard
        self._kept: Optional[np.ndarray] = None  # int64 [N] stored question numbers, None = all of them
        if max_seq_len is not None:
            longest = np.concatenate([i["length"].reshape(-1, self.per_question).max(axis=1) for i in index])
            if int(longest.max()) > max_seq_len:
                self._kept = np.flatnonzero(longest <= max_seq_len).astype(np.int64)
        self.dropped = manifest.dropped + (0 if self._kept is None else manifest.questions - len(self._kept))

    @classmethod
    def open(cls, folder: str | os.PathLike[str], *, max_seq_len: Optional[int] = None,
             verify: bool = True) -> "ShardSet":
        """Check and memory-map the shards of `folder` (module docstring); no check against a run."""
        root = Path(folder)
        if not (root / MANIFEST_NAME).is_file():
            what = "does not exist" if not root.exists() else f"has no {MANIFEST_NAME} (an unfinished or foreign folder)"
            raise MissingPathError(
                f"data.sft_shards = {str(folder)!r} {what}: build the shards with "
                f"`{BUILD_COMMAND} --sft-file FILE --out {folder} --shard-size N` (docs/DATA.md)."
            )
        manifest = ShardManifest.read(root)
        tokens, index = [], []
        for entry in manifest.shards:
            tokens.append(_load(root / entry.tokens_file, np.dtype(manifest.token_dtype), entry.tokens, verify,
                                entry.tokens_sha256))
            index.append(_load(root / entry.index_file, INDEX_DTYPE, entry.examples, verify, entry.index_sha256))
            _check_index(root / entry.index_file, index[-1], len(tokens[-1]), manifest.examples_per_question)
        return cls(root, manifest, tokens, index, max_seq_len)

    def __len__(self) -> int:
        return self.manifest.questions if self._kept is None else len(self._kept)

    def _locate(self, question: int) -> tuple[int, int]:
        """(shard, first index row) of question number `question` (0 <= question < len(self))."""
        stored = int(question if self._kept is None else self._kept[question])
        shard = int(np.searchsorted(self._starts, stored, side="right")) - 1
        return shard, (stored - int(self._starts[shard])) * self.per_question

    def rows(self, questions: list[int]) -> ShardRows:
        """Every example of `questions`, in order (a question's examples side by side)."""
        tokens, lengths, starts, modes = [], [], [], []
        for question in questions:
            shard, first = self._locate(question)
            for row in self._index[shard][first : first + self.per_question]:
                offset, length = int(row["offset"]), int(row["length"])
                tokens.append(self._tokens[shard][offset : offset + length])
                lengths.append(length)
                starts.append(int(row["target_start"]))
                modes.append(MODES[int(row["mode"])])
        return ShardRows(tokens, np.array(lengths, dtype=np.int64), np.array(starts, dtype=np.int64), tuple(modes))

    def pair(self, question: int) -> SFTPair:
        """Question `question` as the in-memory path holds it (SFTExample per form)."""
        shard, first = self._locate(question)
        examples = []
        for row in self._index[shard][first : first + self.per_question]:
            offset, length, start = int(row["offset"]), int(row["length"]), int(row["target_start"])
            examples.append(
                SFTExample(
                    input_ids=self._tokens[shard][offset : offset + length].astype(np.int64).tolist(),
                    loss_mask=[0] * start + [1] * (length - start),
                    mode=MODES[int(row["mode"])],
                    level=level_of(int(row["level"])),
                )
            )
        return tuple(examples)


def open_shards(
    folder: str | os.PathLike[str],
    bundle: TokenizerBundle,
    tokenizer_cfg: TokenizerConfig,
    *,
    long_prefix: str,
    nothinking_answers: bool,
    max_seq_len: int,
    verify: bool = True,
) -> ShardSet:
    """The shards of `folder`, refused unless built with this run's tokenizer and settings."""
    root = Path(folder)
    if (root / MANIFEST_NAME).is_file():
        manifest = ShardManifest.read(root)
        run = encoding_settings(
            bundle, tokenizer_cfg, long_prefix=long_prefix, nothinking_answers=nothinking_answers,
            max_seq_len=max_seq_len,
        )
        check_compatible(
            f"data.sft_shards = {str(folder)!r}", manifest.encoding, manifest.tokenizer_fingerprint, manifest.source,
            tokenizer_fingerprint(bundle), run,
        )
    return ShardSet.open(root, max_seq_len=max_seq_len, verify=verify)


def _load(path: Path, dtype: np.dtype, count: int, verify: bool, sha256: str) -> np.ndarray:
    """A memory-mapped 1-D .npy of `count` items of `dtype`, or a DataError naming the file."""
    if not path.is_file():
        raise MissingPathError(f"{path}: shard file listed in {MANIFEST_NAME} is missing; rebuild the shards.")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:  # truncated or not a .npy
        raise DataError(f"{path}: unreadable shard file ({err}); rebuild the shards.") from err
    if array.dtype != dtype or array.shape != (count,):
        raise DataError(
            f"{path}: holds {array.dtype} {array.shape}, the manifest says {dtype} ({count},): "
            "the file was replaced or truncated; rebuild the shards."
        )
    if verify and file_sha256(path) != sha256:
        raise DataError(
            f"{path}: sha256 does not match the manifest (the file is corrupt or was modified): rebuild the "
            "shards or restore the file."
        )
    return array


def _check_index(path: Path, index: np.ndarray, n_tokens: int, per_question: int) -> None:
    """The index rows tile the tokens file in order, and each mask start lies inside its example."""
    lengths = index["length"].astype(np.int64)
    offsets = index["offset"]
    ends = offsets + lengths
    ok = (
        len(index) % per_question == 0
        and len(index) > 0
        and offsets[0] == 0
        and ends[-1] == n_tokens
        and bool(np.all(offsets[1:] == ends[:-1]))
        and bool(np.all(index["target_start"] >= 1))
        and bool(np.all(index["target_start"] < lengths))
        and bool(np.all(index["mode"] < len(MODES)))
    )
    if not ok:
        raise DataError(f"{path}: the shard index does not match its tokens file (corrupt); rebuild the shards.")

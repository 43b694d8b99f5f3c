"""The on-disk layout of pre-tokenized SFT shards and their manifest.

A shard folder holds

    manifest.json                 ShardManifest below (written last: a folder without it is unfinished)
    shard_00000.tokens.npy        every token of the shard's examples, one after another: [n_tokens]
                                  uint16 when the vocabulary fits, else uint32
    shard_00000.index.npy         one row per example, INDEX_DTYPE: [n_examples]
    shard_00001.tokens.npy ...

Each shard holds `questions` whole questions (`shard_size`, the last one fewer); a question's
examples (think then short, as `encode_sft_pair` returns them; `examples_per_question` of
them) are consecutive rows of its shard's index. An example is

    input_ids = tokens[offset : offset + length]
    loss_mask = [0] * target_start + [1] * (length - target_start)

The example builder's masks always have this form (prompt and forced tokens untrained, every
response token trained); the writer checks it. Both files are plain `.npy`, read with
`numpy.load(mmap_mode="r")`. The manifest records what the token ids depend on (tokenizer
fingerprint and the prompt/encoding settings, keyed by the config field that sets them) and a
sha256 per file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from megathink.errors import DataError

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
FORMAT_NAME = "megathink-sft-shards"
HASH_BLOCK = 1 << 22

INDEX_DTYPE = np.dtype(
    [
        ("offset", "<i8"),  # first token of the example in the shard's tokens file
        ("length", "<i4"),  # tokens in the example
        ("target_start", "<i4"),  # first trained token (loss_mask is 1 from here to the end)
        ("mode", "u1"),  # MODES index: 0 think, 1 short
        ("level", "<i4"),  # difficulty level, NO_LEVEL when the record had none
    ]
)
MODES = ("think", "short")
NO_LEVEL = np.iinfo(np.int32).min


def token_dtype(vocab_size: int) -> np.dtype:
    """The narrowest unsigned dtype that holds every token id of the vocabulary."""
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<u4")


def shard_file_names(number: int) -> tuple[str, str]:
    """(tokens file, index file) of shard `number`."""
    return f"shard_{number:05d}.tokens.npy", f"shard_{number:05d}.index.npy"


@dataclass
class ShardEntry:
    """One shard as the manifest lists it."""

    tokens_file: str
    index_file: str
    questions: int
    examples: int
    tokens: int
    tokens_sha256: str
    index_sha256: str


@dataclass
class ShardManifest:
    """What a shard folder holds and what its token ids were built with.

    `encoding` maps config fields to the values the shards were built with: tokenizer.template,
    tokenizer.chat_template (sha256 of the template actually rendered), tokenizer.system_prompt,
    tokenizer.instruction, data.long_prefix, sft.nothinking_answers (adaptthink only) and
    data.max_seq_len (examples longer than it were dropped). `source` records where the data
    came from (file name, tokenizer kind/path as given, column names); it is not checked.
    """

    tokenizer_fingerprint: str
    vocab_size: int
    token_dtype: str
    pad_id: int
    examples_per_question: int
    encoding: dict[str, Any]
    questions: int
    examples: int
    tokens: int
    dropped: int
    shard_size: int
    shards: list[ShardEntry] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def read(cls, folder: Path) -> "ShardManifest":
        """The manifest of `folder`, with a DataError naming the file and field when it is malformed."""
        path = folder / MANIFEST_NAME
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise DataError(f"{path}: unreadable shard manifest ({err}); rebuild the shards.") from err
        if not isinstance(raw, dict) or raw.get("format") != FORMAT_NAME:
            raise DataError(
                f"{path}: field 'format' is {raw.get('format') if isinstance(raw, dict) else raw!r}, not "
                f"{FORMAT_NAME!r}: data.sft_shards must name a folder built by `python -m megathink.data.shards.build`."
            )
        if raw.get("format_version") != FORMAT_VERSION:
            raise DataError(
                f"{path}: field 'format_version' = {raw.get('format_version')!r}, this megathink reads version "
                f"{FORMAT_VERSION}: rebuild the shards with this version (python -m megathink.data.shards.build)."
            )
        try:
            shards = [ShardEntry(**entry) for entry in raw.pop("shards")]
            manifest = cls(shards=shards, **raw)
        except (KeyError, TypeError) as err:
            raise DataError(f"{path}: missing or unknown manifest field ({err}); rebuild the shards.") from err
        manifest._check_counts(path)
        return manifest

    def _check_counts(self, path: Path) -> None:
        totals = {
            "questions": sum(s.questions for s in self.shards),
            "examples": sum(s.examples for s in self.shards),
            "tokens": sum(s.tokens for s in self.shards),
        }
        for name, total in totals.items():
            if getattr(self, name) != total:
                raise DataError(
                    f"{path}: field {name!r} = {getattr(self, name)} but the shards listed hold {total}: "
                    "the manifest was edited or mixed with another build; rebuild the shards."
                )
        if self.examples != self.questions * self.examples_per_question:
            raise DataError(
                f"{path}: field 'examples' = {self.examples} is not questions x examples_per_question "
                f"({self.questions} x {self.examples_per_question}); rebuild the shards."
            )


def level_value(level: Optional[int]) -> int:
    """A record's level as stored in the index (NO_LEVEL for none)."""
    if level is None:
        return int(NO_LEVEL)
    if not NO_LEVEL < level <= np.iinfo(np.int32).max:
        raise DataError(f"field 'level' = {level} does not fit a 32-bit shard index; use levels below 2**31.")
    return int(level)


def level_of(stored: int) -> Optional[int]:
    """The level of an index row (None for NO_LEVEL)."""
    return None if stored == NO_LEVEL else int(stored)


def file_sha256(path: Path) -> str:
    """sha256 hex digest of a file, read in 4 MiB blocks (the manifest's per-file checksum)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()

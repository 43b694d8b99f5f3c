"""The distill journal: one JSON line per finished question, appended and fsync'ed, never rewritten.

Path: `<out without extension>.journal.jsonl` beside the output. The first line is a header,

    {"megathink_distill_journal": 1, "settings": {...}}

holding the settings that change what an answer is (`fingerprint`: sampling, prompt text,
pick rule, grader, control-token strings; not URLs, keys, concurrency or the keep filter).
Every other line is a `QuestionResult` (outcomes.py). A rerun reads the journal, skips the
questions in it, and refuses to go on when the header differs from this run's settings
(naming the flag), so one journal never mixes two recipes.

Each line is written by the one main thread as soon as its question finishes, then flushed
and fsync'ed, so a killed run loses only the questions in flight. A kill can tear only the
last line: `read_journal` ignores a last line without its newline or that is not valid JSON,
and `Journal.open` truncates it before appending. Any other malformed line is a `DataError`
naming the file and line. A prompt id that appears twice keeps its first line.

In memory a run keeps one `JournalEntry` per question: the light result (no texts,
outcomes.py) and where its line is, so `read_result` can fetch the texts when the output is
written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from megathink.distill.outcomes import QuestionResult
from megathink.distill.settings import DistillSettings, EndpointSettings
from megathink.errors import ConfigError, DataError

HEADER_KEY = "megathink_distill_journal"
VERSION = 1


def journal_path(out: str) -> Path:
    """`<out without extension>.journal.jsonl`."""
    return Path(os.path.splitext(out)[0] + ".journal.jsonl")


def fingerprint(settings: DistillSettings) -> dict[str, Any]:
    """The settings a journal is bound to, keyed by their command-line flags."""

    def endpoint(e: EndpointSettings) -> dict[str, Any]:
        s = e.sampling
        return {
            f"{e.flag}-api": e.api, f"{e.flag}-system-prompt": e.system_prompt, f"{e.flag}-max-tokens": s.max_tokens,
            f"{e.flag}-temperature": s.temperature, f"{e.flag}-top-p": s.top_p, f"{e.flag}-n": s.n,
        }

    return {
        **endpoint(settings.reasoning), **endpoint(settings.instruct),
        "--instruction": settings.instruction, "--pick": settings.pick, "--grader": settings.grader,
        "--think-token": settings.think_token, "--end-think-token": settings.end_think_token,
        "--short-token": settings.short_token,
    }


@dataclass(frozen=True)
class JournalEntry:
    """One finished question: its result without texts, and its line's place in the journal."""

    result: QuestionResult
    """`QuestionResult.light()` of the line."""
    offset: int
    length: int


@dataclass
class JournalContents:
    """What a journal holds: its header settings (None when empty) and the finished questions."""

    settings: Optional[dict[str, Any]] = None
    entries: dict[str, JournalEntry] = field(default_factory=dict)
    intact_bytes: int = 0
    """Length of the part that is whole lines (a torn tail starts here)."""


def read_journal(path: Path) -> JournalContents:
    """The journal at `path` (a missing file reads as empty); a torn last line is left out."""
    contents = JournalContents()
    if not path.is_file():
        return contents
    with open(path, "rb") as handle:
        for number, raw_line, last in _numbered_lines(handle):
            if not _take_line(contents, path, number, raw_line, last):
                break
    return contents


def _take_line(contents: JournalContents, path: Path, number: int, raw_line: bytes, last: bool) -> bool:
    """Add one line to `contents`; False when it is a torn last line (reading stops there)."""
    complete = raw_line.endswith(b"\n")
    line = raw_line.rstrip(b"\n")
    if not line.strip():
        contents.intact_bytes += len(raw_line) if complete else 0
        return complete
    try:
        raw = json.loads(line.decode("utf-8"))
        parsed = _parse(raw, first=contents.settings is None and not contents.entries)
    except (UnicodeDecodeError, ValueError) as err:
        if last:  # torn by a kill mid-write
            return False
        raise DataError(
            f"{path} line {number}: {err}; this is not a journal megathink distill wrote. Move it away "
            "(or give another --out) to start over."
        ) from err
    if not complete:  # valid JSON without its newline: cut right after the write
        return False
    if isinstance(parsed, QuestionResult):
        entry = JournalEntry(parsed.light(), contents.intact_bytes, len(raw_line))
        contents.entries.setdefault(parsed.prompt_id, entry)
    else:
        contents.settings = parsed
    contents.intact_bytes += len(raw_line)
    return True


def read_results(path: Path, entries: Iterable[JournalEntry]) -> Iterator[QuestionResult]:
    """The full results (texts included) of `entries`, read back from the journal at `path` one by one."""
    with open(path, "rb") as handle:
        for entry in entries:
            handle.seek(entry.offset)
            yield QuestionResult.from_json(json.loads(handle.read(entry.length).decode("utf-8")))


def _numbered_lines(handle: Any) -> Iterator[tuple[int, bytes, bool]]:
    """(1-based number, line with its newline, whether it is the last line), reading lazily."""
    previous: Optional[bytes] = None
    number = 0
    for raw_line in handle:
        if previous is not None:
            yield number, previous, False
        number += 1
        previous = raw_line
    if previous is not None:
        yield number, previous, True


def check_settings(path: Path, written: Optional[dict[str, Any]], current: dict[str, Any]) -> None:
    """Raise `ConfigError` naming the first flag whose value differs from the journal's."""
    if written is None:
        return
    for flag, value in current.items():
        if written.get(flag) != value:
            raise ConfigError(
                f"{flag} {value!r} differs from {written.get(flag)!r}, which the journal {path} was started with: "
                f"rerun with {flag} {written.get(flag)!r} to resume it, or give another --out for a new run."
            )


class Journal:
    """Appends results to a journal (header first when new); use as a context manager."""

    def __init__(self, path: Path, contents: JournalContents, settings: dict[str, Any]) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(path, "ab")
        if self._handle.tell() != contents.intact_bytes:  # drop a torn last line before appending
            self._handle.truncate(contents.intact_bytes)
            self._handle.seek(contents.intact_bytes)
        if contents.settings is None:
            self._write({HEADER_KEY: VERSION, "settings": settings})

    def append(self, result: QuestionResult) -> JournalEntry:
        """Write one result line; it is on disk when this returns."""
        offset, length = self._write(result.to_json())
        return JournalEntry(result.light(), offset, length)

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _write(self, row: dict[str, Any]) -> tuple[int, int]:
        data = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
        offset = self._handle.tell()
        self._handle.write(data)
        self._handle.flush()
        os.fsync(self._handle.fileno())
        return offset, len(data)


def _parse(raw: Any, *, first: bool) -> QuestionResult | dict[str, Any]:
    if isinstance(raw, dict) and HEADER_KEY in raw:
        if not first:
            raise ValueError("a header line after the first line")
        if raw[HEADER_KEY] != VERSION or not isinstance(raw.get("settings"), dict):
            raise ValueError(f"journal version {raw[HEADER_KEY]!r} (this megathink writes {VERSION})")
        return raw["settings"]
    if first:
        raise ValueError("the first line is not a megathink distill journal header")
    return QuestionResult.from_json(raw)

"""AdaptThink's Rbar_ref file: one JSON line per training prompt, appended and resumable.

`Rbar_ref(x)` is the mean accuracy of K Thinking-mode samples of the reference model on
prompt x (ALGORITHMS.md section 2). `megathink presample` writes it to
`algorithm.reference_accuracy_path` (default `<output_dir>/reference_accuracy.jsonl`), one
line per prompt:

    {"prompt_id": "3f1c0d9e2a7b4c55", "k": 16, "correct": 11, "rbar": 0.6875, "level": 3}

`prompt_id` is `megathink.data.types.prompt_id` of the problem text, `rbar = correct / k`, and
`level` is the record's difficulty level or null. Lines are appended a batch at a time, each
batch flushed and fsync'ed (`append_rows`). A kill can tear only the last line: `read_rows`
ignores a last line without its newline or that is not valid JSON (that prompt is redone),
`cut_torn_tail` removes it so the next append starts on a line boundary. Any other malformed
line is a `DataError` naming the file and line. `load_reference_accuracy` is what AdaptThink
training calls: it refuses to go on when a training prompt has no Rbar_ref.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Protocol

from megathink.config.run import RunConfig
from megathink.data.types import prompt_id
from megathink.errors import ConfigError, DataError

FIELD = "algorithm.reference_accuracy_path"
DEFAULT_FILE = "reference_accuracy.jsonl"
_SHOWN_MISSING = 3
_SHOWN_CHARS = 40


class HasProblem(Protocol):
    """A prompt record: anything with the problem text."""

    @property
    def problem(self) -> str: ...


@dataclass(frozen=True)
class ReferenceAccuracy:
    """Rbar_ref of one prompt: `correct` of `k` reference samples were correct and well formed."""

    prompt_id: str
    k: int
    correct: int
    level: Optional[int] = None

    @property
    def rbar(self) -> float:
        return self.correct / self.k

    def to_json(self) -> dict[str, Any]:
        return {
            "prompt_id": self.prompt_id, "k": self.k, "correct": self.correct, "rbar": self.rbar, "level": self.level
        }


def reference_accuracy_file(cfg: RunConfig) -> Path:
    """`algorithm.reference_accuracy_path`, or `<output_dir>/reference_accuracy.jsonl` when unset."""
    path = cfg.algorithm.reference_accuracy_path
    return Path(path) if path else Path(cfg.output_dir) / DEFAULT_FILE


def read_rows(path: Path) -> tuple[dict[str, ReferenceAccuracy], int]:
    """(rows by prompt id, byte length of the intact part); a torn last line is left out of both.

    A missing file reads as no rows. A prompt id that appears twice keeps its last line.
    """
    if not path.is_file():
        return {}, 0
    data = path.read_bytes()
    rows: dict[str, ReferenceAccuracy] = {}
    intact = 0
    lines = data.split(b"\n")
    for number, line in enumerate(lines, start=1):
        last = number >= len(lines) - 1  # the final line, or the text after the final newline
        complete = number < len(lines)
        if not line.strip():
            intact += len(line) + complete
            continue
        try:
            row = _parse(line)
        except ValueError as err:
            if last:  # torn by a kill mid-write
                break
            raise DataError(f"{path} line {number}: {err}; the file is not one megathink presample wrote.") from err
        if not complete:  # valid JSON but no newline: the write was cut right after it
            break
        rows[row.prompt_id] = row
        intact += len(line) + 1
    return rows, intact


def cut_torn_tail(path: Path) -> dict[str, ReferenceAccuracy]:
    """The rows of `path`, after truncating a torn last line so appends start on a line boundary."""
    rows, intact = read_rows(path)
    if path.is_file() and path.stat().st_size != intact:
        with open(path, "r+b") as handle:
            handle.truncate(intact)
            handle.flush()
            os.fsync(handle.fileno())
    return rows


def append_rows(path: Path, rows: Iterable[ReferenceAccuracy]) -> None:
    """Append one line per row, then flush and fsync (the batch is durable when this returns)."""
    text = "".join(json.dumps(row.to_json(), ensure_ascii=False) + "\n" for row in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def load_reference_accuracy(path: str | os.PathLike[str], prompts: Sequence[HasProblem]) -> dict[str, float]:
    """prompt_id -> Rbar_ref for every distinct prompt of `prompts`, read from the file at `path`.

    Raises `ConfigError` naming `algorithm.reference_accuracy_path` when any prompt has no line
    (or the file does not exist): AdaptThink training must not start without them.
    """
    file = Path(path)
    rows, _ = read_rows(file)
    wanted: dict[str, str] = {}
    for record in prompts:
        wanted.setdefault(prompt_id(record.problem), record.problem)
    missing = [problem for pid, problem in wanted.items() if pid not in rows]
    if missing:
        shown = ", ".join(repr(_shorten(problem)) for problem in missing[:_SHOWN_MISSING])
        more = f" and {len(missing) - _SHOWN_MISSING} more" if len(missing) > _SHOWN_MISSING else ""
        where = "does not exist, so" if not file.is_file() else "lacks"
        raise ConfigError(
            f"{FIELD} = {str(file)!r} {where} Rbar_ref for {len(missing)} of {len(wanted)} training prompts "
            f"({shown}{more}): run megathink presample with the same data and model (and this {FIELD}) first."
        )
    return {pid: rows[pid].rbar for pid in wanted}


def _parse(line: bytes) -> ReferenceAccuracy:
    """One line -> a row; ValueError naming what is wrong."""
    try:
        raw = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"not valid JSON ({err})") from err
    if not isinstance(raw, Mapping):
        raise ValueError(f"expected a JSON object, got {type(raw).__name__}")
    pid, k, correct, level = raw.get("prompt_id"), raw.get("k"), raw.get("correct"), raw.get("level")
    if not isinstance(pid, str) or not pid:
        raise ValueError(f"prompt_id = {pid!r} must be a non-empty string")
    if not _is_int(k) or k < 1:
        raise ValueError(f"k = {k!r} must be an integer >= 1")
    if not _is_int(correct) or not 0 <= correct <= k:
        raise ValueError(f"correct = {correct!r} must be an integer in [0, k = {k}]")
    if level is not None and not _is_int(level):
        raise ValueError(f"level = {level!r} must be an integer or null")
    return ReferenceAccuracy(prompt_id=pid, k=k, correct=correct, level=level)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _shorten(problem: str) -> str:
    flat = " ".join(problem.split())
    return flat if len(flat) <= _SHOWN_CHARS else flat[: _SHOWN_CHARS - 3] + "..."

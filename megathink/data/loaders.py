"""Read prompt and hybrid-SFT files (.jsonl or .parquet) into records; write them back.

Prompt rows hold a problem, a reference answer, an optional difficulty level and an optional
token budget (L1's "Think for N tokens.", a positive integer) under the column names
`data.problem_key`/`data.answer_key`/`data.level_key`/`data.budget_key`; a missing budget column
or a null in it means no budget. Hybrid SFT rows add `long` (chain of thought, exactly one
end-of-thinking token, final answer) and `short` (direct answer), the Thinkless stage-1 data;
they are read without budgets (a budget column there is ignored: the toy task is the one SFT
source whose questions get budgets). Numeric answers are turned into text (an integral float
such as `42.0`, as parquet stores integer columns with nulls, becomes `42`). Every error names the file,
the line (jsonl) or row (parquet, 1-based), the field and the fix. Files are read as the rows
are consumed (`iter_hybrid_sft` streams a million-row distillation file). Writers are atomic: they
write a temporary file next to the target and rename it over the target.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Optional

from megathink.errors import DataError, MissingPathError
from megathink.config.data import DataConfig
from megathink.data.types import HybridSFTRecord, PromptRecord

EXTENSIONS = (".jsonl", ".parquet")
PARQUET_BATCH_ROWS = 1024
"""Rows read from a parquet file at a time."""


def load_prompts(path: str, cfg: DataConfig) -> list[PromptRecord]:
    """Prompt records (problem, answer, optional level and budget) of a .jsonl or .parquet file."""
    source = os.path.basename(path)
    records = []
    for where, row in _read_rows(path):
        problem, answer, level = _common_fields(row, where, cfg)
        budget = _budget(row, cfg.budget_key, where)
        records.append(PromptRecord(problem=problem, answer=answer, level=level, source=source, budget=budget))
    return records


def first_prompt(path: str, cfg: DataConfig) -> PromptRecord:
    """The first prompt record of a file, parsed as `load_prompts` parses every row (a cheap check
    that the file exists and has the columns, without reading the rest)."""
    source = os.path.basename(path)
    for where, row in _read_rows(path):
        problem, answer, level = _common_fields(row, where, cfg)
        return PromptRecord(problem=problem, answer=answer, level=level, source=source, budget=_budget(row, cfg.budget_key, where))
    raise DataError(f"{path}: the file has no rows; give a file with at least one record.")


def first_hybrid_sft(path: str, cfg: DataConfig, end_think_token: str = "</think>") -> HybridSFTRecord:
    """The first hybrid SFT record of a file, parsed as `iter_hybrid_sft` parses every row."""
    return next(iter(iter_hybrid_sft(path, cfg, end_think_token)))


def load_hybrid_sft(path: str, cfg: DataConfig, end_think_token: str = "</think>") -> list[HybridSFTRecord]:
    """Hybrid SFT records (problem, answer, long, short, optional level) of a .jsonl/.parquet file."""
    return list(iter_hybrid_sft(path, cfg, end_think_token))


def iter_hybrid_sft(path: str, cfg: DataConfig, end_think_token: str = "</think>") -> Iterator[HybridSFTRecord]:
    """The records of `load_hybrid_sft` one at a time, reading the file as it goes (a jsonl line or
    a parquet batch of rows at a time), so a million-row file never sits in memory."""
    for where, row in _read_rows(path):
        problem, answer, level = _common_fields(row, where, cfg)
        long = _text(row, "long", where, "the long (thinking) answer")
        short = _text(row, "short", where, "the short (direct) answer")
        count = long.count(end_think_token)
        if count != 1:
            raise DataError(
                f"{where}: field 'long' contains {count} end-of-thinking tokens {end_think_token!r}; "
                "it must contain exactly one, between the chain of thought and the final answer "
                "(or set tokenizer.end_think_token to the token the file uses)."
            )
        yield HybridSFTRecord(problem=problem, answer=answer, long=long, short=short, level=level)


def write_jsonl(path: str, rows: Iterable[Any]) -> None:
    """Write rows (mappings or dataclass records) as JSON lines, atomically."""
    with _atomic_target(path, "w") as handle:
        for row in rows:
            handle.write(json.dumps(_as_dict(row), ensure_ascii=False) + "\n")


def write_parquet(path: str, rows: Iterable[Any]) -> None:
    """Write rows (mappings or dataclass records) as a parquet table, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([_as_dict(row) for row in rows])
    with _atomic_target(path, "wb") as handle:
        pq.write_table(table, handle)


class _atomic_target:
    """Context manager: a temporary file in the target's folder, renamed onto it on success."""

    def __init__(self, path: str, mode: str) -> None:
        self.path = path
        self.mode = mode

    def __enter__(self) -> Any:
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(self.path))
        self.handle = os.fdopen(fd, self.mode, **({"encoding": "utf-8"} if "b" not in self.mode else {}))
        return self.handle

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.handle.close()
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            os.unlink(self.tmp)


def _as_dict(row: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        return dataclasses.asdict(row)
    if isinstance(row, Mapping):
        return dict(row)
    raise TypeError(f"cannot write a row of type {type(row).__name__}: give a dict or a dataclass record")


def _read_rows(path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(location, row) pairs, read as they are consumed; location reads 'FILE line N' or 'FILE row N'.

    The extension and the file's existence are checked at once; an empty file fails when
    its end is reached."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in EXTENSIONS:
        raise DataError(f"{path}: unknown file extension {extension!r}; convert the file to .jsonl or .parquet.")
    if not os.path.isfile(path):
        raise MissingPathError(f"{path}: no such file; check the data.*_path setting that names it.")
    return _nonempty(path, _jsonl_rows(path) if extension == ".jsonl" else _parquet_rows(path))


def _nonempty(path: str, rows: Iterator[tuple[str, Mapping[str, Any]]]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    count = 0
    for item in rows:
        count += 1
        yield item
    if not count:
        raise DataError(f"{path}: the file has no rows; give a file with at least one record.")


def _jsonl_rows(path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path} line {number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{where}: invalid JSON ({err.msg}); write one JSON object per line.") from err
            if not isinstance(row, dict):
                raise DataError(
                    f"{where}: expected a JSON object, got {type(row).__name__}; write one object per line."
                )
            yield where, row


def _parquet_rows(path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=PARQUET_BATCH_ROWS)
    except Exception as err:  # pyarrow raises ArrowInvalid/OSError for corrupt files
        raise DataError(f"{path}: not a readable parquet file ({err}); rewrite it with pyarrow or pandas.") from err
    number = 0
    for batch in batches:
        for row in batch.to_pylist():
            number += 1
            yield f"{path} row {number}", row


def _common_fields(row: Mapping[str, Any], where: str, cfg: DataConfig) -> tuple[str, str, Optional[int]]:
    problem = _text(row, cfg.problem_key, where, "the question", key_field="data.problem_key")
    answer = _answer(row, cfg.answer_key, where)
    level = row.get(cfg.level_key)
    if level is not None:
        if isinstance(level, float) and level.is_integer():
            level = int(level)
        if isinstance(level, bool) or not isinstance(level, int):
            raise DataError(
                f"{where}: field {cfg.level_key!r} = {level!r} must be an integer difficulty level or absent "
                "(set data.level_key to the right column)."
            )
    return problem, answer, level


def _budget(row: Mapping[str, Any], key: str, where: str) -> Optional[int]:
    """The row's token budget: a positive integer (an integral float counts), or None when absent."""
    budget = row.get(key)
    if budget is None:
        return None
    if isinstance(budget, float) and budget.is_integer():
        budget = int(budget)
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise DataError(
            f"{where}: field {key!r} = {budget!r} must be a positive integer token budget or absent "
            "(set data.budget_key to the right column)."
        )
    return budget


def _text(row: Mapping[str, Any], key: str, where: str, what: str, key_field: str = "") -> str:
    hint = f" (or set {key_field} to the column that holds it)" if key_field else ""
    if key not in row or row[key] is None:
        present = ", ".join(sorted(map(str, row))) or "none"
        raise DataError(f"{where}: missing field {key!r} ({what}); columns present: {present}. Add it{hint}.")
    value = row[key]
    if not isinstance(value, str):
        raise DataError(f"{where}: field {key!r} must be a string, got {type(value).__name__} {value!r}{hint}.")
    return value


def _answer(row: Mapping[str, Any], key: str, where: str) -> str:
    value = row.get(key)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return _text(row, key, where, "the reference answer", key_field="data.answer_key")

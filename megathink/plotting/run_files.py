"""Read what a run folder holds for plotting: every stage's `metrics.jsonl` and the eval tables.

A run folder holds one sub-folder per stage (`sft/`, `rl/`; a sweep holds one run per point),
each with `metrics.jsonl` and maybe `eval/before.json` / `eval/after.json`. Nothing here draws
or imports matplotlib. Malformed input is reported as a note, never raised: a plot of what can
be read beats a traceback.

metrics.jsonl is appended across resumes, and one step can have several lines (training metrics
and an evaluation): lines of the same step are merged key by key, the last value of a key wins.
NaN/inf were written as strings ("nan", "inf") and are read back as floats; other strings,
bools, lists and dicts are not plottable series and are left out.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

METRICS_FILE = "metrics.jsonl"
EVAL_FILES = ("before", "after")
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}

Series = list[tuple[int, float]]
"""(step, value) pairs in step order."""


@dataclass
class StageMetrics:
    """The numeric series of one stage's metrics.jsonl."""

    name: str
    """The stage folder relative to the run folder ("sft", "rl", "3/rl" in a sweep)."""
    series: dict[str, Series]


@dataclass
class EvalTables:
    """The per-level rows of `eval/before.json` and `eval/after.json` in one stage folder."""

    name: str
    """The folder holding `eval/`, relative to the run folder."""
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """"before" / "after" -> rows, each with "level" (a string) and its metrics."""


def stage_name(folder: Path, run_dir: Path) -> str:
    relative = folder.relative_to(run_dir).as_posix()
    return run_dir.resolve().name if relative == "." else relative


def find_stage_metrics(run_dir: Path, notes: list[str]) -> list[StageMetrics]:
    """Every `metrics.jsonl` under `run_dir` with at least one numeric series, in path order."""
    stages = []
    for path in sorted(run_dir.rglob(METRICS_FILE)):
        series = read_metrics(path, notes)
        if series:
            stages.append(StageMetrics(stage_name(path.parent, run_dir), series))
        else:
            notes.append(f"{path}: no numeric metrics, skipped")
    return stages


def read_metrics(path: Path, notes: list[str]) -> dict[str, Series]:
    """Key -> (step, value) series; lines of one step merge, the last value of a key wins."""
    by_step: dict[int, dict[str, float]] = {}
    bad_lines = 0
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        notes.append(f"{path}: unreadable ({err}), skipped")
        return {}
    for line in lines:
        row = _parse_row(line)
        if row is None:
            bad_lines += bool(line.strip())
            continue
        step = row.pop("step")
        by_step.setdefault(step, {}).update(
            {key: num for key, value in row.items() if (num := as_float(value)) is not None}
        )
    if bad_lines:
        notes.append(f"{path}: {bad_lines} malformed line(s) ignored")
    series: dict[str, Series] = {}
    for step in sorted(by_step):
        for key, value in by_step[step].items():
            series.setdefault(key, []).append((step, value))
    series.pop("time", None)
    return series


def as_float(value: Any) -> Optional[float]:
    """A plottable number, or None (bools, text, lists and dicts are not series)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        return _NON_FINITE.get(value.strip().lower())
    return None


def level_keys(series: dict[str, Series], base: str) -> dict[str, str]:
    """Level -> key for every `<base>_L<level>` key, levels in numeric then text order."""
    pattern = re.compile(re.escape(base) + r"_L(.+)")
    found = {m.group(1): key for key in series if (m := pattern.fullmatch(key))}
    return {level: found[level] for level in sorted(found, key=level_order)}


def level_order(level: str) -> tuple[int, float, str]:
    """Numeric levels first, in numeric order, then other names; "all" last."""
    if level == "all":
        return (2, 0.0, level)
    try:
        return (0, float(level), level)
    except ValueError:
        return (1, 0.0, level)


def find_eval_tables(run_dir: Path, notes: list[str]) -> list[EvalTables]:
    """Every folder under `run_dir` whose `eval/` holds before.json and/or after.json."""
    found: dict[Path, EvalTables] = {}
    for which in EVAL_FILES:
        for path in sorted(run_dir.rglob(f"eval/{which}.json")):
            owner = path.parent.parent
            rows = read_eval_table(path, notes)
            if rows is not None:
                found.setdefault(owner, EvalTables(stage_name(owner, run_dir))).tables[which] = rows
    return [found[owner] for owner in sorted(found)]


def read_eval_table(path: Path, notes: list[str]) -> Optional[list[dict[str, Any]]]:
    """Rows of `{"per_level": [...]}` (or a policy report's `{"rows": [...]}`); None if unusable.

    Each row needs a "level"; numeric fields are read with `as_float`, others kept as they are.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        notes.append(f"{path}: not readable json ({err}), skipped")
        return None
    raw = data.get("per_level", data.get("rows")) if isinstance(data, dict) else None
    if not isinstance(raw, list) or not all(isinstance(r, dict) and "level" in r for r in raw):
        notes.append(f'{path}: no "per_level" list of rows with a "level", skipped')
        return None
    rows = []
    for row in raw:
        clean = {key: as_float(value) if key not in ("level", "dataset") else str(value) for key, value in row.items()}
        rows.append(clean)
    return rows


def _parse_row(line: str) -> Optional[dict[str, Any]]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(row, dict) or not isinstance(row.get("step"), int) or isinstance(row["step"], bool):
        return None
    return row

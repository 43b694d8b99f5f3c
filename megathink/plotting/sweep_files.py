"""Read a Hydra multirun folder: one `SweepPoint` per job, with its swept values and its results.

A sweep (`megathink train -m algorithm.alpha=1e-3,1e-2 reward.gamma=0.5,0.8`, with the basic
or the submitit launcher) leaves one job folder per point, `<sweep_dir>/<num>/`, holding
`.hydra/overrides.yaml` (the job's command-line overrides), `<stage>/resolved_config.yaml`
(the validated config) and, once its RL stage finished, `summary.json` (trainer/rl_summary.py:
the policy's accuracy, think ratio, short / NoThinking ratio and mean tokens, overall and per
level, next to `start`, the policy before RL, and the forced always-think / always-short runs).

The swept parameters are the override keys whose values differ between jobs (unless given); a
parameter's value is read from the resolved config where it is a plain value there (so
`algorithm.alpha=1e-3` reads back as the float 0.001), else from the override text
(`algorithm=grpo`). Nothing here draws; problems become notes, never exceptions.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from megathink.plotting.compare import find_summary
from megathink.plotting.run_files import level_order
from megathink.run_layout import RESOLVED_CONFIG

OVERRIDES_FILE = ".hydra/overrides.yaml"
CONFIG_FILES = (f"rl/{RESOLVED_CONFIG}", f"presample/{RESOLVED_CONFIG}", f"sft/{RESOLVED_CONFIG}", ".hydra/config.yaml")
"""Where a job's config is read from, first found wins (the RL stage's holds what it trained with)."""

NOT_PARAMS = ("output_dir", "rollout.sglang.urls")
"""Overrides that differ between jobs without being swept (the SLURM recipes set the engine URLs)."""

DEFAULT_PARAMS = ("algorithm.alpha", "reward.gamma")
"""Parameters shown when the jobs' overrides do not tell which ones were swept."""

METRICS = ("accuracy", "think_ratio", "nothinking_ratio", "mean_tokens")
"""The policy's overall results in summary.json, read for the policy after RL and its start."""

FORCED = ("always_think_accuracy", "always_think_mean_tokens", "always_short_accuracy")

Value = Any
"""A parameter value: a number, a string, a bool, or None when a job does not set it."""


@dataclass
class SweepPoint:
    """One job of the sweep."""

    job: str
    """The job folder relative to the sweep folder ("0", "1", ...)."""
    params: dict[str, Value]
    """Swept parameter -> this job's value."""
    results: dict[str, Optional[float]] = field(default_factory=dict)
    """`accuracy`, `think_ratio`, `nothinking_ratio`, `mean_tokens` (after RL), the same with a
    `start_` prefix (before RL), the forced runs, and `think_ratio_L<level>` per level; empty
    without a summary.json."""


@dataclass
class Sweep:
    points: list[SweepPoint]
    """Every job folder found, in job order."""
    params: list[str]
    """The swept parameters, in override order."""
    levels: list[str]
    """Difficulty levels with a per-level think ratio in some summary, in level order."""
    notes: list[str] = field(default_factory=list)


@dataclass
class _Job:
    folder: Path
    overrides: dict[str, str]
    config: dict[str, Any]
    summary: Optional[dict[str, Any]]


def read_sweep(sweep_dir: Path, params: Optional[Sequence[str]] = None) -> Sweep:
    """All jobs under `sweep_dir` with their values of `params` (default: the swept keys)."""
    sweep_dir = Path(sweep_dir)
    notes: list[str] = []
    jobs = [_read_job(folder, notes) for folder in find_job_dirs(sweep_dir)]
    chosen = list(params) if params else swept_keys([job.overrides for job in jobs])
    if not chosen:
        chosen = [key for key in DEFAULT_PARAMS if any(key in job.config for job in jobs)]
        if jobs:
            notes.append(f"no override differs between the jobs; showing {', '.join(chosen) or 'no parameter'}")
    points = []
    for job in jobs:
        point = SweepPoint(
            job=job.folder.relative_to(sweep_dir).as_posix(),
            params={key: param_value(key, job.overrides, job.config) for key in chosen},
        )
        if job.summary is not None:
            point.results = summary_results(job.summary)
        points.append(point)
    levels = sorted(
        {key[len("think_ratio_L"):] for p in points for key in p.results if key.startswith("think_ratio_L")},
        key=level_order,
    )
    return Sweep(points=points, params=chosen, levels=levels, notes=notes)


def find_job_dirs(sweep_dir: Path) -> list[Path]:
    """Folders under `sweep_dir` (itself included) that hold a Hydra job record or a summary.json."""
    found = {path.parent.parent for path in sweep_dir.rglob(OVERRIDES_FILE)}
    for path in sweep_dir.rglob("summary.json"):
        owner = path.parent.parent if path.parent.name == "rl" else path.parent
        found.add(owner)
    found = {folder for folder in found if ".submitit" not in folder.relative_to(sweep_dir).parts}
    return sorted(found, key=lambda folder: _job_order(folder.relative_to(sweep_dir).as_posix()))


def _job_order(name: str) -> tuple:
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in name.split("/"))


def _read_job(folder: Path, notes: list[str]) -> _Job:
    overrides = read_overrides(folder / OVERRIDES_FILE, notes)
    config: dict[str, Any] = {}
    for name in CONFIG_FILES:
        if (folder / name).is_file():
            config = flatten(_load_yaml(folder / name, notes) or {})
            break
    summary = None
    path = find_summary(folder)
    if path is None:
        notes.append(f"{folder}: no summary.json (the job has not finished its RL stage, or failed)")
    else:
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            notes.append(f"{path}: not readable json ({err}), left out")
    return _Job(folder, overrides, config, summary if isinstance(summary, dict) else None)


def read_overrides(path: Path, notes: list[str]) -> dict[str, str]:
    """key -> value text of a job's `.hydra/overrides.yaml` ("+key=v" and "++key=v" as "key")."""
    if not path.is_file():
        return {}
    items = _load_yaml(path, notes)
    if not isinstance(items, list):
        notes.append(f"{path}: not a list of overrides, ignored")
        return {}
    overrides = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if sep and not key.startswith("~"):
            overrides[key.lstrip("+")] = value
    return overrides


def swept_keys(overrides: Sequence[dict[str, str]]) -> list[str]:
    """Override keys whose value differs between jobs (or that only some jobs set), in first-seen
    order; Hydra's own keys and NOT_PARAMS are never parameters."""
    keys: list[str] = []
    for job in overrides:
        keys += [key for key in job if key not in keys and not key.startswith("hydra.") and key not in NOT_PARAMS]
    return [key for key in keys if len({job.get(key) for job in overrides}) > 1]


def param_value(key: str, overrides: dict[str, str], config: dict[str, Any]) -> Value:
    """The resolved config's plain value of `key`, else the override's text parsed as YAML, else None."""
    if key in config and (config[key] is None or isinstance(config[key], (bool, int, float, str))):
        return config[key]
    if key in overrides:
        try:
            parsed = yaml.safe_load(overrides[key])
        except yaml.YAMLError:
            return overrides[key]
        return parsed if isinstance(parsed, (bool, int, float, str)) or parsed is None else overrides[key]
    return None


def summary_results(summary: dict[str, Any]) -> dict[str, Optional[float]]:
    """The numbers of one summary.json that a sweep table shows (missing ones as None)."""
    results = {key: number(summary.get(key)) for key in (*METRICS, *FORCED)}
    start = summary.get("start") if isinstance(summary.get("start"), dict) else {}
    results.update({f"start_{key}": number(start.get(key)) for key in METRICS})
    for row in summary.get("per_level") or []:
        if isinstance(row, dict) and "level" in row:
            results[f"think_ratio_L{row['level']}"] = number(row.get("think_ratio"))
    return results


def number(value: Any) -> Optional[float]:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """A nested mapping as dotted keys: {"algorithm": {"alpha": 1}} -> {"algorithm.alpha": 1}."""
    if not isinstance(tree, dict):
        return {prefix: tree} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat[name] = value
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def _load_yaml(path: Path, notes: list[str]) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        notes.append(f"{path}: not readable yaml ({err}), ignored")
        return None


def format_value(value: Value) -> str:
    """A parameter value as a table cell / legend label: 0.001 -> "0.001", 1e-05 -> "1e-05"."""
    if isinstance(value, float):
        return f"{value:g}"
    return "-" if value is None else str(value)


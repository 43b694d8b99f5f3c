"""Several runs side by side, per difficulty level: short / NoThinking ratio, accuracy, length.

Reads each run's `summary.json` (written by the RL stage: `per_level` rows with
`nothinking_ratio`, `accuracy` and `mean_tokens`, and `start`, the policy before RL) and draws
one group of bars per level ("all" last), one bar per run, the first run's starting policy
first. This is the AdaptThink delta-sweep figure of docs/RESULTS.md; it works for any runs
whose summaries share levels (a DeGRPO run's short ratio is its `<short>` ratio).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional, Sequence

from megathink.plotting.canvas import new_figure, save_png
from megathink.plotting.run_files import level_order

METRICS = (
    ("nothinking_ratio", "short / NoThinking ratio"),
    ("accuracy", "accuracy"),
    ("mean_tokens", "mean response tokens"),
)
SUMMARY_FILES = ("summary.json", "rl/summary.json")
COMPARE_FILE = "compare.png"


def find_summary(run_dir: Path) -> Optional[Path]:
    """`<run_dir>/summary.json` or `<run_dir>/rl/summary.json`, whichever exists first."""
    for name in SUMMARY_FILES:
        if (run_dir / name).is_file():
            return run_dir / name
    return None


def summary_rows(summary: dict[str, Any]) -> dict[str, dict[str, float]]:
    """level -> {metric: value} of one policy in a summary (its per-level rows and "all")."""
    rows = {str(row["level"]): row for row in summary.get("per_level", [])}
    rows["all"] = {key: summary.get(key) for key, _ in METRICS}
    return rows


def plot_comparison(run_dirs: Sequence[Path], out_dir: Path, notes: list[str]) -> Optional[Path]:
    """`<out_dir>/compare.png` from the runs' summaries; None (with notes) when fewer than one reads."""
    series: list[tuple[str, dict[str, dict[str, float]]]] = []
    for run_dir in run_dirs:
        path = find_summary(Path(run_dir))
        if path is None:
            notes.append(f"{run_dir}: no summary.json (an RL stage writes it), left out of the comparison")
            continue
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            notes.append(f"{path}: not readable json ({err}), left out of the comparison")
            continue
        if not series and summary.get("start"):
            series.append(("start", summary_rows(summary["start"])))
        series.append((Path(run_dir).name, summary_rows(summary)))
    if not any(name != "start" for name, _ in series):
        return None
    levels = sorted({level for _, rows in series for level in rows}, key=level_order)
    fig, axes = new_figure(1, len(METRICS), "per level, every run side by side")
    width = 0.8 / len(series)
    for ax, (key, label) in zip(axes[0], METRICS):
        for i, (name, rows) in enumerate(series):
            shift = (i - (len(series) - 1) / 2) * width
            bars = [(x + shift, v) for x, level in enumerate(levels) if (v := _value(rows.get(level, {}), key)) is not None]
            ax.bar([x for x, _ in bars], [v for _, v in bars], width=width, label=name)
        ax.set_xticks(range(len(levels)), [f"L{level}" if level_order(level)[0] == 0 else level for level in levels])
        ax.set_xlabel("difficulty level")
        ax.set_title(label)
        top = 1.0 if key != "mean_tokens" else ax.get_ylim()[1]
        ax.set_ylim(0.0, top * 1.3)  # headroom for the legend
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize="x-small", loc="upper center", ncols=min(len(series), 3))
    return save_png(fig, Path(out_dir) / COMPARE_FILE)


def _value(row: dict[str, Any], key: str) -> Optional[float]:
    value = row.get(key)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None

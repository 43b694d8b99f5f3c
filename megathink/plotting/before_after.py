"""Per-level think ratio and accuracy before vs after RL, from `eval/before.json` and `eval/after.json`.

Grouped bars, one group per difficulty level ("all" last): did the policy learn to think on
hard levels and answer short on easy ones, without losing accuracy? A table carrying several
datasets (a policy report's rows have a "dataset") gets one row of panels per dataset. Only one
of the two files present still draws, with the one series it has.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

from megathink.plotting.canvas import file_slug, new_figure, save_png
from megathink.plotting.run_files import EVAL_FILES, EvalTables, level_order

METRICS = (("think_ratio", "think ratio"), ("accuracy", "accuracy"), ("mean_tokens", "mean response tokens"))
"""(row field, axis label) in panel order; a field no row has gets no panel."""

COLORS = {"before": "#9aa5b1", "after": "#1f6fb4"}


def plot_before_after(evals: EvalTables, out_dir: Path) -> Optional[Path]:
    """`before_after_<stage>.png`, or None when no table has any of the plotted fields."""
    rows = [row for which in EVAL_FILES for row in evals.tables.get(which, [])]
    metrics = [(key, label) for key, label in METRICS if any(_value(row, key) is not None for row in rows)]
    if not metrics:
        return None
    datasets = sorted({row.get("dataset", "") for row in rows})
    present = [which for which in EVAL_FILES if which in evals.tables]
    fig, axes = new_figure(len(datasets), len(metrics), f"{evals.name}: per level, {' vs '.join(present)} RL")
    for axes_row, dataset in zip(axes, datasets):
        tables = {which: [r for r in evals.tables[which] if r.get("dataset", "") == dataset] for which in present}
        for ax, (key, label) in zip(axes_row, metrics):
            _draw_bars(ax, tables, key, f"{dataset}: {label}" if dataset else label)
    return save_png(fig, out_dir / f"before_after_{file_slug(evals.name)}.png")


def _draw_bars(ax: Any, tables: dict[str, list[dict[str, Any]]], key: str, title: str) -> None:
    levels = sorted({row["level"] for rows in tables.values() for row in rows}, key=level_order)
    width = 0.8 / len(tables)
    for i, (which, rows) in enumerate(tables.items()):
        by_level = {row["level"]: _value(row, key) for row in rows}
        shift = (i - (len(tables) - 1) / 2) * width
        bars = [(x + shift, by_level[level]) for x, level in enumerate(levels) if by_level.get(level) is not None]
        xs, heights = ([x for x, _ in bars], [h for _, h in bars])
        ax.bar(xs, heights, width=width, color=COLORS[which], label=which)
    ax.set_xticks(range(len(levels)), [f"L{level}" if level_order(level)[0] == 0 else level for level in levels])
    ax.set_xlabel("difficulty level")
    ax.set_title(title)
    top = 1.0 if key in ("think_ratio", "accuracy") else ax.get_ylim()[1]
    ax.set_ylim(0.0, top * 1.2)  # headroom for the legend above the bars
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small", loc="upper center", ncols=len(tables))


def _value(row: dict[str, Any], key: str) -> Optional[float]:
    value = row.get(key)
    return value if isinstance(value, float) and math.isfinite(value) else None

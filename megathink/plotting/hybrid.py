"""HAcc and the think rate per level: the mode the policy chose against the mode forcing says pays.

Reads the policy reports that carry the adaptive-thinking metrics (`hacc`, `oracle_think_rate`,
`think_ratio` per level; evaluation/hybrid_metrics.py): `eval/before.json` and `eval/after.json`
of an RL stage, `eval/final_policy.json` of an SFT stage, `eval.json` of `megathink eval`. One
figure per folder, `hybrid_<folder>.png`, a row of panels per dataset:

- HAcc per level: the share of prompts where the policy's majority mode is the better one by
  forced-mode accuracy (ties count as correct);
- think rate per level: the policy's own (natural: share of responses whose first token is the
  think mode) as bars, and the oracle rate derived from forcing each mode (share of prompts
  where forced think is strictly more accurate than forced short) as markers, for each report.

Reports without HAcc (older runs, `eval.hacc=false`) draw nothing here.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

from megathink.plotting.canvas import file_slug, new_figure, save_png
from megathink.plotting.run_files import EvalTables, level_order, read_eval_table, stage_name

REPORTS = {
    "before": "eval/before.json", "after": "eval/after.json", "final": "eval/final_policy.json", "eval": "eval.json",
}
"""Table name -> where a folder holds it (the folder is the stage, or `megathink eval`'s output)."""

COLORS = {"before": "#9aa5b1", "after": "#1f6fb4", "final": "#5a9e4b", "eval": "#c2662d"}


def find_hybrid_tables(run_dir: Path, notes: list[str]) -> list[EvalTables]:
    """Every folder under `run_dir` with a report of `REPORTS` whose rows carry HAcc, in path order."""
    found: dict[Path, EvalTables] = {}
    for name, relative in REPORTS.items():
        for path in sorted(run_dir.rglob(relative)):
            owner = path.parent.parent if relative.startswith("eval/") else path.parent
            rows = read_eval_table(path, notes)
            if rows and any(_value(row, "hacc") is not None for row in rows):
                found.setdefault(owner, EvalTables(stage_name(owner, run_dir))).tables[name] = rows
    return [found[owner] for owner in sorted(found)]


def plot_hybrid(evals: EvalTables, out_dir: Path) -> Optional[Path]:
    """`hybrid_<folder>.png`, or None when no table has HAcc."""
    present = [name for name in REPORTS if name in evals.tables]
    rows = [row for name in present for row in evals.tables[name]]
    if not any(_value(row, "hacc") is not None for row in rows):
        return None
    datasets = sorted({row.get("dataset", "") for row in rows})
    fig, axes = new_figure(len(datasets), 2, f"{evals.name}: HAcc and think rate per level ({', '.join(present)})")
    for (hacc_ax, rate_ax), dataset in zip(axes, datasets):
        tables = {name: [r for r in evals.tables[name] if r.get("dataset", "") == dataset] for name in present}
        levels = sorted({row["level"] for table in tables.values() for row in table}, key=level_order)
        prefix = f"{dataset}: " if dataset else ""
        _bars(hacc_ax, tables, levels, "hacc", f"{prefix}HAcc (majority mode is the better one)")
        _bars(rate_ax, tables, levels, "think_ratio", f"{prefix}think rate: chosen (bars) vs needed (markers)")
        _markers(rate_ax, tables, levels, "oracle_think_rate")
    return save_png(fig, out_dir / f"hybrid_{file_slug(evals.name)}.png")


def _shift(index: int, count: int) -> float:
    return (index - (count - 1) / 2) * (0.8 / count)


def _bars(ax: Any, tables: dict[str, list[dict[str, Any]]], levels: list[str], key: str, title: str) -> None:
    width = 0.8 / len(tables)
    for i, (name, rows) in enumerate(tables.items()):
        by_level = {row["level"]: _value(row, key) for row in rows}
        bars = [(x + _shift(i, len(tables)), by_level[lvl]) for x, lvl in enumerate(levels) if by_level.get(lvl) is not None]
        ax.bar([x for x, _ in bars], [h for _, h in bars], width=width, color=COLORS[name], label=name)
    ax.set_xticks(range(len(levels)), [f"L{lvl}" if level_order(lvl)[0] == 0 else lvl for lvl in levels])
    ax.set_xlabel("difficulty level")
    ax.set_title(title, fontsize="medium")
    ax.set_ylim(0.0, 1.25)  # headroom for the legend above the bars
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small", loc="upper center", ncols=max(1, len(tables)))


def _markers(ax: Any, tables: dict[str, list[dict[str, Any]]], levels: list[str], key: str) -> None:
    for i, (name, rows) in enumerate(tables.items()):
        by_level = {row["level"]: _value(row, key) for row in rows}
        points = [(x + _shift(i, len(tables)), by_level[lvl]) for x, lvl in enumerate(levels) if by_level.get(lvl) is not None]
        ax.plot([x for x, _ in points], [y for _, y in points], linestyle="none", marker="D", markersize=7,
                markerfacecolor="white", markeredgecolor="black", zorder=3)


def _value(row: dict[str, Any], key: str) -> Optional[float]:
    value = row.get(key)
    return value if isinstance(value, float) and math.isfinite(value) else None

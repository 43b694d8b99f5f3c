"""A sweep as a table: one row per job, its swept values, then its results (markdown and CSV).

Columns: job, each swept parameter, accuracy / think ratio / short-or-NoThinking ratio / mean
tokens after RL, the same before RL (`start_*`), the final model forced to always think /
always answer short, and the think ratio per difficulty level. The markdown shows ratios and
accuracies as percentages; the CSV keeps the raw numbers (empty cells where a job has none).
"""

from __future__ import annotations

import csv
import io
from typing import Optional

from megathink.plotting.sweep_files import Sweep, SweepPoint, format_value

RESULT_COLUMNS = (
    ("accuracy", "accuracy"),
    ("think_ratio", "think ratio"),
    ("nothinking_ratio", "short ratio"),
    ("mean_tokens", "mean tokens"),
    ("start_accuracy", "start accuracy"),
    ("start_think_ratio", "start think ratio"),
    ("start_mean_tokens", "start mean tokens"),
    ("always_think_accuracy", "always-think accuracy"),
    ("always_short_accuracy", "always-short accuracy"),
)
"""(result key, markdown header) in column order; the per-level think ratios follow."""


def result_columns(sweep: Sweep) -> list[tuple[str, str]]:
    """The result columns of this sweep: the fixed ones, then `think_ratio_L<level>` per level."""
    return list(RESULT_COLUMNS) + [(f"think_ratio_L{level}", f"think L{level}") for level in sweep.levels]


def to_csv(sweep: Sweep) -> str:
    """CSV text: header `job, <params>, <result keys>`; numbers as written, blanks when missing."""
    columns = result_columns(sweep)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["job", *sweep.params, *(key for key, _ in columns)])
    for point in sweep.points:
        values = [point.params.get(key) for key in sweep.params]
        writer.writerow(
            [point.job, *("" if v is None else v for v in values),
             *("" if (r := point.results.get(key)) is None else r for key, _ in columns)]
        )
    return out.getvalue()


def to_markdown(sweep: Sweep) -> str:
    """A markdown table, percentages for ratios and accuracies, `-` where a job has no value."""
    columns = result_columns(sweep)
    header = ["job", *sweep.params, *(label for _, label in columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for point in sweep.points:
        cells = [point.job, *(format_value(point.params.get(key)) for key in sweep.params)]
        cells += [_cell(point, key) for key, _ in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(point: SweepPoint, key: str) -> str:
    value: Optional[float] = point.results.get(key)
    if value is None:
        return "-"
    if key.endswith("mean_tokens"):
        return f"{value:.1f}"
    return f"{100 * value:.1f}%"

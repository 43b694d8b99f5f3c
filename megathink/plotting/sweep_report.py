"""`report_sweep(sweep_dir)`: a Hydra multirun sweep as a table and figures (`megathink sweep-report`).

Writes into `<sweep_dir>/report/` (or `out_dir`):

    sweep_report.md          one row per job: swept values, accuracy, think ratio, short ratio,
                             mean tokens (after RL, and before), forced always-think / always-short
                             accuracy, think ratio per level (sweep_table.py)
    sweep_report.csv         the same numbers, raw
    sweep_<param>.png        per swept parameter: accuracy, think ratio and mean tokens against it,
                             one line per combination of the other parameters' values (for an
                             alpha x gamma sweep: against alpha, a line per gamma, and the reverse)

Numeric parameters get a numeric axis (logarithmic when every value is positive and they span
a factor of 10 or more, as alpha sweeps do); others (`algorithm=grpo,degrpo`) one tick per value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any, Optional, Sequence

from megathink.plotting.canvas import file_slug, new_figure, save_png
from megathink.plotting.sweep_files import Sweep, SweepPoint, Value, format_value, read_sweep
from megathink.plotting.sweep_table import to_csv, to_markdown

REPORT_DIR = "report"
TABLE_MD = "sweep_report.md"
TABLE_CSV = "sweep_report.csv"
PANELS = (("accuracy", "accuracy"), ("think_ratio", "think ratio"), ("mean_tokens", "mean response tokens"))
"""(result key, axis label) of each figure's panels."""


@dataclass
class SweepReport:
    sweep: Sweep
    written: list[Path] = field(default_factory=list)
    """Files written: the markdown table, the CSV, then the figures."""
    notes: list[str] = field(default_factory=list)
    """Jobs without results, parameters not plotted, unreadable files: one line each."""

    @property
    def finished(self) -> list[SweepPoint]:
        return [point for point in self.sweep.points if point.results]


def report_sweep(sweep_dir: Path, out_dir: Optional[Path] = None, params: Optional[Sequence[str]] = None) -> SweepReport:
    """Read every job under `sweep_dir`, write the tables and figures; nothing is written when
    no job has a summary.json (the report's `finished` is then empty)."""
    sweep_dir = Path(sweep_dir)
    out_dir = Path(out_dir) if out_dir is not None else sweep_dir / REPORT_DIR
    sweep = read_sweep(sweep_dir, params)
    report = SweepReport(sweep=sweep, notes=list(sweep.notes))
    if not report.finished:
        return report
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in ((TABLE_MD, to_markdown(sweep)), (TABLE_CSV, to_csv(sweep))):
        (out_dir / name).write_text(text, encoding="utf-8")
        report.written.append(out_dir / name)
    for param in sweep.params:
        path = plot_against(sweep, param, out_dir, report.notes)
        if path is not None:
            report.written.append(path)
    return report


def plot_against(sweep: Sweep, param: str, out_dir: Path, notes: list[str]) -> Optional[Path]:
    """`sweep_<param>.png`: each panel's result against `param`, a line per value of the other
    parameters; None (with a note) when the finished jobs hold fewer than two values of it."""
    points = [p for p in sweep.points if p.results and p.params.get(param) is not None]
    values = _distinct([p.params[param] for p in points])
    if len(values) < 2:
        notes.append(f"{param}: the finished jobs hold {len(values)} value(s) of it, no figure")
        return None
    others = [key for key in sweep.params if key != param]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    position = {v: (float(v) if numeric else float(i)) for i, v in enumerate(sorted(values, key=_sort_key))}
    fig, axes = new_figure(1, len(PANELS), f"sweep: results against {param}")
    for ax, (key, label) in zip(axes[0], PANELS):
        for line_label, members in lines_by_others(points, others):
            xy = sorted(
                (position[p.params[param]], p.results[key]) for p in members if p.results.get(key) is not None
            )
            if xy:
                ax.plot([x for x, _ in xy], [y for _, y in xy], marker="o", label=line_label or None)
        _axis(ax, param, label, numeric, values, position)
        if key in ("accuracy", "think_ratio"):
            ax.set_ylim(-0.02, 1.02)
        if others:
            ax.legend(fontsize="x-small")
    return save_png(fig, out_dir / f"sweep_{file_slug(param)}.png")


def lines_by_others(points: list[SweepPoint], others: list[str]) -> list[tuple[str, list[SweepPoint]]]:
    """Points grouped by their values of `others`, labelled "gamma=0.5, ..." (one unlabelled group without others)."""
    def key(p: SweepPoint) -> tuple:
        return tuple(_sort_key(p.params.get(k)) for k in others)

    groups = []
    for _, members in groupby(sorted(points, key=key), key=key):
        members = list(members)
        label = ", ".join(f"{k.rsplit('.', 1)[-1]}={format_value(members[0].params.get(k))}" for k in others)
        groups.append((label, members))
    return groups


def _axis(ax: Any, param: str, label: str, numeric: bool, values: list[Value], position: dict) -> None:
    ax.set_xlabel(param)
    ax.set_title(label)
    ax.grid(alpha=0.3)
    if numeric:
        low, high = min(values), max(values)
        if low > 0 and high / low >= 10:
            ax.set_xscale("log")
            ax.minorticks_off()
        ax.set_xticks([float(v) for v in values], [format_value(v) for v in values])
    else:
        ax.set_xticks([position[v] for v in values], [format_value(v) for v in values])
        ax.set_xlim(-0.5, len(values) - 0.5)


def _distinct(values: list[Value]) -> list[Value]:
    seen: list[Value] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return sorted(seen, key=_sort_key)


def _sort_key(value: Value) -> tuple:
    """Numbers in numeric order, then text; None last (mixed kinds never compare directly)."""
    if value is None:
        return (2, 0.0, "")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))

"""Draw every figure a run folder has the data for, and say which ones were skipped and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from megathink.plotting.before_after import plot_before_after
from megathink.plotting.hybrid import find_hybrid_tables, plot_hybrid
from megathink.plotting.losses import plot_losses
from megathink.plotting.run_files import EVAL_FILES, find_eval_tables, find_stage_metrics
from megathink.plotting.think_ratio import plot_think_ratio, think_ratio_prefixes

PLOTS_DIR = "plots"


@dataclass
class PlotReport:
    written: list[Path] = field(default_factory=list)
    """The PNG files drawn, in drawing order."""
    notes: list[str] = field(default_factory=list)
    """One line per figure skipped or input ignored, naming the file or stage and the reason."""


def plot_run(run_dir: Path, out_dir: Optional[Path] = None) -> PlotReport:
    """Draw the think-ratio, before/after-RL, loss and HAcc figures of `run_dir` into `out_dir`.

    out_dir defaults to `<run_dir>/plots/`. Missing or malformed inputs become notes, never
    errors; an empty `written` list means nothing under run_dir could be plotted.
    """
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / PLOTS_DIR
    report = PlotReport()
    stages = find_stage_metrics(run_dir, report.notes)
    if not stages:
        report.notes.append(f"no metrics.jsonl with numeric metrics under {run_dir}: no curves")
    for stage in stages:
        if think_ratio_prefixes(stage):
            report.written += plot_think_ratio(stage, out_dir)
        else:
            report.notes.append(f"{stage.name}: no think_ratio metrics (an RL stage logs them), no think-ratio plot")
        loss_plot = plot_losses(stage, out_dir)
        if loss_plot is None:
            report.notes.append(f"{stage.name}: no loss metrics, no loss plot")
        else:
            report.written.append(loss_plot)
    evals = find_eval_tables(run_dir, report.notes)
    if not evals:
        report.notes.append(f"no eval/before.json or eval/after.json under {run_dir}: no before/after-RL plot")
    for tables in evals:
        missing = [f"eval/{which}.json" for which in EVAL_FILES if which not in tables.tables]
        if missing:
            report.notes.append(f"{tables.name}: no {missing[0]}, the before/after plot shows one side only")
        path = plot_before_after(tables, out_dir)
        if path is None:
            report.notes.append(f"{tables.name}: eval tables have no think_ratio, accuracy or mean_tokens")
        else:
            report.written.append(path)
    for tables in find_hybrid_tables(run_dir, []):  # reports with HAcc (their read errors are noted above)
        path = plot_hybrid(tables, out_dir)
        if path is not None:
            report.written.append(path)
    return report

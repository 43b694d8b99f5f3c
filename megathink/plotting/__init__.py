"""Figures of a run folder: think ratio over RL steps per level, per-level before vs after RL, losses,
HAcc and the chosen vs needed think rate per level (`hybrid.py`).

`plot_run(run_dir)` draws every figure whose inputs exist into `<run_dir>/plots/` and returns
the files written and the notes on what was skipped; `megathink plot RUN_DIR` is its command
line. matplotlib is imported only while drawing (Agg canvas, no display, no pyplot).
"""

from megathink.plotting.report import PLOTS_DIR, PlotReport, plot_run

__all__ = ["PLOTS_DIR", "PlotReport", "plot_run"]

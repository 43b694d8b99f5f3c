"""Figures without a display: a `matplotlib.figure.Figure` rendered by the Agg canvas.

No pyplot, so no global figure registry, no backend switching and no GUI. matplotlib is
imported inside these functions, so importing megathink never pays for it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

PANEL_SIZE = (5.0, 3.6)
"""Width, height in inches of one panel."""

DPI = 110


def new_figure(rows: int, cols: int, title: str) -> tuple[Any, list[list[Any]]]:
    """A figure of rows x cols panels and its axes as a nested list [row][col]."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(PANEL_SIZE[0] * cols, PANEL_SIZE[1] * rows), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    fig.suptitle(title)
    return fig, [list(row) for row in axes]


def save_png(fig: Any, path: Path) -> Path:
    """Write the figure as a PNG (creating the folder) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def step_axis(ax: Any) -> None:
    """Label the x axis as optimizer steps, with integer ticks only."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def level_colors(count: int) -> list[Any]:
    """`count` colours running from easy (light) to hard (dark) levels."""
    from matplotlib import colormaps

    cmap = colormaps["viridis_r"]
    return [cmap(0.15 + 0.75 * i / max(count - 1, 1)) for i in range(count)]


def file_slug(name: str) -> str:
    """A stage or metric name as a file-name part: `3/rl` -> `3_rl`, `eval/gsm8k/` -> `eval_gsm8k`."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", name).strip("_") or "run"

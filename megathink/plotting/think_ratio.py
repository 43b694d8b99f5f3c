"""Think ratio over training steps, overall and per difficulty level (the Thinkless U-curve).

The RL loop logs `think_ratio` (share of rollouts that chose `<think>`) and `think_ratio_L<level>`,
with `accuracy`, `reward` and `mean_tokens` (the same `_L<level>` split where logged). Held-out
evaluations may log the same names under a prefix (`eval/gsm8k/think_ratio_L3`): each prefix
gets a figure of its own. Panels: think ratio, then whichever of accuracy, reward and mean
tokens exist; overall in black, levels from light (easy) to dark (hard).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from megathink.plotting.canvas import file_slug, level_colors, new_figure, save_png, step_axis
from megathink.plotting.run_files import Series, StageMetrics, level_keys

PANELS = (
    ("think_ratio", "think ratio"),
    ("accuracy", "accuracy"),
    ("reward", "reward"),
    ("mean_tokens", "mean response tokens"),
)
"""(metric base name, axis label), in panel order; ratios and accuracies share the [0, 1] range."""

_THINK_RATIO_KEY = re.compile(r"(?P<prefix>(?:.*/)?)think_ratio(?:_L.+)?")
_UNIT_RANGE = ("think_ratio", "accuracy")


def think_ratio_prefixes(stage: StageMetrics) -> list[str]:
    """The key prefixes ("" for the training rollouts) under which a think ratio was logged."""
    return sorted({m.group("prefix") for key in stage.series if (m := _THINK_RATIO_KEY.fullmatch(key))})


def plot_think_ratio(stage: StageMetrics, out_dir: Path) -> list[Path]:
    """One PNG per prefix with a think ratio: `think_ratio_<stage>[_<prefix>].png`."""
    written = []
    for prefix in think_ratio_prefixes(stage):
        panels = [(base, label) for base, label in PANELS if _panel_keys(stage.series, prefix + base)]
        cols = min(len(panels), 2)
        rows = math.ceil(len(panels) / cols)
        where = f" ({prefix.rstrip('/')})" if prefix else ""
        fig, axes = new_figure(rows, cols, f"{stage.name}{where}: think ratio and outcomes by level over steps")
        flat = [ax for row in axes for ax in row]
        for ax, (base, label) in zip(flat, panels):
            _draw_panel(ax, stage.series, prefix + base, label, unit_range=base in _UNIT_RANGE)
        for ax in flat[len(panels) :]:
            ax.set_visible(False)
        suffix = f"_{file_slug(prefix)}" if prefix else ""
        written.append(save_png(fig, out_dir / f"think_ratio_{file_slug(stage.name)}{suffix}.png"))
    return written


def _panel_keys(series: dict[str, Series], base: str) -> list[tuple[str, str]]:
    """(legend label, key) of the overall series and each level's, those that exist."""
    keys = [("all", base)] if base in series else []
    return keys + [(f"L{level}", key) for level, key in level_keys(series, base).items()]


def _draw_panel(ax: Any, series: dict[str, Series], base: str, label: str, *, unit_range: bool) -> None:
    keys = _panel_keys(series, base)
    levels = [k for k in keys if k[0] != "all"]
    colors = dict(zip((name for name, _ in levels), level_colors(len(levels))))
    for name, key in keys:
        steps, values = zip(*series[key])
        if name == "all":
            ax.plot(steps, values, color="black", linewidth=2.2, label="all", zorder=3)
        else:
            ax.plot(steps, values, color=colors[name], linewidth=1.3, label=name)
    step_axis(ax)
    ax.set_ylabel(label)
    if unit_range:
        ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", ncols=2 if len(keys) > 6 else 1)

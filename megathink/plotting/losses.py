"""Loss curves of one stage: `loss` in black and every `loss_<part>` beside it.

SFT logs `loss_short` and `loss_think` (the two answer forms); an RL stage may log the parts of
its objective the same way. Positive losses spanning more than a decade get a log scale.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

from megathink.plotting.canvas import file_slug, new_figure, save_png, step_axis
from megathink.plotting.run_files import StageMetrics

LOG_SCALE_SPAN = 10.0
"""max / min of all-positive curves above which the y axis is logarithmic."""


def loss_keys(stage: StageMetrics) -> list[str]:
    """`loss` first (when logged), then the `loss_*` parts in name order."""
    parts = sorted(key for key in stage.series if key.startswith("loss_"))
    return (["loss"] if "loss" in stage.series else []) + parts


def plot_losses(stage: StageMetrics, out_dir: Path) -> Optional[Path]:
    """`loss_<stage>.png`, or None when the stage logged no loss."""
    keys = loss_keys(stage)
    if not keys:
        return None
    fig, axes = new_figure(1, 1, f"{stage.name}: training loss")
    ax = axes[0][0]
    finite = []
    for key in keys:
        steps, values = zip(*stage.series[key])
        total = key == "loss"
        ax.plot(steps, values, label=key, color="black" if total else None, linewidth=2.0 if total else 1.2)
        finite += [v for v in values if math.isfinite(v)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > LOG_SCALE_SPAN:
        ax.set_yscale("log")
    step_axis(ax)
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return save_png(fig, out_dir / f"loss_{file_slug(stage.name)}.png")

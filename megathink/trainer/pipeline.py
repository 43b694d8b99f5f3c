"""Runs the configured stages in order, each in its own sub-folder of the output directory.

`<output_dir>/sft/` holds the SFT stage (checkpoints, metrics, eval tables, the final HF
model in `hf/`). Later stages start from the previous stage's `hf/` model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from megathink.config import RunConfig


def run_pipeline(cfg: RunConfig) -> dict[str, Any]:
    """Run every stage in `cfg.stages`; returns each stage's result by name."""
    from megathink.trainer.sft import run_sft

    out = Path(cfg.output_dir)
    results: dict[str, Any] = {}
    for stage in cfg.stages:
        if stage == "sft":
            results[stage] = run_sft(cfg, out / "sft")
    return results

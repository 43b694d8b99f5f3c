"""Synthetic Hydra multirun folders, as `megathink train -m algorithm.alpha=... reward.gamma=...` leaves them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import yaml

ALPHAS = (0.001, 0.01, 0.1)
GAMMAS = (0.5, 0.8)
LEVELS = (1, 2, 3)


def expected_think_ratio(alpha: float, gamma: float) -> float:
    """A made-up law for the synthetic results: larger gamma and alpha, fewer thoughts."""
    return round(0.9 - gamma * 0.5 - alpha, 4)


def summary_for(alpha: float, gamma: float) -> dict[str, Any]:
    think = expected_think_ratio(alpha, gamma)
    per_level = [
        {"level": lvl, "think_ratio": min(1.0, think * lvl / 2), "nothinking_ratio": 1 - min(1.0, think * lvl / 2),
         "accuracy": 0.9 - 0.1 * lvl, "mean_tokens": 10.0 * lvl}
        for lvl in LEVELS
    ]
    start = {"per_level": per_level, "accuracy": 0.5, "mean_tokens": 60.0, "think_ratio": 1.0, "nothinking_ratio": 0.0}
    return {
        "per_level": per_level,
        "accuracy": 0.8 - alpha,
        "mean_tokens": 100.0 * think,
        "think_ratio": think,
        "nothinking_ratio": 1 - think,
        "start": start,
        "always_think_accuracy": 0.85,
        "always_think_mean_tokens": 120.0,
        "always_short_accuracy": 0.4,
    }


def write_job(job: Path, overrides: list[str], config: dict[str, Any], summary: Optional[dict[str, Any]]) -> Path:
    (job / ".hydra").mkdir(parents=True, exist_ok=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides), encoding="utf-8")
    (job / "rl").mkdir(exist_ok=True)
    (job / "rl" / "resolved_config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    if summary is not None:
        (job / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return job


def build_sweep(root: Path, *, unfinished: tuple[int, ...] = ()) -> Path:
    """A 3 x 2 alpha x gamma sweep in Hydra's job order (the last override varies fastest);
    the jobs numbered in `unfinished` have no summary.json yet."""
    num = 0
    for alpha in ALPHAS:
        for gamma in GAMMAS:
            overrides = ["experiment=toy_demo", f"algorithm.alpha={alpha}", f"reward.gamma={gamma}"]
            config = {"output_dir": str(root / str(num)), "algorithm": {"name": "degrpo", "alpha": alpha},
                      "reward": {"gamma": gamma}}
            write_job(root / str(num), overrides, config, None if num in unfinished else summary_for(alpha, gamma))
            num += 1
    (root / "multirun.yaml").write_text("hydra: {}\n", encoding="utf-8")
    return root

"""Synthetic run folders, as `megathink train` leaves them: sft/ and rl/ metrics, rl/eval tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LEVELS = (1, 2, 3)


def write_jsonl(path: Path, rows: list[dict[str, Any]], trailer: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + trailer, encoding="utf-8")
    return path


def write_eval(path: Path, think: list[float], acc: list[float]) -> Path:
    rows = [
        {"level": lvl, "think_ratio": t, "accuracy": a, "mean_tokens": 40.0 * t + 5.0}
        for lvl, t, a in zip(LEVELS, think, acc)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"per_level": rows}), encoding="utf-8")
    return path


def rl_row(step: int) -> dict[str, Any]:
    """A U-shaped overall think ratio; easy levels drop to short answers, the hard level keeps thinking."""
    x = step / 10
    row: dict[str, Any] = {"step": step, "time": 1.0e9 + step, "think_ratio": 0.9 - 1.2 * x + 1.0 * x * x}
    for lvl in LEVELS:
        row[f"think_ratio_L{lvl}"] = max(0.0, 1.0 - x * (4 - lvl) / 3)
        row[f"accuracy_L{lvl}"] = 0.9 - 0.1 * lvl + 0.05 * x
    row.update(accuracy=0.7 + 0.05 * x, reward=0.2 + 0.3 * x, mean_tokens=60.0 - 20 * x, loss=0.1 - 0.01 * step)
    row["per_level"] = [{"level": 1, "think_ratio": 0.5}]  # a table: not a series
    return row


def sft_row(step: int) -> dict[str, Any]:
    return {"step": step, "loss": 3.0 / step, "loss_short": 2.0 / step, "loss_think": 4.0 / step, "lr": 1e-4}


def build_run(run: Path) -> Path:
    """A two-stage run: sft losses, rl think ratios per level (one resume, one torn last line), eval tables."""
    write_jsonl(run / "sft" / "metrics.jsonl", [sft_row(s) for s in range(1, 21)])
    rl_rows = [rl_row(s) for s in range(1, 11)]
    resumed = [{**rl_row(s), "think_ratio": 0.5} for s in (9, 10, 11)]  # a resume repeats steps 9-10
    write_jsonl(run / "rl" / "metrics.jsonl", rl_rows + resumed, trailer='{"step": 12, "think_ra')
    write_eval(run / "rl" / "eval" / "before.json", think=[0.9, 0.95, 1.0], acc=[0.8, 0.6, 0.4])
    write_eval(run / "rl" / "eval" / "after.json", think=[0.1, 0.5, 0.95], acc=[0.85, 0.65, 0.45])
    return run


def assert_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 1000, path
    assert path.read_bytes()[:8] == PNG_MAGIC, path

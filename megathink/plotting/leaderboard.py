"""`megathink leaderboard ROOT`: methods side by side, mean and spread over seeds.

ROOT holds one folder per entry (a method with its settings), each with one run folder per seed:
`ROOT/<entry>/seed_<n>/` (what examples/toy_leaderboard.sh writes), each run with its RL
`summary.json` (or `rl/summary.json`). For every entry the table gives the mean and the sample
standard deviation over its seeds of: accuracy, mean response tokens, think ratio (overall and
per level), Hybrid Accuracy (`hacc`: the share of prompts whose chosen mode is the
better one by forced-mode accuracy, when the summary has it), and the number of seeds. Entries
are ordered as `--order` lists them, else by name. Outputs in `--out`: `leaderboard.md` (a
markdown table), `leaderboard.csv`, and `leaderboard.png` (accuracy against response tokens, one
point per entry with its seed spread as error bars, and the per-level think ratios).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean, stdev
from typing import Any, Optional, Sequence

from megathink.errors import DataError
from megathink.plotting.canvas import new_figure, save_png
from megathink.plotting.compare import find_summary
from megathink.plotting.run_files import level_order

OVERALL = (("accuracy", "accuracy"), ("mean_tokens", "response tokens"), ("think_ratio", "think ratio"))
HYBRID = ("hacc", "HAcc")  # the summary's key (trainer/rl_summary.py HYBRID_KEYS)


@dataclass
class Entry:
    """One leaderboard entry: its runs' summaries (one per seed)."""

    name: str
    summaries: list[dict[str, Any]] = field(default_factory=list)

    def values(self, key: str) -> list[float]:
        return [float(s[key]) for s in self.summaries if s.get(key) is not None]

    def level_values(self, level: str) -> list[float]:
        out = []
        for summary in self.summaries:
            for row in summary.get("per_level", []):
                if str(row["level"]) == level and row.get("think_ratio") is not None:
                    out.append(float(row["think_ratio"]))
        return out

    def levels(self) -> list[str]:
        return sorted({str(row["level"]) for s in self.summaries for row in s.get("per_level", [])}, key=level_order)


def collect(root: Path, order: Optional[Sequence[str]] = None) -> list[Entry]:
    """The entries under `root` (folders holding seed run folders with a summary)."""
    if not root.is_dir():
        raise DataError(f"leaderboard root {str(root)!r} is not a directory: give the folder the leaderboard runs wrote.")
    entries = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        runs = [find_summary(run) for run in sorted(folder.iterdir()) if run.is_dir()]
        summaries = [json.loads(path.read_text(encoding="utf-8")) for path in runs if path is not None]
        if summaries:
            entries.append(Entry(folder.name, summaries))
    if not entries:
        raise DataError(f"{str(root)!r} holds no <entry>/<seed run>/summary.json: nothing to rank (run the RL stage first).")
    if order:
        rank = {name: i for i, name in enumerate(order)}
        entries.sort(key=lambda e: (rank.get(e.name, len(rank)), e.name))
    return entries


def spread(values: list[float]) -> tuple[float, float]:
    """(mean, sample std) of `values`; std 0 for one value, nan for none."""
    if not values:
        return math.nan, math.nan
    return mean(values), stdev(values) if len(values) > 1 else 0.0


def _cell(values: list[float], percent: bool) -> str:
    m, s = spread(values)
    if math.isnan(m):
        return "-"
    scale = 100.0 if percent else 1.0
    return f"{m * scale:.1f} ± {s * scale:.1f}"


def table_rows(entries: list[Entry]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the markdown / CSV table."""
    levels = sorted({level for e in entries for level in e.levels()}, key=level_order)
    header = ["entry", "seeds", "accuracy %", "response tokens", "think ratio %"]
    header += [f"think % L{level}" for level in levels]
    header.append("HAcc %")
    rows = []
    for entry in entries:
        row = [entry.name, str(len(entry.summaries))]
        row += [_cell(entry.values(key), key != "mean_tokens") for key, _ in OVERALL]
        row += [_cell(entry.level_values(level), True) for level in levels]
        row.append(_cell(entry.values(HYBRID[0]), True))
        rows.append(row)
    return header, rows


def markdown(entries: list[Entry]) -> str:
    header, rows = table_rows(entries)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_leaderboard(root: Path, out: Path, order: Optional[Sequence[str]] = None) -> list[Path]:
    """Write leaderboard.md, .csv and .png for the runs under `root` into `out`; returns the paths."""
    entries = collect(root, order)
    out.mkdir(parents=True, exist_ok=True)
    md, table_csv, png = out / "leaderboard.md", out / "leaderboard.csv", out / "leaderboard.png"
    md.write_text(markdown(entries), encoding="utf-8")
    header, rows = table_rows(entries)
    with open(table_csv, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    _plot(entries, png)
    return [md, table_csv, png]


def _plot(entries: list[Entry], path: Path) -> None:
    fig, axes = new_figure(1, 2, "toy leaderboard: mean over seeds, bars = sample std")
    ax = axes[0][0]
    for entry in entries:
        (acc, acc_sd), (tok, tok_sd) = spread(entry.values("accuracy")), spread(entry.values("mean_tokens"))
        if math.isnan(acc) or math.isnan(tok):
            continue
        ax.errorbar(tok, 100 * acc, xerr=tok_sd, yerr=100 * acc_sd, fmt="o", capsize=3, label=entry.name)
        ax.annotate(entry.name, (tok, 100 * acc), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("mean response tokens")
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    ax = axes[0][1]
    levels = sorted({level for e in entries for level in e.levels()}, key=level_order)
    for entry in entries:
        means = [100 * spread(entry.level_values(level))[0] for level in levels]
        ax.plot(range(len(levels)), means, marker="o", label=entry.name)
    ax.set_xticks(range(len(levels)), [f"L{level}" for level in levels])
    ax.set_ylabel("think ratio (%)")
    ax.set_xlabel("difficulty level")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    save_png(fig, path)


__all__ = ["Entry", "collect", "markdown", "spread", "table_rows", "write_leaderboard"]

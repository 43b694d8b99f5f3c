"""`megathink leaderboard`: mean and sample std over seeds per entry, from synthetic summaries."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from megathink.errors import DataError
from megathink.launch.leaderboard_command import main
from megathink.plotting.leaderboard import collect, spread, table_rows


def write_run(folder: Path, accuracy: float, tokens: float, think: float, hacc: float | None, levels: dict) -> None:
    folder.mkdir(parents=True)
    summary = {
        "accuracy": accuracy, "mean_tokens": tokens, "think_ratio": think,
        "per_level": [{"level": level, "think_ratio": value, "accuracy": 0.5, "mean_tokens": 10.0} for level, value in levels.items()],
    }
    if hacc is not None:
        summary["hacc"] = hacc
    (folder / "summary.json").write_text(json.dumps(summary))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write_run(tmp_path / "degrpo" / "seed_0", 0.8, 20.0, 0.4, 0.9, {1: 0.0, 2: 1.0})
    write_run(tmp_path / "degrpo" / "seed_1", 0.6, 30.0, 0.6, 0.7, {1: 0.2, 2: 1.0})
    write_run(tmp_path / "grpo" / "seed_0", 0.5, 40.0, 1.0, None, {1: 1.0, 2: 1.0})
    (tmp_path / "grpo" / "seed_1").mkdir()  # a run that did not finish: no summary, skipped
    return tmp_path


def test_mean_and_sample_std_per_entry(root: Path) -> None:
    entries = collect(root, order=["grpo", "degrpo"])
    assert [e.name for e in entries] == ["grpo", "degrpo"]
    header, rows = table_rows(entries)
    assert header == ["entry", "seeds", "accuracy %", "response tokens", "think ratio %", "think % L1", "think % L2", "HAcc %"]
    grpo, degrpo = rows
    assert grpo == ["grpo", "1", "50.0 ± 0.0", "40.0 ± 0.0", "100.0 ± 0.0", "100.0 ± 0.0", "100.0 ± 0.0", "-"]
    # degrpo: accuracy 0.8, 0.6 -> 70.0 ± 14.1 (sample std of two values: |a - b| / sqrt(2))
    assert degrpo == ["degrpo", "2", "70.0 ± 14.1", "25.0 ± 7.1", "50.0 ± 14.1", "10.0 ± 14.1", "100.0 ± 0.0", "80.0 ± 14.1"]
    assert all(math.isnan(v) for v in spread([]))  # nan for no values


def test_command_writes_table_csv_and_figure(root: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main([str(root), "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"leaderboard.md", "leaderboard.csv", "leaderboard.png"}
    assert "| degrpo | 2 | 70.0 ± 14.1" in capsys.readouterr().out
    assert main([str(tmp_path / "nope")]) == 2
    with pytest.raises(DataError, match="nothing to rank"):
        collect(out)

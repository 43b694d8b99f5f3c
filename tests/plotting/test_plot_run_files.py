"""Reading a run folder for plots: last line per step wins, non-series values left out, bad input noted."""

from __future__ import annotations

import json
import math
from pathlib import Path

from synthetic_runs import build_run, write_eval, write_jsonl

from megathink.plotting.run_files import (
    find_eval_tables,
    find_stage_metrics,
    level_keys,
    read_eval_table,
    read_metrics,
)


def test_resumed_steps_keep_the_last_line_and_torn_lines_are_noted(synthetic_run: Path) -> None:
    notes: list[str] = []
    series = read_metrics(synthetic_run / "rl" / "metrics.jsonl", notes)
    steps = [s for s, _ in series["think_ratio"]]
    assert steps == list(range(1, 12))
    assert dict(series["think_ratio"])[9] == 0.5 and dict(series["think_ratio"])[8] != 0.5
    assert "per_level" not in series and "time" not in series
    assert notes == [f"{synthetic_run / 'rl' / 'metrics.jsonl'}: 1 malformed line(s) ignored"]


def test_non_finite_strings_are_numbers_and_other_values_are_not_series(tmp_path: Path) -> None:
    rows = [{"step": 1, "loss": "nan", "mode": "short", "ok": True, "lr": 1e-4}, {"step": True, "loss": 1.0}]
    series = read_metrics(write_jsonl(tmp_path / "metrics.jsonl", rows), [])
    assert set(series) == {"loss", "lr"} and math.isnan(series["loss"][0][1])


def test_stages_are_named_by_folder(synthetic_run: Path, tmp_path: Path) -> None:
    assert [s.name for s in find_stage_metrics(synthetic_run, [])] == ["rl", "sft"]
    sweep = build_run(tmp_path / "multirun" / "3")
    assert [s.name for s in find_stage_metrics(sweep.parent, [])] == ["3/rl", "3/sft"]
    assert [s.name for s in find_stage_metrics(synthetic_run / "sft", [])] == ["sft"]


def test_level_keys_are_in_numeric_order() -> None:
    series = {f"think_ratio_L{lvl}": [(1, 0.5)] for lvl in ("10", "2", "none", "1")}
    series["think_ratio"] = [(1, 0.5)]
    series["accuracy_L1"] = [(1, 0.5)]
    assert list(level_keys(series, "think_ratio")) == ["1", "2", "10", "none"]


def test_eval_tables_in_both_formats(tmp_path: Path) -> None:
    write_eval(tmp_path / "rl" / "eval" / "after.json", think=[0.1, 0.4], acc=[0.9, 0.5])
    report = {"rows": [{"dataset": "gsm8k", "level": "all", "think_ratio": 0.2, "think_accuracy": None}]}
    (tmp_path / "rl" / "eval" / "before.json").write_text(json.dumps(report))
    (found,) = find_eval_tables(tmp_path, [])
    assert found.name == "rl"
    assert found.tables["after"][1] == {"level": "2", "think_ratio": 0.4, "accuracy": 0.5, "mean_tokens": 21.0}
    assert found.tables["before"] == [{"dataset": "gsm8k", "level": "all", "think_ratio": 0.2, "think_accuracy": None}]


def test_malformed_eval_files_are_notes(tmp_path: Path) -> None:
    bad_json = tmp_path / "a.json"
    bad_json.write_text("{not json")
    no_rows = tmp_path / "b.json"
    no_rows.write_text(json.dumps({"per_level": [{"think_ratio": 0.5}]}))
    notes: list[str] = []
    assert read_eval_table(bad_json, notes) is None and read_eval_table(no_rows, notes) is None
    assert "not readable json" in notes[0] and '"level"' in notes[1]


def test_lines_of_one_step_merge(tmp_path):
    from megathink.plotting.run_files import read_metrics

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 60, "think_ratio": 0.5, "reward": 0.1}\n{"step": 60, "eval/accuracy": 0.9, "reward": 0.2}\n')
    series = read_metrics(path, [])
    assert series["think_ratio"] == [(60, 0.5)] and series["eval/accuracy"] == [(60, 0.9)]
    assert series["reward"] == [(60, 0.2)]

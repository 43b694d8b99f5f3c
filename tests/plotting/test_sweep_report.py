"""`megathink.plotting.sweep_report`: a multirun folder read, tabulated and plotted."""

from __future__ import annotations

import csv
import io
import json

import pytest
from synthetic_runs import assert_png
from synthetic_sweep import ALPHAS, GAMMAS, build_sweep, expected_think_ratio, write_job

from megathink.plotting.sweep_files import read_sweep, swept_keys
from megathink.plotting.sweep_report import lines_by_others, plot_against, report_sweep
from megathink.plotting.sweep_table import to_csv, to_markdown


@pytest.fixture
def sweep_dir(tmp_path):
    return build_sweep(tmp_path / "multirun", unfinished=(5,))


def test_read_sweep_finds_the_swept_keys_with_typed_values(sweep_dir):
    sweep = read_sweep(sweep_dir)
    assert sweep.params == ["algorithm.alpha", "reward.gamma"]
    assert [p.job for p in sweep.points] == ["0", "1", "2", "3", "4", "5"]
    pairs = [(p.params["algorithm.alpha"], p.params["reward.gamma"]) for p in sweep.points]
    assert pairs == [(a, g) for a in ALPHAS for g in GAMMAS]
    assert all(isinstance(a, float) for a, _ in pairs)  # from the resolved config, not the override text
    assert sweep.levels == ["1", "2", "3"]


def test_a_job_without_summary_has_no_results_and_a_note(sweep_dir):
    sweep = read_sweep(sweep_dir)
    assert sweep.points[5].results == {}
    assert sweep.points[0].results["think_ratio"] == pytest.approx(expected_think_ratio(0.001, 0.5))
    assert any("5: no summary.json" in note for note in sweep.notes)


def test_jobs_sort_numerically(tmp_path):
    for num in (10, 2, 1):
        write_job(tmp_path / str(num), [f"reward.gamma=0.{num}"], {"reward": {"gamma": num / 10}}, None)
    assert [p.job for p in read_sweep(tmp_path).points] == ["1", "2", "10"]


def test_swept_keys_are_the_overrides_that_differ():
    jobs = [
        {"experiment": "x", "a": "1", "hydra.launcher.partition": "p", "rollout.sglang.urls": "[http://n3:30000]"},
        {"experiment": "x", "a": "2", "b": "3", "rollout.sglang.urls": "[http://n7:30000]"},
    ]
    assert swept_keys(jobs) == ["a", "b"]  # engine URLs differ per job but are not swept


def test_without_differing_overrides_alpha_and_gamma_are_shown(tmp_path):
    write_job(tmp_path / "run", [], {"algorithm": {"alpha": 0.01}, "reward": {"gamma": 0.5}}, None)
    sweep = read_sweep(tmp_path)
    assert sweep.params == ["algorithm.alpha", "reward.gamma"]
    assert sweep.points[0].params == {"algorithm.alpha": 0.01, "reward.gamma": 0.5}
    assert any("no override differs" in note for note in sweep.notes)


def test_a_group_choice_is_read_from_the_override_text(tmp_path):
    for num, name in enumerate(("grpo", "degrpo")):
        write_job(tmp_path / str(num), [f"algorithm={name}"], {"algorithm": {"name": name, "alpha": 0.001}}, None)
    sweep = read_sweep(tmp_path)
    assert sweep.params == ["algorithm"]
    assert [p.params["algorithm"] for p in sweep.points] == ["grpo", "degrpo"]


def test_csv_holds_raw_numbers_and_blanks(sweep_dir):
    rows = list(csv.DictReader(io.StringIO(to_csv(read_sweep(sweep_dir)))))
    assert len(rows) == 6
    assert rows[3]["algorithm.alpha"] == "0.01" and rows[3]["reward.gamma"] == "0.8"
    assert float(rows[3]["think_ratio"]) == pytest.approx(expected_think_ratio(0.01, 0.8))
    assert float(rows[0]["start_accuracy"]) == 0.5 and float(rows[0]["always_short_accuracy"]) == 0.4
    assert "think_ratio_L3" in rows[0]
    assert rows[5]["accuracy"] == "" and rows[5]["reward.gamma"] == "0.8"


def test_markdown_shows_percentages(sweep_dir):
    lines = to_markdown(read_sweep(sweep_dir)).splitlines()
    assert lines[0].startswith("| job | algorithm.alpha | reward.gamma | accuracy | think ratio |")
    assert len(lines) == 2 + 6
    assert lines[2].startswith("| 0 | 0.001 | 0.5 | 79.9% | 64.9% |")
    assert lines[7].startswith("| 5 | 0.1 | 0.8 | - | - |")


def test_report_writes_tables_and_one_figure_per_parameter(sweep_dir):
    report = report_sweep(sweep_dir)
    names = [path.name for path in report.written]
    assert names == ["sweep_report.md", "sweep_report.csv", "sweep_algorithm.alpha.png", "sweep_reward.gamma.png"]
    assert all(path.parent == sweep_dir / "report" for path in report.written)
    for path in report.written[2:]:
        assert_png(path)
    assert len(report.finished) == 5


def test_lines_group_points_by_the_other_parameters(sweep_dir):
    sweep = read_sweep(sweep_dir)
    finished = [p for p in sweep.points if p.results]
    lines = lines_by_others(finished, ["reward.gamma"])
    assert [label for label, _ in lines] == ["gamma=0.5", "gamma=0.8"]
    assert [len(members) for _, members in lines] == [3, 2]
    assert lines_by_others(finished, [])[0][0] == ""


def test_a_parameter_with_one_finished_value_gets_a_note_not_a_figure(tmp_path):
    sweep_dir = build_sweep(tmp_path / "m", unfinished=(1, 3, 5))  # only gamma = 0.5 finished
    sweep = read_sweep(sweep_dir)
    notes: list[str] = []
    assert plot_against(sweep, "reward.gamma", tmp_path / "out", notes) is None
    assert "reward.gamma: the finished jobs hold 1 value(s)" in notes[0]
    assert plot_against(sweep, "algorithm.alpha", tmp_path / "out", notes) is not None


def test_nothing_is_written_without_a_finished_job(tmp_path):
    sweep_dir = build_sweep(tmp_path / "m", unfinished=tuple(range(6)))
    report = report_sweep(sweep_dir)
    assert report.written == [] and not (sweep_dir / "report").exists()


def test_explicit_params_and_out_dir(sweep_dir, tmp_path):
    report = report_sweep(sweep_dir, tmp_path / "figs", params=["reward.gamma"])
    assert [p.name for p in report.written] == ["sweep_report.md", "sweep_report.csv", "sweep_reward.gamma.png"]
    assert "algorithm.alpha" not in (tmp_path / "figs" / "sweep_report.md").read_text()


def test_unreadable_summary_is_a_note(sweep_dir):
    (sweep_dir / "2" / "summary.json").write_text("{not json", encoding="utf-8")
    sweep = read_sweep(sweep_dir)
    assert sweep.points[2].results == {}
    assert any("2/summary.json: not readable json" in note for note in sweep.notes)
    json.loads((sweep_dir / "0" / "summary.json").read_text())  # the others are untouched

"""plot_run draws PNGs from whatever a run folder holds and notes what it had to skip."""

from __future__ import annotations

from pathlib import Path

from synthetic_runs import assert_png, write_eval, write_jsonl

from megathink.plotting import plot_run


def test_full_run_draws_every_figure_into_plots(synthetic_run: Path) -> None:
    report = plot_run(synthetic_run)
    plots = synthetic_run / "plots"
    assert report.written == [
        plots / "think_ratio_rl.png",
        plots / "loss_rl.png",
        plots / "loss_sft.png",
        plots / "before_after_rl.png",
    ]
    for path in report.written:
        assert_png(path)
    assert report.notes == [
        f"{synthetic_run / 'rl' / 'metrics.jsonl'}: 1 malformed line(s) ignored",
        "sft: no think_ratio metrics (an RL stage logs them), no think-ratio plot",
    ]


def test_out_dir_and_eval_prefixed_think_ratios(tmp_path: Path) -> None:
    rows = [{"step": s, "eval/gsm8k/think_ratio_L1": 0.1 * s, "eval/gsm8k/accuracy_L1": 0.5} for s in (1, 2)]
    write_jsonl(tmp_path / "run" / "rl" / "metrics.jsonl", rows)
    report = plot_run(tmp_path / "run", tmp_path / "figs")
    assert report.written == [tmp_path / "figs" / "think_ratio_rl_eval_gsm8k.png"]
    assert_png(report.written[0])
    assert "rl: no loss metrics, no loss plot" in report.notes


def test_missing_inputs_skip_their_figure(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_jsonl(run / "sft" / "metrics.jsonl", [{"step": 1, "loss": 2.0}, {"step": 2, "loss": "nan"}])
    write_eval(run / "rl" / "eval" / "before.json", think=[0.9], acc=[0.5])
    report = plot_run(run)
    assert [p.name for p in report.written] == ["loss_sft.png", "before_after_rl.png"]
    for path in report.written:
        assert_png(path)
    assert "rl: no eval/after.json, the before/after plot shows one side only" in report.notes


def test_nothing_to_plot_is_an_empty_report(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "sft" / "metrics.jsonl", [{"step": 1, "mode": "short"}])
    report = plot_run(tmp_path)
    assert report.written == [] and not (tmp_path / "plots").exists()
    assert any("no metrics.jsonl with numeric metrics" in note for note in report.notes)
    assert any("no eval/before.json or eval/after.json" in note for note in report.notes)


def test_importing_megathink_plotting_does_not_import_matplotlib() -> None:
    import subprocess
    import sys

    code = "import sys, megathink.plotting, megathink.trainer.metrics; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr


def test_reports_with_hacc_draw_the_hybrid_figure(tmp_path: Path) -> None:
    """RL before/after and a `megathink eval` report carrying HAcc get one hybrid figure per folder."""
    import json

    def report(path: Path, hacc: list[float], think: list[float], oracle: list[float]) -> None:
        rows = [
            {"dataset": "toy", "level": str(lvl), "think_ratio": t, "accuracy": 0.5, "mean_tokens": 9.0, "hacc": h,
             "oracle_think_rate": o, "pass_at_k": 0.8, "k": 3}
            for lvl, h, t, o in zip((1, 2, 3), hacc, think, oracle)
        ]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"seeds": [0, 1, 2], "k": 3, "rows": rows}), encoding="utf-8")

    run = tmp_path / "run"
    report(run / "rl" / "eval" / "before.json", [0.4, 0.5, 0.9], [0.9, 0.9, 1.0], [0.1, 0.6, 1.0])
    report(run / "rl" / "eval" / "after.json", [0.9, 0.8, 1.0], [0.1, 0.5, 1.0], [0.1, 0.6, 1.0])
    report(run / "standalone" / "eval.json", [0.7, 0.7, 0.7], [0.5, 0.5, 0.5], [0.2, 0.5, 0.9])
    written = plot_run(run).written
    assert [p.name for p in written] == ["before_after_rl.png", "hybrid_rl.png", "hybrid_standalone.png"]
    for path in written:
        assert_png(path)

"""`megathink plot RUN_DIR [--out DIR]`: as a subprocess (the way users run it) and in-process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from synthetic_runs import assert_png

from megathink.launch.plot_command import main


def megathink_plot(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "megathink.launch.cli", "plot", *args]
    return subprocess.run(cmd, cwd=cwd, env=dict(os.environ), capture_output=True, text=True, timeout=300)


def test_cli_writes_and_prints_the_pngs(synthetic_run: Path) -> None:
    result = megathink_plot(str(synthetic_run), cwd=synthetic_run.parent)
    assert result.returncode == 0, result.stderr
    printed = [Path(line) for line in result.stdout.splitlines() if not line.startswith("note: ")]
    assert [p.name for p in printed] == ["think_ratio_rl.png", "loss_rl.png", "loss_sft.png", "before_after_rl.png"]
    for path in printed:
        assert path.parent == synthetic_run / "plots"
        assert_png(path)
    assert "note: sft: no think_ratio metrics" in result.stdout


def test_cli_with_nothing_to_plot_exits_2_naming_the_folder(tmp_path: Path) -> None:
    (tmp_path / "empty_run").mkdir()
    result = megathink_plot("empty_run", "--out", "figs", cwd=tmp_path)
    assert result.returncode == 2
    assert "nothing to plot under empty_run" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "figs").exists()


def test_out_option(synthetic_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(synthetic_run), "--out", str(tmp_path / "figs")]) == 0
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == [
        "before_after_rl.png",
        "loss_rl.png",
        "loss_sft.png",
        "think_ratio_rl.png",
    ]
    assert str(tmp_path / "figs" / "loss_sft.png") in capsys.readouterr().out


def test_missing_run_dir_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nope")]) == 2
    assert f"RUN_DIR {tmp_path / 'nope'} is not a folder" in capsys.readouterr().err


def test_usage_lists_plot() -> None:
    from megathink.launch.cli import usage

    assert "  plot " in usage() and "RUN_DIR [--out DIR]" in usage()


def _summary_run(root: Path, name: str, nothinking: float, start: bool = True) -> Path:
    """A run folder with only rl/summary.json, the shape the RL stage writes."""
    def policy(ratio: float) -> dict:
        rows = [{"level": lvl, "think_ratio": 1 - ratio, "nothinking_ratio": ratio, "accuracy": 0.9, "mean_tokens": 20.0}
                for lvl in (1, 2)]
        return {"per_level": rows, "accuracy": 0.9, "mean_tokens": 20.0, "think_ratio": 1 - ratio, "nothinking_ratio": ratio}

    summary = {**policy(nothinking), "start": policy(0.0) if start else None}
    run = root / name
    (run / "rl").mkdir(parents=True)
    (run / "rl" / "summary.json").write_text(__import__("json").dumps(summary))
    return run


def test_compare_draws_every_summary_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = [_summary_run(tmp_path, "delta_0.05", 0.5), _summary_run(tmp_path, "naive", 0.0, start=False)]
    (tmp_path / "no_summary").mkdir()
    assert main(["--compare", *map(str, runs), str(tmp_path / "no_summary"), "--out", str(tmp_path / "figs")]) == 0
    out = capsys.readouterr().out
    assert_png(tmp_path / "figs" / "compare.png")
    assert "no_summary: no summary.json" in out and str(tmp_path / "figs" / "compare.png") in out


def test_compare_needs_out_and_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _summary_run(tmp_path, "a", 0.5)
    assert main(["--compare", str(run)]) == 2
    assert "--compare needs --out DIR" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["--compare", str(tmp_path / "empty"), "--out", str(tmp_path / "figs")]) == 2
    assert "no RUN_DIR has a summary.json" in capsys.readouterr().err
    assert main([str(run), str(run)]) == 2
    assert "several with --compare" in capsys.readouterr().err

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

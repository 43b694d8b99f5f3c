"""The `megathink` console command, run as a user runs it (a subprocess per call)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ENV = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}


def megathink(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "megathink.launch.cli", *args]
    return subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)


def test_help_lists_commands_and_groups(tmp_path):
    result = megathink("--help", cwd=tmp_path)
    assert result.returncode == 0
    for word in ("train", "sft", "model:", "algorithm:", "experiment:", "toy_demo"):
        assert word in result.stdout


def test_command_help_lists_config_groups(tmp_path):
    result = megathink("sft", "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "== Configuration groups ==" in result.stdout
    assert "optimizer: adaptthink_rl, thinkless_rl, thinkless_sft, toy_rl, toy_sft" in result.stdout
    assert "algorithm: adaptthink, degrpo, degrpo_toy, grpo, hgpo" in result.stdout
    assert "schema" not in result.stdout  # the method configs are not options to pick


def test_unknown_command_exits_2(tmp_path):
    result = megathink("pretrain", cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown command 'pretrain'" in result.stderr


def test_out_of_range_value_exits_2_naming_the_field(tmp_path):
    result = megathink("sft", "experiment=toy_smoke", "sft.optimizer.warmup_ratio=1.5", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert result.returncode == 2
    assert "optimizer.warmup_ratio = 1.5 is invalid" in result.stderr
    assert "Traceback" not in result.stderr


def test_typo_fails_before_running(tmp_path):
    result = megathink("sft", "trainer.max_stepz=3", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert result.returncode != 0
    assert "max_stepz" in result.stderr
    assert not (tmp_path / "run" / "sft").exists()


@pytest.mark.slow
def test_sft_end_to_end_then_resume(tmp_path):
    run_dir = tmp_path / "run"
    first = megathink("sft", "experiment=toy_smoke", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    stage = run_dir / "sft"
    assert (stage / "hf" / "config.json").is_file()
    lines = (stage / "metrics.jsonl").read_text().splitlines()
    assert lines and all(json.loads(line) for line in lines)
    assert "level" in first.stdout and "short" in first.stdout
    # the metric sinks name the job after its experiment (logger.run_name, filled by the CLI)
    assert "run_name: toy_smoke" in (stage / "resolved_config.yaml").read_text()
    # The same folder again: resumes from the final checkpoint, loses nothing it wrote.
    second = megathink("sft", "experiment=toy_smoke", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert (stage / "metrics.jsonl").read_text().splitlines()[: len(lines)] == lines


@pytest.mark.slow
def test_multirun_sweep_gives_each_point_its_own_folder(tmp_path):
    sweep = tmp_path / "sweep"
    result = megathink(
        "train", "-m", "experiment=toy_smoke", "trainer.seed=0,1", f"hydra.sweep.dir={sweep}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for job in ("0", "1"):
        assert (sweep / job / "sft" / "hf" / "config.json").is_file()

"""`megathink sweep-report`: on synthetic sweeps, and on a real alpha x gamma sweep (basic launcher)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest

from plotting.synthetic_sweep import build_sweep

from megathink.launch.sweep_report_command import main

ENV = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}

TINY_RL = [
    "experiment=toy_smoke", "stages=[sft,rl]", "sft.max_steps=4", "rl.max_steps=2", "rl.prompts_per_step=4",
    "rollout.n_samples=2", "rollout.max_new_tokens=24", "rl.mini_batches=1", "rl.micro_batch_size=8",
    "algorithm.kl_coef=0", "eval.max_new_tokens=24", "logger.console=false", "logger.tensorboard=false",
]
"""The toy pipeline shrunk to seconds: SFT, then two RL steps that write summary.json."""


def test_prints_the_table_and_the_files(tmp_path, capsys):
    sweep = build_sweep(tmp_path / "multirun", unfinished=(5,))
    assert main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "| 0 | 0.001 | 0.5 | 79.9% |" in out
    assert f"{sweep / 'report' / 'sweep_algorithm.alpha.png'}" in out
    assert "note: " in out and "5: no summary.json" in out


def test_not_a_folder_exits_2(tmp_path, capsys):
    assert main([str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_no_finished_job_exits_2(tmp_path, capsys):
    sweep = build_sweep(tmp_path / "multirun", unfinished=tuple(range(6)))
    assert main([str(sweep)]) == 2
    assert "none of the 6 job folder(s)" in capsys.readouterr().err


def test_cli_entry_runs_it(tmp_path):
    sweep = build_sweep(tmp_path / "multirun")
    cmd = [sys.executable, "-m", "megathink.launch.cli", "sweep-report", str(sweep), "--out", str(tmp_path / "out")]
    result = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "sweep_reward.gamma.png").is_file()


@pytest.mark.slow
def test_real_alpha_gamma_sweep_with_the_basic_launcher(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable, "-m", "megathink.launch.cli", "train", "-m", *TINY_RL,
        "algorithm.alpha=0.001,0.1", "reward.gamma=0.5,0.8", f"hydra.sweep.dir={sweep}",
    ]
    result = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert main([str(sweep)]) == 0
    rows = list(csv.DictReader((sweep / "report" / "sweep_report.csv").open()))
    assert [(r["algorithm.alpha"], r["reward.gamma"]) for r in rows] == [
        ("0.001", "0.5"), ("0.001", "0.8"), ("0.1", "0.5"), ("0.1", "0.8"),
    ]
    assert all(r["accuracy"] != "" and r["think_ratio"] != "" and r["mean_tokens"] != "" for r in rows)

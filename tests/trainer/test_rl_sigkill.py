"""SIGKILL at any moment, then the same command again: the run resumes from the last complete
checkpoint, and on CPU its metrics equal those of a run that was never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ARGS = [
    "train", "experiment=toy_smoke", "stages=[sft,rl]",
    "rl.max_steps=6", "rl.prompts_per_step=4", "rl.mini_batches=1", "rl.micro_batch_size=16",
    "rl.optimizer.lr=1e-3", "rl.optimizer.min_lr=1e-3",
    "rollout.n_samples=4", "rollout.max_new_tokens=16", "checkpoint.save_every=1", "checkpoint.keep_last=0",
    "logger.tensorboard=false",
]
ENV = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}


def _command(run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "megathink.launch.cli", *ARGS, f"hydra.run.dir={run_dir}"]


def _rl_metrics(run_dir: Path) -> dict[int, dict]:
    rows: dict[int, dict] = {}
    for line in (run_dir / "rl" / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "reward" in row:
            rows[row["step"]] = {k: v for k, v in row.items() if k not in ("step_time", "tokens_per_s", "time") and not k.startswith("rollout/")}
    return rows


@pytest.mark.slow
def test_sigkill_then_rerun_equals_uninterrupted(tmp_path: Path) -> None:
    whole = tmp_path / "whole"
    done = subprocess.run(_command(whole), env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_command(killed), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = killed / "rl" / "checkpoints" / "step_00000003"
    deadline = time.monotonic() + 300
    while not target.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # mid-step, possibly mid-save
    proc.wait()
    assert target.exists() and not (killed / "summary.json").exists(), "the run was not interrupted mid-way"
    again = subprocess.run(_command(killed), env=ENV, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]

    assert _rl_metrics(killed) == _rl_metrics(whole)
    assert json.loads((killed / "summary.json").read_text()) == json.loads((whole / "summary.json").read_text())

"""SIGTERM / SIGUSR1 to `megathink train` (HF backend, one process): the stage checkpoints the step
it is on, stops with exit status 75 and runs neither its final evaluation nor the next stage; the
same command again resumes, and on CPU the metrics equal those of a run never interrupted.

Each signal is sent once the stage has logged its first step (metrics.jsonl is polled); the
stages are long enough (1000 SFT steps, 30 RL steps) that the signal always lands mid-stage,
and `checkpoint.save_every` is larger than the run, so the only step checkpoint is the one the
signal wrote.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from megathink.trainer.preemption import PREEMPTED_EXIT_CODE, PREEMPTED_FILE

pytestmark = pytest.mark.slow

ARGS = [
    "train", "experiment=toy_smoke", "stages=[sft,rl]", "sft.max_steps=1000",
    "rl.max_steps=30", "rl.prompts_per_step=4", "rl.mini_batches=1", "rl.micro_batch_size=16",
    "rollout.n_samples=4", "rollout.max_new_tokens=16", "checkpoint.save_every=1000", "trainer.log_every=1",
    "logger.tensorboard=false", "logger.console=false",
]
ENV = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
TIMING = ("time", "tokens_per_s", "steps_per_s", "step_time")


def _command(run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "megathink.launch.cli", *ARGS, f"hydra.run.dir={run_dir}"]


def _rows(run_dir: Path, stage: str, key: str) -> dict[int, dict]:
    """Each logged training step of `stage` (rows holding `key`) without its timings."""
    rows: dict[int, dict] = {}
    for line in (run_dir / stage / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if key in row:
            rows[row["step"]] = {k: v for k, v in row.items() if k not in TIMING and not k.startswith("rollout/")}
    return rows


def _interrupt(run_dir: Path, stage: str, sig: signal.Signals) -> tuple[subprocess.CompletedProcess, int]:
    """Run the command, send `sig` once `stage` logged its first step; (result, last logged step)."""
    proc = subprocess.Popen(_command(run_dir), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run_dir / stage / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if metrics.is_file() and '"step": 1,' in metrics.read_text():
            proc.send_signal(sig)
            break
        time.sleep(0.02)
    out, err = proc.communicate(timeout=300)
    result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    key = "loss" if stage == "sft" else "reward"
    return result, max(_rows(run_dir, stage, key))


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same command, never interrupted."""
    run_dir = tmp_path_factory.mktemp("whole")
    done = subprocess.run(_command(run_dir), env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir


def _assert_resumes_like(run_dir: Path, whole: Path) -> None:
    again = subprocess.run(_command(run_dir), env=ENV, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert not (run_dir / PREEMPTED_FILE).exists()  # cleared by the run that completed
    assert _rows(run_dir, "sft", "loss") == _rows(whole, "sft", "loss")
    assert _rows(run_dir, "rl", "reward") == _rows(whole, "rl", "reward")
    assert json.loads((run_dir / "summary.json").read_text()) == json.loads((whole / "summary.json").read_text())


def test_sigterm_in_sft_checkpoints_stops_and_resumes(tmp_path: Path, whole: Path) -> None:
    run_dir = tmp_path / "run"
    stopped, step = _interrupt(run_dir, "sft", signal.SIGTERM)
    assert stopped.returncode == PREEMPTED_EXIT_CODE, stopped.stderr[-3000:]
    assert 1 <= step < 1000
    assert f"megathink train: stage sft stopped on SIGTERM at step {step}" in stopped.stderr
    checkpoints = sorted(p.name for p in (run_dir / "sft" / "checkpoints").iterdir())
    assert checkpoints == [f"step_{step:08d}"]  # the last finished step, and nothing half-written
    assert json.loads((run_dir / "sft" / "checkpoints" / checkpoints[0] / "trainer_state.json").read_text())["step"] == step
    assert not (run_dir / "sft" / "hf").exists() and not (run_dir / "sft" / "eval").exists()  # no final eval / export
    assert not (run_dir / "rl").exists()  # the next stage did not start
    record = json.loads((run_dir / PREEMPTED_FILE).read_text())
    assert (record["stage"], record["step"], record["signal"], record["finished"]) == ("sft", step, "SIGTERM", False)
    _assert_resumes_like(run_dir, whole)


def test_sigusr1_in_rl_checkpoints_stops_and_resumes(tmp_path: Path, whole: Path) -> None:
    run_dir = tmp_path / "run"
    stopped, step = _interrupt(run_dir, "rl", signal.SIGUSR1)
    assert stopped.returncode == PREEMPTED_EXIT_CODE, stopped.stderr[-3000:]
    assert 1 <= step < 30
    assert f"stage rl stopped on SIGUSR1 at step {step}" in stopped.stderr
    assert (run_dir / "sft" / "hf").is_dir()  # SFT had finished normally
    assert sorted(p.name for p in (run_dir / "rl" / "checkpoints").iterdir()) == [f"step_{step:08d}"]
    assert not (run_dir / "rl" / "hf").exists() and not (run_dir / "rl" / "eval" / "after.json").exists()
    assert not (run_dir / "summary.json").exists()
    assert json.loads((run_dir / PREEMPTED_FILE).read_text())["step"] == step
    _assert_resumes_like(run_dir, whole)

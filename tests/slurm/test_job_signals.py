"""slurm/lib/megathink_job.sh after the trainer stopped on a signal, without a cluster (a fake
scontrol that records its calls and, on `requeue`, sends the job shell SIGTERM as SLURM does).
The whole path on a real SLURM is tests/slurm/test_slurm_jobs.py's stop-signal test."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from megathink.trainer.preemption import PREEMPTED_EXIT_CODE, PREEMPTED_FILE

REPO = Path(__file__).resolve().parents[2]
LIB = REPO / "slurm" / "lib" / "megathink_job.sh"
FAKE_SCONTROL = '#!/bin/bash\necho "$*" >> "$SCONTROL_CALLS"\n[[ "$1" == requeue ]] && kill -TERM "$JOB_SHELL"\nexit 0\n'


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "scontrol").write_text(FAKE_SCONTROL)
    (folder / "scontrol").chmod(0o755)
    return folder


def run_after_stop(tmp_path: Path, fake_bin: Path, status: int, record: bool, **env: str) -> subprocess.CompletedProcess:
    """mt_after_stop STATUS in a job shell with the library's traps, RUN_DIR holding a stop record or not."""
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    if record:
        (run_dir / PREEMPTED_FILE).write_text(json.dumps({"stage": "rl", "step": 7, "signal": "SIGUSR1"}))
    script = (
        f"set -euo pipefail\nsource {LIB}\nJOB_SHELL=$$; export JOB_SHELL\n"
        "trap mt_cleanup EXIT\ntrap mt_on_term TERM\n"
        f"mt_after_stop {status}\n"
    )
    full_env = {
        "PATH": f"{fake_bin}:{os.environ['PATH']}", "MEGATHINK_PYTHON": sys.executable, "SLURM_JOB_ID": "4242",
        "RUN_DIR": str(run_dir), "SCONTROL_CALLS": str(tmp_path / "calls"), "MEGATHINK_POLL_S": "0.1", **env,
    }
    return subprocess.run(["bash", "-c", script], env=full_env, capture_output=True, text=True, timeout=60)


def test_the_library_reads_the_file_the_trainer_writes() -> None:
    assert re.search(rf"^MT_PREEMPTED_FILE={re.escape(PREEMPTED_FILE)}\b", LIB.read_text(), re.M)


def test_a_checkpointed_stop_requeues_the_job(tmp_path: Path, fake_bin: Path) -> None:
    result = run_after_stop(tmp_path, fake_bin, 1, record=True, REQUEUE_MIN_RUNTIME_S="0")
    assert result.returncode == 143, result.stdout + result.stderr  # SLURM's SIGTERM after the requeue
    assert (tmp_path / "calls").read_text().split("\n")[0] == "requeue 4242"
    assert 'the trainer checkpointed and stopped on a signal (status 1): {"stage": "rl", "step": 7' in result.stdout
    assert "requeueing job 4242" in result.stdout and "SIGTERM (scancel, requeue" in result.stdout


def test_a_short_job_is_not_requeued_and_ends_with_75(tmp_path: Path, fake_bin: Path) -> None:
    result = run_after_stop(tmp_path, fake_bin, 1, record=True)  # REQUEUE_MIN_RUNTIME_S: 900 s by default
    assert result.returncode == PREEMPTED_EXIT_CODE, result.stdout + result.stderr
    assert not (tmp_path / "calls").exists()
    assert "the time limit is too short for a requeue to make progress; not requeueing" in result.stdout
    assert "not requeued: submit the same recipe again to resume" in result.stdout


def test_requeueing_can_be_turned_off(tmp_path: Path, fake_bin: Path) -> None:
    result = run_after_stop(tmp_path, fake_bin, 1, record=True, REQUEUE_MIN_RUNTIME_S="0", REQUEUE_ON_USR1="0")
    assert result.returncode == PREEMPTED_EXIT_CODE and not (tmp_path / "calls").exists()
    assert "not requeueing (REQUEUE_ON_USR1=0)" in result.stdout


def test_rollout_engines_ignore_sigusr1(tmp_path: Path) -> None:
    """`scancel --signal=USR1 <job>` reaches the rollout steps too: serve_node.sh and its engines
    (here a plain HTTP server, which keeps the inherited ignored disposition) keep serving."""
    import signal
    import socket
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "MEGATHINK_PYTHON": sys.executable, "ROLLOUT_ENGINE_CMD": "{python} -m http.server {port}"}
    node = subprocess.Popen(
        ["bash", str(REPO / "slurm" / "lib" / "serve_node.sh"), "model", str(port), "1", "0", str(tmp_path / "engine")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )

    def answers() -> bool:
        with socket.socket() as probe:
            probe.settimeout(0.5)
            return probe.connect_ex(("127.0.0.1", port)) == 0

    try:
        deadline = time.monotonic() + 30
        while not answers():
            assert node.poll() is None and time.monotonic() < deadline, "the engine did not listen within 30 s"
            time.sleep(0.1)
        engine = next(pid for pid in _children(node.pid))
        os.kill(node.pid, signal.SIGUSR1)
        os.kill(engine, signal.SIGUSR1)
        time.sleep(1.0)
        assert node.poll() is None and answers()
    finally:
        node.terminate()
        node.communicate(timeout=30)


def _children(parent: int) -> list[int]:
    """PIDs whose parent is `parent` (from /proc/<pid>/stat: the field after the state)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if proc.name.isdigit() and int(fields[1]) == parent:
            found.append(int(proc.name))
    return found

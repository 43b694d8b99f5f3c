"""Stop signals under torchrun (megatron backend, TP=2 on 2 gloo processes): every rank stops at
the same step with one sharded checkpoint of it, whether the signal reached all ranks (SIGTERM to
torchrun, which passes it on) or one rank only (SIGUSR1 to rank 1's worker); the run resumed
after both stops logs exactly the losses of the run that never stopped."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from megathink.trainer.preemption import PREEMPTED_FILE

pytest.importorskip("megatron.core", reason="megatron-core is not installed (pip install -e '.[megatron]')")
pytestmark = [pytest.mark.megatron, pytest.mark.slow]

RUN = ["experiment=toy_smoke", "model.num_layers=2", "logger.console=false", "trainer.log_every=1",
       "parallel=megatron", "parallel.tp=2", "sft.max_steps=200", "checkpoint.save_every=1000"]
"""200 SFT steps of ~30 ms: a signal sent after a logged step lands mid-stage."""
STOPPED = re.compile(r"megathink sft: stage sft stopped on (.+?) at step (\d+),")


def _torchrun(run_dir: Path) -> list[str]:
    from megathink.models.megatron.distributed import free_port

    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port()),
            "-m", "megathink.launch.cli", "sft", *RUN, f"hydra.run.dir={run_dir}"]


ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")


def _losses(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run_dir / "sft" / "metrics.jsonl").read_text().splitlines()]
    return {row["step"]: row["loss"] for row in rows if "loss" in row}


def _rank_worker(torchrun_pid: int, rank: int) -> int:
    """The PID of torchrun's worker process with RANK=`rank`."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (proc / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == torchrun_pid and f"RANK={rank}".encode() in environ:
            return int(proc.name)
    raise AssertionError(f"no worker with RANK={rank} under torchrun {torchrun_pid}")


def _stop_after(run_dir: Path, after_step: int, send) -> tuple[subprocess.CompletedProcess, list[tuple[str, int]]]:
    """Start the run, call `send(proc)` once it logged a step > `after_step`; (result, per-rank stop lines)."""
    proc = subprocess.Popen(_torchrun(run_dir), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    metrics = run_dir / "sft" / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if metrics.is_file() and any(step > after_step for step in _losses(run_dir)):
            send(proc)
            break
        time.sleep(0.02)
    out, _ = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out), [(m[0], int(m[1])) for m in STOPPED.findall(out)]


def _assert_checkpoints(run_dir: Path, *steps: int) -> None:
    """The stage's checkpoints are those of `steps` (the stops' own; none periodic), the newest complete."""
    checkpoints = run_dir / "sft" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == [f"step_{s:08d}" for s in steps]
    step = steps[-1]
    shards = checkpoints / f"step_{step:08d}" / "megatron"
    assert list(shards.glob("__0_*.distcp")) and list(shards.glob("__1_*.distcp"))  # both TP ranks saved
    assert json.loads((run_dir / PREEMPTED_FILE).read_text())["step"] == step


def test_both_ranks_stop_at_one_step_and_resume_exactly(tmp_path: Path) -> None:
    whole, run_dir = tmp_path / "whole", tmp_path / "run"
    done = subprocess.run(_torchrun(whole), env=ENV, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-4000:]
    want = _losses(whole)
    assert sorted(want) == list(range(1, 201))

    # SIGTERM to torchrun: it passes the signal to both workers, which checkpoint one step and exit 75.
    first, stops = _stop_after(run_dir, 0, lambda proc: proc.send_signal(signal.SIGTERM))
    assert first.returncode != 0, first.stdout[-4000:]
    assert len(stops) == 2 and stops[0][1] == stops[1][1], first.stdout[-4000:]
    step = stops[0][1]
    assert 1 <= step < 200 and max(_losses(run_dir)) == step
    _assert_checkpoints(run_dir, step)
    assert not (run_dir / "sft" / "hf").exists()

    # SIGUSR1 to rank 1's worker only: the all-reduce at the step boundary stops rank 0 too.
    second, stops = _stop_after(run_dir, step, lambda proc: os.kill(_rank_worker(proc.pid, 1), signal.SIGUSR1))
    assert second.returncode != 0, second.stdout[-4000:]
    assert f"resumed from {run_dir}/sft/checkpoints/step_{step:08d} at step {step}" in second.stdout
    assert sorted(stops) == sorted([("SIGUSR1", stops[0][1]), ("a stop signal to another rank", stops[0][1])]), stops
    earlier, step = step, stops[0][1]
    assert max(_losses(run_dir)) == step < 200
    _assert_checkpoints(run_dir, earlier, step)

    last = subprocess.run(_torchrun(run_dir), env=ENV, capture_output=True, text=True, timeout=400)
    assert last.returncode == 0, last.stderr[-4000:]
    got = _losses(run_dir)
    assert sorted(got) == sorted(want)
    for s, loss in want.items():
        assert got[s] == pytest.approx(loss, rel=1e-6, abs=0.0), s
    assert not (run_dir / PREEMPTED_FILE).exists() and (run_dir / "sft" / "hf" / "config.json").is_file()

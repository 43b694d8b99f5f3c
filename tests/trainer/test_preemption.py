"""megathink.trainer.preemption without training: the handlers only record the signal and are
restored afterwards, the stop decision is collective over ranks (2 gloo processes, the signal
sent to rank 1 only), and the pipeline stops before the next stage, writing preempted.json."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from megathink.config import RunConfig
from megathink.trainer import pipeline, preemption
from megathink.trainer.preemption import PREEMPTED_EXIT_CODE, PREEMPTED_FILE, StagePreempted


def test_signals_only_set_a_flag_while_the_block_runs() -> None:
    previous = signal.getsignal(signal.SIGUSR1)
    with preemption.signal_handlers():
        assert not preemption.stop_requested()
        os.kill(os.getpid(), signal.SIGUSR1)  # would end the process with the default handler
        assert preemption.stop_requested() and preemption.received_signal_name() == "SIGUSR1"
        os.kill(os.getpid(), signal.SIGTERM)
        assert preemption.received_signal_name() == "SIGTERM"
    assert signal.getsignal(signal.SIGUSR1) is previous
    with preemption.signal_handlers():  # a new block starts without the old flag
        assert not preemption.stop_requested()
    with preemption.signal_handlers(enabled=False):
        assert signal.getsignal(signal.SIGTERM) is not preemption._record_signal


def test_the_error_names_stage_step_checkpoint_and_exit_code(tmp_path: Path) -> None:
    stop = StagePreempted("rl", 7, tmp_path / "checkpoints", signal_name="SIGTERM")
    assert stop.exit_code == PREEMPTED_EXIT_CODE == 75
    assert str(stop).startswith(f"stage rl stopped on SIGTERM at step 7, checkpoint {tmp_path}/checkpoints/step_00000007;")
    assert "run the same command again to resume" in str(stop)
    assert stop.record()["checkpoint"] == str(tmp_path / "checkpoints" / "step_00000007")


WORKER = textwrap.dedent(
    """
    import os, signal, sys
    import torch.distributed as dist
    from megathink.trainer import preemption

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    with preemption.signal_handlers():
        first = preemption.stop_requested()       # no signal yet: every rank says no
        if rank == 1:
            os.kill(os.getpid(), signal.SIGUSR1)  # only rank 1 hears it
        second = preemption.stop_requested()      # the all-reduce tells rank 0 too
    print(f"rank {rank}: {first} {second} {preemption.received_signal_name()}", flush=True)
    dist.destroy_process_group()
    """
)


def test_the_stop_decision_is_collective(tmp_path: Path) -> None:
    from megathink.models.megatron.distributed import free_port

    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "WORLD_SIZE": "2",
           "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER], env={**env, "RANK": str(rank)}, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for rank in range(2)
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]
    assert outputs[0][0].strip() == "rank 0: False True a stop signal to another rank"
    assert outputs[1][0].strip() == "rank 1: False True SIGUSR1"


@dataclass
class _Finished:
    final_step: int


def test_a_signal_after_a_stage_stops_the_pipeline_before_the_next(tmp_path: Path, monkeypatch) -> None:
    ran: list[str] = []

    def fake_stage(cfg: RunConfig, stage: str, out: Path) -> _Finished:
        ran.append(stage)
        os.kill(os.getpid(), signal.SIGTERM)  # e.g. during the stage's final evaluation
        return _Finished(final_step=4)

    monkeypatch.setattr(pipeline, "_run_stage", fake_stage)
    (tmp_path / PREEMPTED_FILE).write_text("{}")  # left by an earlier stop: cleared at start
    with pytest.raises(StagePreempted, match="stage sft finished \\(step 4\\); stopped on SIGTERM before the next stage"):
        pipeline.run_pipeline(RunConfig(output_dir=str(tmp_path), stages=["sft", "rl"]))
    assert ran == ["sft"]
    record = json.loads((tmp_path / PREEMPTED_FILE).read_text())
    assert (record["stage"], record["step"], record["finished"], record["checkpoint"]) == ("sft", 4, True, None)
    assert signal.getsignal(signal.SIGTERM) is not preemption._record_signal  # restored


def test_a_signal_in_the_last_stage_after_its_last_step_is_no_stop(tmp_path: Path, monkeypatch) -> None:
    def fake_stage(cfg: RunConfig, stage: str, out: Path) -> _Finished:
        os.kill(os.getpid(), signal.SIGUSR1)
        return _Finished(final_step=2)

    monkeypatch.setattr(pipeline, "_run_stage", fake_stage)
    results = pipeline.run_pipeline(RunConfig(output_dir=str(tmp_path), stages=["sft"]))
    assert results["sft"].final_step == 2 and not (tmp_path / PREEMPTED_FILE).exists()

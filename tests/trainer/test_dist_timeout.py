"""`trainer.dist_timeout_minutes` is the deadline of a torchrun job's collectives: `init_parallel` builds
the process group with it, and a rank waiting for rank 0's evaluation (`ranks.wait_for_main`) past it
stops with an error naming the field; so does a rank waiting for rank 0's rollouts
(`ranks.on_main_then_broadcast`). Two gloo processes; rank 0 plays a slow evaluation or rollout."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = [pytest.mark.megatron, pytest.mark.slow]

WORKER = textwrap.dedent(
    """
    import os, sys, time
    import torch.distributed as dist
    from megathink.config import RunConfig, TrainerConfig
    from megathink.errors import CollectiveTimeoutError
    from megathink.models.megatron.distributed import init_parallel
    from megathink.trainer.ranks import wait_for_main

    cfg = RunConfig(trainer=TrainerConfig(dist_timeout_minutes=float(sys.argv[1])))
    evaluation_s = float(sys.argv[2])
    minutes = cfg.trainer.dist_timeout_minutes
    info = init_parallel(1, 1, timeout_minutes=minutes)
    if info.rank == 0:
        time.sleep(evaluation_s)  # the evaluation rank 0 runs alone
        wait_for_main("the test's evaluation", minutes)
        if minutes > 0.1:
            dist.barrier()
        else:
            time.sleep(evaluation_s)  # rank 1 sits in a plain barrier meanwhile
        print("rank 0: done", flush=True)
    else:
        started = time.monotonic()
        try:
            wait_for_main("the test's evaluation", minutes)
            print(f"rank 1: waited {time.monotonic() - started:.1f} s", flush=True)
        except CollectiveTimeoutError as err:
            print(f"rank 1: gave up after {time.monotonic() - started:.1f} s: {err}", flush=True)
        started = time.monotonic()
        try:
            dist.barrier()
            print("rank 1: barrier passed", flush=True)
        except Exception as err:  # gloo's own deadline: the process group's timeout
            print(f"rank 1: barrier failed after {time.monotonic() - started:.1f} s ({type(err).__name__})", flush=True)
    os._exit(0)
    """
)


def _run(minutes: float, evaluation_s: float) -> tuple[str, str]:
    from megathink.models.megatron.distributed import free_port

    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "WORLD_SIZE": "2",
           "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(minutes), str(evaluation_s)], env={**env, "RANK": str(rank)},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for rank in range(2)
    ]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]
    return outputs[0][0].strip(), outputs[1][0].strip()


def test_a_short_timeout_fires_naming_the_field() -> None:
    rank0, rank1 = _run(0.05, 9.0)  # 3 s deadline, a 9 s evaluation
    assert rank0 == "rank 0: done"
    waited, barrier = rank1.splitlines()
    seconds = float(waited.split("after ")[1].split(" s")[0])
    assert 2.5 <= seconds < 8.5, waited
    assert "trainer.dist_timeout_minutes = 0.05 minutes for the test's evaluation on rank 0" in waited
    assert "raise trainer.dist_timeout_minutes" in waited
    seconds = float(barrier.split("after ")[1].split(" s")[0])
    assert barrier.startswith("rank 1: barrier failed") and 2.5 <= seconds < 8.5, barrier  # init_parallel's group


def test_a_long_enough_timeout_waits_for_rank_0() -> None:
    rank0, rank1 = _run(0.5, 4.0)  # 30 s deadline, a 4 s evaluation
    assert rank0 == "rank 0: done"
    waited, barrier = rank1.splitlines()
    assert waited.startswith("rank 1: waited") and float(waited.split()[3]) >= 3.0 and barrier == "rank 1: barrier passed"


BROADCAST_WORKER = textwrap.dedent(
    """
    import os, sys, time
    from megathink.errors import CollectiveTimeoutError
    from megathink.models.megatron.distributed import init_parallel
    from megathink.trainer.ranks import on_main_then_broadcast

    minutes, rollout_s = float(sys.argv[1]), float(sys.argv[2])
    info = init_parallel(1, 1, timeout_minutes=minutes)

    def rollout():
        time.sleep(rollout_s)  # rank 0 generates and grades alone
        return {"rewards": [1.0, 0.0]}

    started = time.monotonic()
    try:
        got = on_main_then_broadcast(rollout, "step 3's rollouts and grading", minutes, "fewer rollout.n_samples")
        print(f"rank {info.rank}: got {got['rewards']} after {time.monotonic() - started:.1f} s", flush=True)
    except CollectiveTimeoutError as err:
        print(f"rank {info.rank}: gave up after {time.monotonic() - started:.1f} s: {err}", flush=True)
    except Exception as err:  # rank 0, once rank 1 gave up: the broadcast's own (gloo) deadline
        print(f"rank {info.rank}: broadcast failed ({type(err).__name__})", flush=True)
    os._exit(0)
    """
)


def test_a_slow_rollout_broadcast_names_the_field() -> None:
    """(A rollout within the deadline reaches every rank in test_megatron_stages' RL runs.)"""
    from megathink.models.megatron.distributed import free_port

    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "WORLD_SIZE": "2",
           "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", BROADCAST_WORKER, "0.05", "7.0"],  # 3 s deadline, a 7 s rollout
                              env={**env, "RANK": str(rank)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for rank in range(2)]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]
    rank1 = outputs[1][0].strip()
    assert rank1.startswith("rank 1: gave up"), rank1
    seconds = float(rank1.split("after ")[1].split(" s")[0])
    assert 2.5 <= seconds < 6.5, rank1
    assert "trainer.dist_timeout_minutes = 0.05 minutes for step 3's rollouts and grading on rank 0" in rank1
    assert "make it shorter (fewer rollout.n_samples)" in rank1

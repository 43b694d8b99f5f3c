"""`megathink sft` / `megathink train` with parallel.backend=megatron under torchrun, as users run them.

Real megatron-core on 2 gloo processes: the CLI's SFT loss curve equals the HF backend's run of
the same config (TP=2), a run saved at TP=2 resumes at PP=2 (sharded weights *and* AdamW state
reshard) and continues exactly the uninterrupted trajectory, an interleaved run (PP=2 x VPP=2)
matches too and resumes without interleaving, checkpoints of the distributed optimizer (ZeRO-1)
and of the plain one resume each other, and the RL stage (rank 0 samples
from its HF copy, all ranks update on packed rows) logs the same first step as the HF backend
and writes its reports, checkpoints and HF folder once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("megatron.core", reason="megatron-core is not installed (pip install -e '.[megatron]')")
pytestmark = [pytest.mark.megatron, pytest.mark.slow]

SMOKE = ["experiment=toy_smoke", "model.num_layers=2", "logger.console=false", "trainer.log_every=1"]
MEGATRON = ["parallel=megatron"]


def megathink(command: str, out: Path, *overrides: str, nproc: int = 1) -> subprocess.CompletedProcess:
    from megathink.models.megatron.distributed import free_port

    if nproc > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
                    "--master-port", str(free_port()), "-m", "megathink.launch.cli"]
    else:
        launcher = [sys.executable, "-m", "megathink.launch.cli"]
    cmd = [*launcher, command, *SMOKE, f"hydra.run.dir={out}", *overrides]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=env)
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return result


def losses(path: Path, key: str = "loss") -> dict[int, float]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {row["step"]: row[key] for row in rows if key in row}


@pytest.fixture(scope="module")
def hf_losses(tmp_path_factory: pytest.TempPathFactory) -> dict[int, float]:
    """The SMOKE SFT run's losses on the HF backend (one process): the reference of several tests."""
    out = tmp_path_factory.mktemp("hf_reference")
    megathink("sft", out)
    return losses(out / "sft" / "metrics.jsonl")


def test_sft_under_torchrun_matches_hf_and_resumes_at_another_layout(tmp_path: Path, hf_losses) -> None:
    straight, parts = tmp_path / "tp2", tmp_path / "parts"
    megathink("sft", straight, *MEGATRON, "parallel.tp=2", nproc=2)
    want, got = hf_losses, losses(straight / "sft" / "metrics.jsonl")
    assert sorted(got) == [1, 2, 3, 4, 5, 6]
    for step, loss in want.items():
        assert got[step] == pytest.approx(loss, rel=1e-5), step
    step_dir = straight / "sft" / "checkpoints" / "step_00000006"
    assert (step_dir / "megatron" / "megathink_model.json").is_file() and (step_dir / "scheduler.pt").is_file()
    assert (straight / "sft" / "hf" / "config.json").is_file() and (straight / "sft" / "eval" / "final.json").is_file()
    assert not list((straight / "sft" / "checkpoints").glob(".tmp-*"))
    exported = tmp_path / "exported"  # a training step checkpoint converts like any megatron checkpoint
    cmd = [sys.executable, "-m", "megathink.launch.cli", "convert", "megatron-to-hf", "--ckpt", str(step_dir), "--out", str(exported)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert result.returncode == 0, result.stderr[-4000:]
    from safetensors.torch import load_file

    final, converted = load_file(straight / "sft" / "hf" / "model.safetensors"), load_file(exported / "model.safetensors")
    assert set(converted) <= set(final) and "model.embed_tokens.weight" in converted
    for name, tensor in converted.items():
        assert torch.equal(tensor, final[name]), name

    # Stopped at TP=2 after its first step (the time limit; it checkpoints), resumed at PP=2:
    # the same losses as the run that never stopped.
    megathink("sft", parts, *MEGATRON, "parallel.tp=2", "trainer.max_time_minutes=0.0001", nproc=2)
    assert sorted(losses(parts / "sft" / "metrics.jsonl")) == [1]
    resumed = megathink("sft", parts, *MEGATRON, "parallel.pp=2", nproc=2)
    assert "resumed from" in resumed.stderr + resumed.stdout
    second = losses(parts / "sft" / "metrics.jsonl")
    for step in range(2, 7):
        assert second[step] == pytest.approx(got[step], rel=1e-5), step


def test_interleaved_sft_matches_hf_and_resumes_without_interleaving(tmp_path: Path) -> None:
    """parallel.pp=2 x parallel.vpp=2 (two model chunks per rank, megatron's interleaved 1F1B) on a
    4-layer model: stopped after one step, its checkpoint (chunks saved with global layer numbers,
    AdamW state included) resumes at TP=2, and every step's loss is the HF backend's."""
    four = ["model.num_layers=4"]
    hf, parts = tmp_path / "hf", tmp_path / "parts"
    megathink("sft", hf, *four)
    want = losses(hf / "sft" / "metrics.jsonl")
    started = megathink("sft", parts, *four, *MEGATRON, "parallel.pp=2", "parallel.vpp=2", "trainer.max_time_minutes=0.0001", nproc=2)
    log = started.stderr + started.stdout
    assert log.count("built random qwen2 model") == 1  # rank 0 alone builds the full model ...
    assert not (parts / "sft" / ".megatron-start").exists()  # ... and removes the copy the ranks read
    first = losses(parts / "sft" / "metrics.jsonl")
    assert sorted(first) == [1] and first[1] == pytest.approx(want[1], rel=1e-5)
    meta = json.loads((parts / "sft" / "checkpoints" / "step_00000001" / "megatron" / "megathink_model.json").read_text())
    assert (meta["saved_pp"], meta["saved_vpp"]) == (2, 2)
    megathink("sft", parts, *four, *MEGATRON, "parallel.tp=2", nproc=2)
    got = losses(parts / "sft" / "metrics.jsonl")
    assert sorted(got) == sorted(want)
    for step, loss in want.items():
        assert got[step] == pytest.approx(loss, rel=1e-5), step


def test_distributed_optimizer_checkpoints_cross_with_the_plain_one(tmp_path: Path, hf_losses) -> None:
    """parallel.distributed_optimizer (ZeRO-1 over 2 data-parallel replicas, each holding half the
    AdamW state) saves its owned state as the main copy: the run goes ZeRO over dp=2 (step 1) ->
    context parallel CP=2 (step 2: every row split over both ranks, plain AdamW) -> ZeRO over the
    two cp ranks (steps 3-6), resuming each time, and every loss is the HF backend's."""
    run, want = tmp_path / "run", hf_losses
    zero = [*MEGATRON, "parallel.distributed_optimizer=true"]
    stop = "trainer.max_time_minutes=0.0001"
    started = megathink("sft", run, *zero, stop, nproc=2)
    assert "ZeRO-1" in started.stderr + started.stdout
    split = megathink("sft", run, *MEGATRON, "parallel.cp=2", stop, nproc=2)
    assert "cp 2" in split.stderr + split.stdout
    over_cp = megathink("sft", run, *zero, "parallel.cp=2", nproc=2)
    assert "ZeRO-1" in over_cp.stderr + over_cp.stdout
    got = losses(run / "sft" / "metrics.jsonl")
    assert sorted(got) == sorted(want)
    for step, loss in want.items():
        assert got[step] == pytest.approx(loss, rel=1e-5), step


def test_bf16_run_resumes_from_its_fp32_master_weights(tmp_path: Path) -> None:
    """model.dtype=bfloat16 at TP=2: the optimizer steps fp32 masters (trainer/master_weights.py)
    and the step checkpoint saves them, so a run stopped after step 1 and resumed logs exactly
    the losses of the run that never stopped (resuming from the bf16-rounded weights would not)."""
    bf16 = [*MEGATRON, "parallel.tp=2", "model.dtype=bfloat16"]
    straight, parts = tmp_path / "straight", tmp_path / "parts"
    started = megathink("sft", straight, *bf16, nproc=2)
    assert "fp32 master weights" in started.stderr + started.stdout
    megathink("sft", parts, *bf16, "trainer.max_time_minutes=0.0001", nproc=2)
    meta = json.loads((parts / "sft" / "checkpoints" / "step_00000001" / "megatron" / "megathink_model.json").read_text())
    assert meta["optimizer"]["master_weights"] is True
    megathink("sft", parts, *bf16, nproc=2)
    want, got = losses(straight / "sft" / "metrics.jsonl"), losses(parts / "sft" / "metrics.jsonl")
    assert sorted(got) == sorted(want) == [1, 2, 3, 4, 5, 6]
    for step, loss in want.items():
        assert got[step] == pytest.approx(loss, rel=1e-7, abs=0.0), step
    # ZeRO-1 over dp=2 in bf16: megatron's local norms are built in fp32; every parameter must
    # have the model's dtype, or ZeroRedundancyOptimizer refuses the mixed types
    zero = megathink("sft", tmp_path / "zero", *MEGATRON, "model.dtype=bfloat16", "parallel.distributed_optimizer=true",
                     "sft.max_steps=2", nproc=2)
    assert "ZeRO-1" in zero.stderr + zero.stdout and sorted(losses(tmp_path / "zero" / "sft" / "metrics.jsonl")) == [1, 2]


def test_rl_stage_under_torchrun_matches_hf_first_step(tmp_path: Path) -> None:
    rl = ["stages=[sft,rl]", "sft.max_steps=3", "rl.max_steps=2", "rl.prompts_per_step=4", "rollout.n_samples=4",
          "rollout.max_new_tokens=24", "checkpoint.save_every=0", "eval.seeds=[0]"]
    hf, mc = tmp_path / "hf", tmp_path / "mc"
    megathink("train", hf, *rl)
    megathink("train", mc, *rl, *MEGATRON, "parallel.tp=2", "parallel.pack_sequences=true", nproc=2)
    def first_step(run: Path) -> dict:
        rows = [json.loads(line) for line in (run / "rl" / "metrics.jsonl").read_text().splitlines()]
        return next(row for row in rows if "reward" in row)

    want, got = first_step(hf), first_step(mc)
    assert want["step"] == got["step"] == 1
    for key in ("reward", "think_ratio", "accuracy", "resp_loss", "ctrl_loss", "grad_norm", "clip_frac"):
        assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-6), key
    for name in ("summary.json", "rl/summary.json", "rl/eval/after.json", "rl/hf/config.json"):
        assert (mc / name).is_file(), name
    assert (mc / "rl" / "checkpoints" / "step_00000002" / "megatron").is_dir()

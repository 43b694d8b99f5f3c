"""`megathink train ... rollout=sglang_local` (two `megathink serve` processes, disk weight sync
after every update) trains exactly like the in-process engine for the same seeds."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ENV = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}
RUN = [
    "experiment=toy_smoke", "stages=[sft,rl]", "sft.max_steps=4", "rl.max_steps=2", "rl.prompts_per_step=4",
    "rollout.n_samples=2", "rollout.max_new_tokens=16", "rl.mini_batches=1", "rl.micro_batch_size=8",
    "algorithm.kl_coef=0", "eval.max_new_tokens=16", "checkpoint.save_every=0", "logger.tensorboard=false",
]
TIMING = re.compile(r"(_time|_s|tokens_per_s|^time)$|^rollout/")


def _train(run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "megathink.launch.cli", "train", *RUN, *extra, f"hydra.run.dir={run_dir}"]
    return subprocess.run(cmd, cwd=run_dir.parent, env=ENV, capture_output=True, text=True, timeout=600)


def _rl_rows(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "rl" / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if not TIMING.search(k)} for row in rows]


@pytest.mark.slow
def test_sglang_local_engine_trains_like_the_local_engine(tmp_path: Path) -> None:
    local = _train(tmp_path / "local")
    assert local.returncode == 0, local.stderr[-3000:]
    served = _train(tmp_path / "served", "rollout=sglang_local")
    assert served.returncode == 0, served.stderr[-3000:]

    want, got = _rl_rows(tmp_path / "local"), _rl_rows(tmp_path / "served")
    assert [r.get("step") for r in got] == [r.get("step") for r in want] and any("reward" in r for r in got)
    for g, w in zip(got, want):
        assert g.keys() == w.keys()
        for key in w:
            assert g[key] == pytest.approx(w[key], rel=1e-4, abs=1e-6), key
    for name in ("summary.json", "rl/eval/after.json"):
        assert json.loads((tmp_path / "served" / name).read_text()) == json.loads((tmp_path / "local" / name).read_text())

    rl = tmp_path / "served" / "rl"
    raw = [json.loads(line) for line in (rl / "metrics.jsonl").read_text().splitlines()]
    assert any("rollout/weight_sync_s" in row for row in raw) and any("rollout/engine1/tokens_per_s" in row for row in raw)
    assert sorted(p.name for p in (rl / "rollout_weights").iterdir())[-1] == "v00000002"  # one sync per RL step
    for log in sorted((rl / "rollout_servers").glob("engine*.log")):
        port = int(re.search(r"--port (\d+)", log.read_text()).group(1))
        with socket.socket() as sock:  # the servers are gone with the run
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"{log.name}: port {port} still open"

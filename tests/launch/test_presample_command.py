"""`megathink presample` as a user runs it (a subprocess per call) on a tiny random reference model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from megathink.config import ModelConfig, TokenizerConfig
from megathink.data.tokenizer import load_tokenizer
from megathink.models.hf_backend import build_hf_backend

ENV = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}


def megathink(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "megathink.launch.cli", *args]
    return subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny model with the toy tokenizer, saved as a HF directory."""
    bundle = load_tokenizer(TokenizerConfig())
    model = ModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64)
    backend = build_hf_backend(model, bundle, device="cpu", seed=0)
    return backend.save_hf(tmp_path_factory.mktemp("ref") / "hf", bundle.tokenizer)


def test_help_lists_presample(tmp_path: Path) -> None:
    result = megathink("--help", cwd=tmp_path)
    assert result.returncode == 0 and "presample " in result.stdout and "Rbar_ref" in result.stdout


def test_presample_end_to_end_and_resume(reference: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "presample"
    args = [
        "presample", "experiment=toy_smoke", f"model.path={reference}", "tokenizer.kind=pretrained",
        "tokenizer.template=adaptthink", "algorithm.presample_k=2", "data.toy_train_size=4",
        "rollout.max_new_tokens=8", f"hydra.run.dir={run_dir}",
    ]
    first = megathink(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "mean Rbar_ref = " in first.stdout and "4 sampled now, 0 already done" in first.stdout
    lines = [json.loads(line) for line in (run_dir / "reference_accuracy.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and all(line["k"] == 2 and line["rbar"] == line["correct"] / 2 for line in lines)
    summary = json.loads((run_dir / "presample_summary.json").read_text())
    assert summary["prompts"] == 4 and summary["sampling"]["temperature"] == 0.6  # rollout/default.yaml
    again = megathink(*args, cwd=tmp_path)
    assert again.returncode == 0 and "0 sampled now, 4 already done" in again.stdout, again.stderr[-3000:]


@pytest.mark.parametrize(
    "override, expected",
    [
        ("model.path=no/such/dir", "megathink presample: error: model.path = 'no/such/dir' is not a directory"),
        ("algorithm.presample_k=0", "megathink presample: error: algorithm.presample_k = 0 is invalid"),
    ],
)
def test_bad_input_exits_2_with_one_line(reference: Path, tmp_path: Path, override: str, expected: str) -> None:
    result = megathink(
        "presample", "experiment=toy_smoke", f"model.path={reference}", "tokenizer.kind=pretrained",
        f"hydra.run.dir={tmp_path / 'run'}", override, cwd=tmp_path,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), result.stderr
    assert not (tmp_path / "run" / "reference_accuracy.jsonl").exists()

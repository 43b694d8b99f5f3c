"""`megathink eval` as a user runs it (a subprocess per call) on a tiny SFT run's outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from megathink.launch.schema import register_schema, to_run_config

ENV = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}


def megathink(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "megathink.launch.cli", *args]
    return subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def stage(tiny_sft_stage: Path) -> Path:
    """A finished tiny SFT stage on toy levels 1-2 (hf/, checkpoints/step_00000002 and 4; shared, read-only)."""
    return tiny_sft_stage


def test_eval_config_composes_with_the_papers_temperature() -> None:
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    register_schema()
    try:
        with initialize_config_module(config_module="megathink.hydra_conf", version_base=None):
            overrides = [
                "output_dir=out", "eval.model_dir=run/sft/hf", "eval.datasets=[d/gsm8k.jsonl,d/math500.parquet]"
            ]
            cfg = to_run_config(compose(config_name="eval", overrides=overrides))
    finally:
        GlobalHydra.instance().clear()
    assert cfg.eval.model_dir == "run/sft/hf" and cfg.eval.temperature == 0.6 and cfg.eval.seeds == [0]
    assert cfg.eval.datasets == ["d/gsm8k.jsonl", "d/math500.parquet"] and cfg.eval.top_p == 1.0


def test_help_lists_eval(tmp_path: Path) -> None:
    result = megathink("--help", cwd=tmp_path)
    assert result.returncode == 0 and "eval " in result.stdout and "think ratio" in result.stdout


def test_eval_end_to_end_on_a_step_checkpoint(stage: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "eval"
    result = megathink(
        "eval", "experiment=toy_smoke", f"eval.model_dir={stage / 'checkpoints' / 'step_00000002'}",
        "eval.seeds=[0,1]", "eval.max_new_tokens=8", f"hydra.run.dir={run_dir}", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout[result.stdout.index("dataset"):].splitlines()
    assert table[0].split()[:4] == ["dataset", "level", "n", "acc"]
    assert [line.split()[:3] for line in table[1:4]] == [["toy", "1", "8"], ["toy", "2", "8"], ["toy", "all", "16"]]
    report = json.loads((run_dir / "eval.json").read_text())
    assert report["seeds"] == [0, 1] and report["sampling"]["temperature"] == 0.6  # eval.yaml's default
    assert [(r["dataset"], r["level"]) for r in report["rows"]] == [("toy", "1"), ("toy", "2"), ("toy", "all")]


@pytest.mark.parametrize(
    "override, expected",
    [
        ("eval.model_dir=no/such/dir", "megathink eval: error: eval.model_dir = 'no/such/dir' is not a directory"),
        ("eval.seeds=[]", "megathink eval: error: eval.seeds = [] is invalid"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, override: str, expected: str) -> None:
    result = megathink("eval", "experiment=toy_smoke", f"hydra.run.dir={tmp_path / 'run'}", override, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), result.stderr
    assert not (tmp_path / "run" / "eval.json").exists()

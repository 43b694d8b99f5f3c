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
    # the adaptive-thinking evaluation: k = 2 samples per prompt, natural and each mode forced, HAcc
    assert report["k"] == 2 and "HAcc" in table[0] and "pass@2" in table[0]
    for row in report["rows"]:
        assert row["k"] == 2 and row["prompts"] == row["n"] // 2
        for key in ("avg_at_k", "pass_at_k", "forced_short_accuracy", "forced_think_accuracy", "forced_short_pass_at_k",
                    "forced_think_pass_at_k", "forced_short_mode_rate", "forced_think_mode_rate", "oracle_think_rate",
                    "hacc", "think_ratio", "short_ratio", "mean_tokens"):
            assert 0.0 <= row[key] <= (1.0 if key != "mean_tokens" else 9.0), key  # response tokens: <= 8 + 1
        assert row["forced_short_mode_rate"] == row["forced_think_mode_rate"] == 1.0  # a forced control token
        assert row["avg_at_k"] == pytest.approx(row["accuracy"]) and row["pass_at_k"] >= row["avg_at_k"]
    assert [(r["level"], r["n"], r["k"]) for r in report["forced"]["toy"]] == [("1", 4, 2), ("2", 4, 2), ("all", 8, 2)]


def test_eval_on_launched_megathink_serve_engines_equals_in_process(stage: Path, tmp_path: Path) -> None:
    """`rollout=sglang_local`: the same evaluation through a `megathink serve` engine process."""
    common = ("eval", "experiment=toy_smoke", f"eval.model_dir={stage / 'hf'}", "eval.seeds=[0,1]", "eval.max_new_tokens=8")
    local = megathink(*common, f"hydra.run.dir={tmp_path / 'local'}", cwd=tmp_path)
    assert local.returncode == 0, local.stderr[-3000:]
    served = megathink(*common, "rollout=sglang_local", "rollout.sglang.num_engines=1",
                       f"hydra.run.dir={tmp_path / 'served'}", cwd=tmp_path)
    assert served.returncode == 0, served.stderr[-3000:]
    want, got = (json.loads((tmp_path / d / "eval.json").read_text()) for d in ("local", "served"))
    assert got["rows"] == want["rows"] and got["forced"] == want["forced"] and got["k"] == 2
    assert (tmp_path / "served" / "rollout_servers" / "engine0.log").is_file()
    assert not (tmp_path / "served" / "rollout_weights").exists()  # the engine served the HF folder itself


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

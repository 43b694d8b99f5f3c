"""`megathink check`: the cluster experiment with a stand-in model (config.json + tokenizer, no
weights) passes in seconds; a layout the heads do not divide, a bad value, a missing data file
or column fail naming what to fix; `train` runs the same checks before loading anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from megathink_fixtures.r1_tokenizer import build_r1_style_tokenizer_dir, r1_reserved_token_id

QWEN2_7B = dict(
    model_type="qwen2", architectures=["Qwen2ForCausalLM"], hidden_act="silu", rope_theta=10000.0, rms_norm_eps=1e-6,
    torch_dtype="bfloat16", use_sliding_window=False, max_position_embeddings=131072, hidden_size=3584,
    num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4, intermediate_size=18944, vocab_size=152064,
    tie_word_embeddings=False,
)


@pytest.fixture
def cluster(tmp_path: Path) -> dict[str, str]:
    """MEGATHINK_RUNS / MEGATHINK_DATA for thinkless_degrpo_7b: its starting folder with a 7B
    config.json and an R1-style tokenizer (no weights), and its two prompt files."""
    start = tmp_path / "runs" / "thinkless_sft_7b" / "sft" / "hf"
    build_r1_style_tokenizer_dir(str(start))
    (start / "config.json").write_text(json.dumps(QWEN2_7B), encoding="utf-8")
    data = tmp_path / "data"
    data.mkdir()
    for name in ("deepscaler.jsonl", "math500.jsonl"):
        (data / name).write_text(json.dumps({"problem": "1+1?", "answer": "2"}) + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "PYTHONPATH")}
    env.update(MEGATHINK_RUNS=str(tmp_path / "runs"), MEGATHINK_DATA=str(data), PYTHONWARNINGS="ignore")
    return env


def check(env: dict[str, str], cwd: Path, *overrides: str) -> subprocess.CompletedProcess:
    args = ["experiment=thinkless_degrpo_7b", f"tokenizer.short_token_id={r1_reserved_token_id()}",
            f"hydra.run.dir={cwd / 'run'}", *overrides]
    cmd = [sys.executable, "-m", "megathink.launch.cli", "check", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_7b_recipe_passes_in_seconds(cluster, tmp_path):
    start = time.monotonic()
    result = check(cluster, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert time.monotonic() - start < 30
    out = result.stdout
    for name in ("model", "parallel", "tokenizer", "data", "output", "memory"):
        assert f"[ok]   {name}" in out, out
    assert "world 16 = tp 4" in out and "28 heads" in out and "all checks passed" in out


def test_a_tp_the_heads_do_not_divide_fails_naming_the_field(cluster, tmp_path):
    result = check(cluster, tmp_path, "parallel.tp=8")
    assert result.returncode == 1
    assert "[FAIL] parallel" in result.stdout and "parallel.tp = 8" in result.stdout and "28 attention heads" in result.stdout


def test_a_bad_value_exits_2_naming_the_field(cluster, tmp_path):
    result = check(cluster, tmp_path, "rl.micro_batch_size=0")
    assert result.returncode == 2 and "rl.micro_batch_size" in result.stderr and "Traceback" not in result.stderr


def test_missing_data_and_columns_fail_the_data_check(cluster, tmp_path):
    missing = check(cluster, tmp_path, f"data.eval_path={tmp_path / 'nope.jsonl'}")
    assert missing.returncode == 1 and "[FAIL] data" in missing.stdout and "nope.jsonl" in missing.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "1+1?", "answer": "2"}) + "\n", encoding="utf-8")
    columns = check(cluster, tmp_path, f"data.train_path={bad}")
    assert columns.returncode == 1 and "data.problem_key" in columns.stdout


def test_train_refuses_before_loading_anything(cluster, tmp_path):
    """The same checks at train's start: a layout the heads do not divide exits 2 before any
    model is built (the stand-in folder has no weights: loading them would fail differently)."""
    cmd = [sys.executable, "-m", "megathink.launch.cli", "train", "experiment=thinkless_degrpo_7b",
           f"tokenizer.short_token_id={r1_reserved_token_id()}", f"hydra.run.dir={tmp_path / 'run'}",
           "parallel.tp=8", "trainer.device=cpu"]
    result = subprocess.run(cmd, cwd=tmp_path, env=cluster, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "pre-flight check 'parallel' failed" in result.stderr
    assert not (tmp_path / "run" / "rl").exists()


def test_a_mistyped_group_option_lists_the_available_ones(tmp_path):
    for args in (["experiment=degrpo_7b"], ["algorithm=dgrpo"], ["optimizer@rl.optimizer=thinkless"]):
        cmd = [sys.executable, "-m", "megathink.launch.cli", "train", *args, f"hydra.run.dir={tmp_path / 'run'}"]
        result = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, args
        group = args[0].split("=")[0].split("@")[0]
        assert f"{args[0].split('=')[1]!r} is not an option of the {group} group" in result.stderr, result.stderr
        assert "thinkless_degrpo_7b" in result.stderr if group == "experiment" else True
        assert not (tmp_path / "run").exists()

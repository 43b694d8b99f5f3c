"""The RL stage end to end on a tiny model: outputs, metrics, exact resume, corrupt checkpoints.

Everything here really runs (local engine, toy verifier, DeGRPO/GRPO updates) on CPU.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from megathink.config import (
    CheckpointConfig,
    DataConfig,
    EvalConfig,
    LoggerConfig,
    ModelConfig,
    OptimizerConfig,
    RewardConfig,
    RLConfig,
    RolloutConfig,
    RunConfig,
    SFTConfig,
    TokenizerConfig,
    TrainerConfig,
)
from megathink.methods.adaptthink import AdaptThinkConfig
from megathink.methods.degrpo import DeGRPOConfig
from megathink.methods.grpo import GRPOConfig
from megathink.plotting.leaderboard import collect, table_rows
from megathink.trainer.pipeline import run_pipeline
from megathink.trainer.rl import run_rl

SUMMARY_KEYS = {
    "per_level", "accuracy", "mean_tokens", "think_ratio",
    "always_think_accuracy", "always_think_mean_tokens", "always_short_accuracy",
}


def _cfg(out: Path, **overrides: object) -> RunConfig:
    sections: dict[str, object] = dict(
        output_dir=str(out),
        stages=["sft", "rl"],
        model=ModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64),
        data=DataConfig(levels=[1, 2], toy_train_size=64, toy_eval_per_level=3, max_seq_len=64),
        trainer=TrainerConfig(device="cpu", num_threads=1, log_every=1),
        sft=SFTConfig(max_steps=4, micro_batch_size=4, optimizer=OptimizerConfig(lr=3e-3, min_lr=3e-4)),
        rl=RLConfig(
            max_steps=4, prompts_per_step=4, mini_batches=2, micro_batch_size=8,
            optimizer=OptimizerConfig(lr=1e-3, min_lr=1e-3, schedule="constant", warmup_ratio=0.0),
        ),
        algorithm=DeGRPOConfig(alpha=0.5, kl_coef=1e-3, entropy_coef=1e-3),
        rollout=RolloutConfig(n_samples=4, max_new_tokens=16, temperature=1.0),
        eval=EvalConfig(max_new_tokens=16),
        checkpoint=CheckpointConfig(save_every=1, keep_last=0),
        logger=LoggerConfig(progress_bar=False, console=False, tensorboard=False),
    )
    sections.update(overrides)
    return RunConfig(**sections)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def sft_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SFT-warmed model as a HF directory, shared by the RL tests."""
    out = tmp_path_factory.mktemp("sft_run")
    run_pipeline(_cfg(out, stages=["sft"]))
    return out / "sft" / "hf"


def _rl_cfg(out: Path, sft_dir: Path, **overrides: object) -> RunConfig:
    overrides.setdefault("tokenizer", TokenizerConfig(kind="pretrained"))
    return _cfg(out, stages=["rl"], model=ModelConfig(path=str(sft_dir)), **overrides)


def _metric_lines(path: Path) -> dict[int, dict]:
    """Last logged metrics per step (a resumed run may log a step twice), without timings."""
    by_step: dict[int, dict] = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if "reward" in row:
            by_step[row["step"]] = {k: v for k, v in row.items() if k not in ("step_time", "tokens_per_s", "time") and not k.startswith("rollout/")}
    return by_step


def test_sft_then_rl_writes_everything(tmp_path: Path) -> None:
    results = run_pipeline(_cfg(tmp_path))
    rl = tmp_path / "rl"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert SUMMARY_KEYS <= summary.keys()
    assert [row["level"] for row in summary["per_level"]] == [1, 2]
    for row in summary["per_level"]:
        assert 0.0 <= row["think_ratio"] <= 1.0 and 0.0 <= row["accuracy"] <= 1.0
    for name in ("before.json", "after.json", "forced_after.json"):
        assert (rl / "eval" / name).is_file()
    assert (rl / "hf" / "config.json").is_file() and (rl / "checkpoints" / "step_00000004").is_dir()
    rows = _metric_lines(rl / "metrics.jsonl")
    assert sorted(rows) == [1, 2, 3, 4]
    for key in ("reward", "think_ratio", "think_ratio_L1", "accuracy_L2", "clip_frac", "kl", "entropy",
                "grad_norm", "ctrl_loss", "resp_loss", "logprob_diff"):
        assert key in rows[4], key
    # The trainer recomputes the rollout log-probs at the rollout temperature: they must agree.
    assert max(row["logprob_diff"] for row in rows.values()) < 1e-4
    assert results["rl"].final_step == 4
    # `megathink leaderboard` reads the summary as the RL stage writes it: no column left empty.
    run = tmp_path / "board" / "degrpo" / "seed_0"
    run.mkdir(parents=True)
    shutil.copy(tmp_path / "summary.json", run / "summary.json")
    header, (row,) = table_rows(collect(tmp_path / "board"))
    assert "HAcc %" in header and "-" not in row, dict(zip(header, row))


def test_rl_learns_something_and_changes_weights(tmp_path: Path, sft_dir: Path) -> None:
    from safetensors.torch import load_file

    run_rl(_rl_cfg(tmp_path, sft_dir), tmp_path)
    before = load_file(str(sft_dir / "model.safetensors"))
    after = load_file(str(tmp_path / "hf" / "model.safetensors"))
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_resume_matches_an_uninterrupted_run(tmp_path: Path, sft_dir: Path) -> None:
    whole = tmp_path / "whole"
    run_rl(_rl_cfg(whole, sft_dir), whole)
    parts = tmp_path / "parts"
    first = _rl_cfg(parts, sft_dir, rl=RLConfig(**{**_rl_cfg(parts, sft_dir).rl.__dict__, "max_steps": 2}))
    run_rl(first, parts)
    run_rl(_rl_cfg(parts, sft_dir), parts)
    assert _metric_lines(parts / "metrics.jsonl") == _metric_lines(whole / "metrics.jsonl")


def test_resume_with_stateful_reward_shaping_matches_an_uninterrupted_run(
    tmp_path: Path, sft_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HAPO's per-prompt history is checkpointed: stopped after step 2 and resumed, the run logs the
    uninterrupted run's metrics (a lost history would give other rewards from step 3). AdaptThink
    forces each response's opener, so every response has a mode; the 4-step SFT model never
    answers right, so the toy verifier is replaced by a grader that accepts every response
    with a mode, which gives HAPO correct lengths to remember."""
    from megathink.data.rl_prompts import rl_prompt_split
    from megathink.data.types import prompt_id
    from megathink.evaluation.reference_accuracy import ReferenceAccuracy, append_rows
    from megathink.trainer import rl as rl_module

    monkeypatch.setattr(rl_module, "task_grader", lambda *a, **k: lambda texts, modes, refs: [True] * len(texts))
    data = DataConfig(**{**_cfg(tmp_path).data.__dict__, "toy_rl_prompts": 4})  # every step revisits them
    rbar = tmp_path / "rbar.jsonl"
    train, _ = rl_prompt_split(data)
    append_rows(rbar, [ReferenceAccuracy(prompt_id(r.problem), 4, 2) for r in {r.problem: r for r in train}.values()])
    common = dict(
        algorithm=AdaptThinkConfig(reference_accuracy_path=str(rbar)),
        tokenizer=TokenizerConfig(kind="pretrained", template="adaptthink"),
        reward=RewardConfig(hapo_coef=0.5, kimi_length_coef=0.1),
        data=data,
    )
    whole = tmp_path / "whole"
    run_rl(_rl_cfg(whole, sft_dir, **common), whole)
    parts = tmp_path / "parts"
    short = RLConfig(**{**_rl_cfg(parts, sft_dir).rl.__dict__, "max_steps": 2})
    run_rl(_rl_cfg(parts, sft_dir, rl=short, **common), parts)
    state = json.loads((parts / "checkpoints" / "step_00000002" / "trainer_state.json").read_text())
    assert state["shaping"]["hapo"]["shortest"]  # the history is in the checkpoint
    run_rl(_rl_cfg(parts, sft_dir, **common), parts)
    want, got = _metric_lines(whole / "metrics.jsonl"), _metric_lines(parts / "metrics.jsonl")
    assert want[4]["shaping/hapo"] != 0.0 and got == want


def test_both_mode_groups_train_through_the_loop(tmp_path: Path, sft_dir: Path) -> None:
    """algorithm=hgpo runs in the unchanged loop: both modes forced in every group, the control
    token trained from the between-mode advantages (ctrl_loss logged), the weights move."""
    from safetensors.torch import load_file

    from megathink.methods.hgpo import HGPOConfig

    result = run_rl(_rl_cfg(tmp_path, sft_dir, algorithm=HGPOConfig(margin=0.1, kl_coef=0.0, entropy_coef=0.0)), tmp_path)
    rows = _metric_lines(tmp_path / "metrics.jsonl")
    assert sorted(rows) == [1, 2, 3, 4] and result.final_step == 4
    assert all(row["think_ratio"] == 0.5 for row in rows.values())  # 2 of 4 forced think in every group
    assert "ctrl_loss" in rows[4] and "ctrl_ratio" in rows[4]
    before, after = load_file(str(sft_dir / "model.safetensors")), load_file(str(tmp_path / "hf" / "model.safetensors"))
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_corrupt_newest_checkpoint_falls_back_to_the_previous(tmp_path: Path, sft_dir: Path, caplog) -> None:
    cfg = _rl_cfg(tmp_path, sft_dir, rl=RLConfig(**{**_rl_cfg(tmp_path, sft_dir).rl.__dict__, "max_steps": 2}))
    run_rl(cfg, tmp_path)
    newest = tmp_path / "checkpoints" / "step_00000002" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[:100])  # truncated by a crash
    with caplog.at_level("WARNING"):
        result = run_rl(_rl_cfg(tmp_path, sft_dir), tmp_path)
    assert "step_00000002" in caplog.text and "unreadable" in caplog.text
    assert result.final_step == 4 and result.history  # steps 2..4 were re-run from step 1


def test_grpo_runs_and_zero_advantage_groups_can_be_filtered(tmp_path: Path, sft_dir: Path) -> None:
    base = _rl_cfg(tmp_path, sft_dir)
    cfg = _rl_cfg(
        tmp_path, sft_dir,
        algorithm=GRPOConfig(agg="seq_mean_token_mean", kl_coef=0.0, entropy_coef=0.0),
        rl=RLConfig(**{**base.rl.__dict__, "max_steps": 2, "filter_zero_advantage": True}),
    )
    result = run_rl(cfg, tmp_path)
    assert result.final_step == 2


def _adaptthink_cfg(out: Path, **overrides: object) -> RunConfig:
    sections: dict[str, object] = dict(
        stages=["sft", "presample", "rl"],
        tokenizer=TokenizerConfig(template="adaptthink"),
        data=DataConfig(levels=[1, 2], toy_train_size=64, toy_rl_prompts=8, toy_eval_per_level=3, max_seq_len=64,
                        long_prefix="Al"),
        algorithm=AdaptThinkConfig(kl_coef=0.0, entropy_coef=0.0, presample_k=2, thinking_opener="Al",
            nothinking_max_new_tokens=6, thinking_max_new_tokens=12,
        ),
    )
    sections.update(overrides)
    return _cfg(out, **sections)


def test_adaptthink_sft_presample_rl_pipeline(tmp_path: Path) -> None:
    """The AdaptThink recipe end to end: thinking warm-up, Rbar_ref of the 8 RL prompts, RL."""
    run_pipeline(_adaptthink_cfg(tmp_path))
    reference = [json.loads(line) for line in (tmp_path / "reference_accuracy.jsonl").read_text().splitlines()]
    assert len(reference) == 8 and all(row["k"] == 2 for row in reference)
    rows = _metric_lines(tmp_path / "rl" / "metrics.jsonl")
    assert sorted(rows) == [1, 2, 3, 4]
    for key in ("nothinking_prob", "nothinking_rising", "advantage_mean", "accuracy_short", "accuracy_think",
                "clip_frac", "ratio_mean"):
        assert key in rows[4], key
    assert all(row["think_ratio"] == 0.5 for row in rows.values())  # half of every group forced each way
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["start"] is not None and {"nothinking_ratio", "think_ratio"} <= summary["per_level"][0].keys()
    assert (tmp_path / "rl" / "eval" / "forced_after.json").is_file()


def test_adaptthink_refuses_to_start_without_rbar_ref(tmp_path: Path, sft_dir: Path) -> None:
    from megathink.errors import ConfigError

    cfg = _adaptthink_cfg(
        tmp_path, stages=["rl"], model=ModelConfig(path=str(sft_dir)),
        tokenizer=TokenizerConfig(kind="pretrained", template="adaptthink"),
    )
    with pytest.raises(ConfigError, match=r"reference_accuracy_path = .* does not exist, so Rbar_ref for 8 of 8"):
        run_rl(cfg, tmp_path / "rl")
    assert not (tmp_path / "rl" / "checkpoints").exists()

"""The SFT stage's evaluations on `megathink serve` engines (equal to the local engine's), and a final
evaluation that fails: hf/ is already written, the failure is recorded, the stage ends and RL starts
from hf/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import pytest
import torch
from megathink_fixtures.rollout_servers import CPU_SERVE

from megathink.config import (
    CheckpointConfig,
    DataConfig,
    EvalConfig,
    LoggerConfig,
    ModelConfig,
    OptimizerConfig,
    RLConfig,
    RolloutConfig,
    RunConfig,
    SFTConfig,
    TrainerConfig,
)
from megathink.config.rollout import SGLangConfig
from megathink.rollout.server_launcher import free_port
from megathink.trainer.rl import run_rl
from megathink.trainer.sft import run_sft

TINY = ModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64)


def _cfg(out: Path, rollout: Optional[RolloutConfig] = None, **overrides: object) -> RunConfig:
    sections: dict[str, object] = dict(
        output_dir=str(out),
        model=TINY,
        data=DataConfig(levels=[1, 2], toy_train_size=16, toy_eval_per_level=3, max_seq_len=64),
        trainer=TrainerConfig(device="cpu", num_threads=1),
        sft=SFTConfig(max_steps=4, micro_batch_size=4, eval_every=2, optimizer=OptimizerConfig(lr=3e-3, min_lr=3e-4)),
        checkpoint=CheckpointConfig(save_every=0, save_hf=True),
        rollout=rollout or RolloutConfig(),
        eval=EvalConfig(max_new_tokens=8, temperature=1.0, seeds=[0, 1], batch_size=8),
        logger=LoggerConfig(console=False, progress_bar=False, tensorboard=False),
    )
    sections.update(overrides)
    return RunConfig(**sections)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_sft_evaluations_on_launched_engines_equal_the_local_engine(tmp_path: Path) -> None:
    local = run_sft(_cfg(tmp_path / "local"), tmp_path / "local")
    engines = RolloutConfig(engine="sglang", batch_size=8, sglang=SGLangConfig(
        launch_command=CPU_SERVE, num_engines=1, base_port=0, health_timeout_s=120.0, sequences_per_request=8,
    ))
    served = run_sft(_cfg(tmp_path / "served", engines), tmp_path / "served")
    assert served.eval_error is None and served.eval_rows == local.eval_rows and served.eval_rows[-1].k == 2
    for name in ("step_00000002.json", "final.json"):
        assert (tmp_path / "served" / "eval" / name).read_text() == (tmp_path / "local" / "eval" / name).read_text()
    policy = {p: json.loads((tmp_path / p / "eval" / "final_policy.json").read_text()) for p in ("local", "served")}
    assert policy["served"]["rows"] == policy["local"]["rows"] and policy["served"]["rows"][-1]["hacc"] is not None
    # step 2 ran on weights written by the stage (v0); the final evaluation synced the trained weights (v1)
    assert sorted(p.name for p in (tmp_path / "served" / "rollout_weights").iterdir()) == ["v00000000", "v00000001"]


def test_a_failed_final_evaluation_keeps_the_model_and_the_next_stage_starts(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    unreachable = RolloutConfig(engine="sglang", sglang=SGLangConfig(urls=[dead], health_timeout_s=0.5))
    out = tmp_path / "run"
    cfg = _cfg(out, unreachable, sft=SFTConfig(max_steps=3, micro_batch_size=4, optimizer=OptimizerConfig(lr=3e-3)))
    result = run_sft(cfg, out / "sft")  # no exception: the stage ends normally

    hf = out / "sft" / "hf"
    assert result.hf_dir == hf and (hf / "config.json").is_file() and (hf / "model.safetensors").is_file()
    assert result.eval_rows == [] and dead in (result.eval_error or "")
    record = json.loads((out / "sft" / "eval" / "final_error.json").read_text())
    assert record["evaluation"] == "final" and dead in record["error"] and record["model_dir"] == str(hf)
    assert record["rerun"] == f"megathink eval eval.model_dir={hf}"
    assert not (out / "sft" / "eval" / "final.json").exists()

    rl_cfg = _cfg(out, stages=["sft", "rl"], rl=RLConfig(max_steps=1, prompts_per_step=2, micro_batch_size=4),
                  rollout=RolloutConfig(n_samples=2, max_new_tokens=8, batch_size=8))
    rl = run_rl(rl_cfg, out / "rl", init_dir=hf)  # what the pipeline's RL stage does next
    assert rl.final_step == 1 and (out / "rl" / "hf" / "config.json").is_file()

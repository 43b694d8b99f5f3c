"""End-to-end SFT warm-up on a tiny random Qwen2 over the toy task: learning, outputs, resume, limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import megathink.trainer.policy as policy_module
from megathink.config import (
    CheckpointConfig,
    DataConfig,
    EvalConfig,
    LoggerConfig,
    ModelConfig,
    OptimizerConfig,
    RunConfig,
    SFTConfig,
    TrainerConfig,
)
from megathink.trainer.checkpoint import list_checkpoints
from megathink.trainer.sft import run_sft


def _cfg(out: Path, *, steps: int = 40, eval_per_level: int = 0, **overrides: object) -> RunConfig:
    sections: dict[str, object] = dict(
        output_dir=str(out),
        model=ModelConfig(hidden_size=64, num_layers=1, num_heads=4, num_kv_heads=2, intermediate_size=128),
        data=DataConfig(levels=[1, 2], toy_train_size=96, toy_eval_per_level=eval_per_level, max_seq_len=64),
        trainer=TrainerConfig(log_every=1, device="cpu", num_threads=1),
        sft=SFTConfig(
            max_steps=steps,
            micro_batch_size=8,
            optimizer=OptimizerConfig(lr=3e-3, min_lr=3e-4, warmup_ratio=0.05, weight_decay=0.01),
        ),
        checkpoint=CheckpointConfig(save_every=20, keep_last=2, save_hf=False),
        eval=EvalConfig(max_new_tokens=24, batch_size=64),
        logger=LoggerConfig(progress_bar=False, console=False),
    )
    sections.update(overrides)
    return RunConfig(**sections)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """run_sft applies trainer.num_threads process-wide; one thread keeps these tiny runs fast
    even when other processes compete for the cores."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _logged_losses(path: Path) -> list[float]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [row["loss"] for row in rows if "loss" in row]


def test_sft_learns_and_writes_its_outputs(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = _cfg(out, eval_per_level=4, checkpoint=CheckpointConfig(save_every=20, keep_last=1, save_hf=True))
    result = run_sft(cfg, out)
    assert result.final_step == 40 and not result.stopped_early and result.resumed_from is None
    losses = _logged_losses(out / "metrics.jsonl")
    assert len(losses) == 40
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.7 * first, (first, last)
    assert (out / "resolved_config.yaml").is_file()
    assert "toy_train_size: 96" in (out / "resolved_config.yaml").read_text()
    assert [p.name for p in list_checkpoints(out / "checkpoints")] == ["step_00000040"]  # keep_last=1
    assert result.checkpoint_dir == out / "checkpoints" / "step_00000040"
    assert result.hf_dir == out / "hf" and (out / "hf" / "config.json").is_file()
    rows = json.loads((out / "eval" / "final.json").read_text())
    assert [r["level"] for r in rows] == ["1", "2", "all"] and rows[-1]["n"] == 8
    assert [r.level for r in result.eval_rows] == ["1", "2", "all"]
    first_row = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert {"loss", "loss_short", "loss_think", "lr", "grad_norm", "tokens_per_s", "steps_per_s"} <= set(first_row)


def test_resume_continues_the_same_trajectory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    straight = run_sft(_cfg(tmp_path / "a"), tmp_path / "a")

    class Killed(Exception):
        pass

    real_save = policy_module.save_checkpoint

    def save_then_die(root: Path, step: int, **kwargs: object) -> Path:
        path = real_save(root, step, **kwargs)
        if step == 20:
            raise Killed()
        return path

    out = tmp_path / "b"
    monkeypatch.setattr(policy_module, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        run_sft(_cfg(out), out)
    monkeypatch.setattr(policy_module, "save_checkpoint", real_save)
    resumed = run_sft(_cfg(out), out)
    assert resumed.resumed_from == out / "checkpoints" / "step_00000020"
    assert [s for s, _ in resumed.losses] == list(range(21, 41))
    first_half = _logged_losses(out / "metrics.jsonl")[:20]
    together = first_half + [loss for _, loss in resumed.losses]
    torch.testing.assert_close(torch.tensor(together), torch.tensor([l for _, l in straight.losses]), rtol=1e-6, atol=1e-7)
    lrs = [json.loads(line)["lr"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    straight_lrs = [json.loads(line)["lr"] for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert lrs == straight_lrs  # metrics.jsonl was appended to, and the schedule continued
    again = run_sft(_cfg(tmp_path / "a"), tmp_path / "a")  # already finished: nothing to train
    assert again.final_step == 40 and again.losses == [] and again.resumed_from == again.checkpoint_dir


def test_resume_never_refuses_and_keeps_everything(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_sft(_cfg(out, steps=2, checkpoint=CheckpointConfig(save_every=1, keep_last=0, save_hf=False)), out)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    never = _cfg(out, steps=4, checkpoint=CheckpointConfig(resume="never", save_hf=False))
    with pytest.raises(FileExistsError, match="checkpoint.resume = 'never'"):
        run_sft(never, out)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_max_time_stops_early_with_a_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cfg = _cfg(out, steps=40, trainer=TrainerConfig(device="cpu", num_threads=1, max_time_minutes=1e-5))
    result = run_sft(cfg, out)
    assert result.stopped_early and result.final_step == 1
    assert [p.name for p in list_checkpoints(out / "checkpoints")] == ["step_00000001"]
    state = json.loads((out / "checkpoints" / "step_00000001" / "trainer_state.json").read_text())
    assert state["step"] == 1 and state["tokens_seen"] > 0


def test_nothing_left_after_length_filter_is_a_clear_error(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, data=DataConfig(levels=[2], toy_train_size=16, toy_eval_per_level=0, max_seq_len=8))
    with pytest.raises(ValueError, match="data.max_seq_len"):
        run_sft(cfg, tmp_path / "run")

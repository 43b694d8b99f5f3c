"""Step checkpoints: atomic directories, pruning, round trips, resume policies."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from megathink.config import CheckpointConfig, OptimizerConfig
from megathink.trainer.checkpoint import (
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    resolve_resume,
    save_checkpoint,
)
from megathink.trainer.lr_schedule import build_scheduler
from megathink.trainer.optim import build_adamw


def _parts(seed: int = 0) -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Embedding(11, 4), torch.nn.Linear(4, 11))
    model[1].weight = model[0].weight  # tied, like an LM head
    cfg = OptimizerConfig(lr=1e-2, min_lr=1e-3)
    opt = build_adamw(model.named_parameters(), cfg)
    return model, opt, build_scheduler(opt, cfg, 10)


def _train(model: torch.nn.Module, opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LambdaLR) -> None:
    loss = model(torch.tensor([1, 2, 3])).pow(2).mean()
    loss.backward()
    opt.step()
    sched.step()
    opt.zero_grad()


def _save(root: Path, step: int, parts: tuple, **extra: object) -> Path:
    model, opt, sched = parts
    return save_checkpoint(
        root, step, model=model, optimizer=opt, scheduler=sched,
        data_state={"epoch": 1, "position": 8}, trainer_state={"tokens_seen": 42}, **extra,
    )


def test_round_trip_restores_everything(tmp_path: Path) -> None:
    parts = _parts(0)
    _train(*parts)
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    path = _save(tmp_path, 1, parts)
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    assert sorted(p.name for p in path.iterdir()) == [
        "data_state.json", "model.safetensors", "optimizer.pt", "rng.pt", "trainer_state.json",
    ]
    fresh = _parts(1)
    loaded = load_checkpoint(path, model=fresh[0], optimizer=fresh[1], scheduler=fresh[2])
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected
    assert loaded.data_state == {"epoch": 1, "position": 8}
    assert loaded.trainer_state == {"tokens_seen": 42, "step": 1}
    for a, b in zip(parts[0].state_dict().values(), fresh[0].state_dict().values()):
        torch.testing.assert_close(a, b)
    assert fresh[0][1].weight is fresh[0][0].weight  # still tied
    assert fresh[2].last_epoch == 1
    _train(*parts)
    _train(*fresh)  # same optimizer moments -> same next update
    torch.testing.assert_close(parts[0][0].weight, fresh[0][0].weight)


def test_leftover_temp_and_incomplete_dirs_are_ignored(tmp_path: Path) -> None:
    parts = _parts()
    _save(tmp_path, 5, parts)
    (tmp_path / ".tmp-step_00000009-1234").mkdir()  # a save killed halfway
    (tmp_path / ".tmp-step_00000009-1234" / "model.safetensors").write_bytes(b"partial")
    (tmp_path / "step_00000010").mkdir()  # not ours / incomplete: no trainer_state.json
    (tmp_path / "notes").mkdir()
    assert latest_checkpoint(tmp_path) == tmp_path / "step_00000005"
    assert latest_checkpoint(tmp_path / "missing") is None
    assert resolve_resume(CheckpointConfig(resume="auto"), tmp_path) == tmp_path / "step_00000005"


def test_keep_last_prunes_oldest_and_resaving_a_step_replaces_it(tmp_path: Path) -> None:
    parts = _parts()
    for step in (1, 2, 3, 4):
        _save(tmp_path, step, parts, keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000003", "step_00000004"]
    _save(tmp_path, 4, parts, keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000003", "step_00000004"]
    for step in (5, 6):
        _save(tmp_path, step, parts, keep_last=0)
    assert len(list_checkpoints(tmp_path)) == 4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_resume_policies(tmp_path: Path) -> None:
    assert resolve_resume(CheckpointConfig(resume="auto"), tmp_path) is None
    assert resolve_resume(CheckpointConfig(resume="never"), tmp_path) is None
    path = _save(tmp_path, 3, _parts())
    with pytest.raises(FileExistsError, match="checkpoint.resume = 'never'"):
        resolve_resume(CheckpointConfig(resume="never"), tmp_path)
    assert path.is_dir()
    assert resolve_resume(CheckpointConfig(resume=str(path)), tmp_path / "elsewhere") == path
    with pytest.raises(FileNotFoundError, match="checkpoint.resume"):
        resolve_resume(CheckpointConfig(resume=str(tmp_path / "nope")), tmp_path)


def test_unserialisable_data_state_is_a_clear_error(tmp_path: Path) -> None:
    model, opt, sched = _parts()
    with pytest.raises(TypeError, match="json-serialisable"):
        save_checkpoint(tmp_path, 1, model=model, optimizer=opt, scheduler=sched, data_state={"x": object()}, trainer_state={})
    assert list_checkpoints(tmp_path) == [] and not list(tmp_path.iterdir())  # the temp dir is gone too

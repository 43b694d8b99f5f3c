"""Atomic, resumable step checkpoints under `<out>/checkpoints/step_00000100/`.

A checkpoint directory holds:

    model.safetensors     model weights (tied embeddings stored once)
    optimizer.pt          {"optimizer": AdamW state, "scheduler": LambdaLR state}
    (megatron backend instead: megatron/ = the sharded weights + AdamW state, resharding on
    load, see models/megatron/dist_checkpoint.py; scheduler.pt = the LambdaLR state)
    rng.pt                python, numpy, torch (and CUDA) generator states
    data_state.json       the SFT batch iterator's state (position in the shuffled epochs)
    trainer_state.json    step, tokens seen, elapsed seconds, ...

Everything is written into a hidden temporary sibling (`.tmp-step_00000100-<pid>`) that is
renamed into place with `os.replace`, so a run killed mid-save leaves no half checkpoint under
a `step_*` name; `latest_checkpoint` only ever looks at complete `step_*` directories.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors.torch import load_model, save_model

from megathink.errors import DataError, ExistingOutputError, MissingPathError
from megathink.config.checkpoint import CheckpointConfig
from megathink.run_layout import CHECKPOINTS_DIR, MEGATRON_STATE, STEP_WEIGHTS
from megathink.trainer.rng import capture_rng_state, restore_rng_state

log = logging.getLogger(__name__)

TRAINER_STATE = "trainer_state.json"
_STEP_DIR = re.compile(r"^step_(\d{8,})$")


@dataclass
class LoadedCheckpoint:
    """What a resumed loop needs beyond the restored model/optimizer/scheduler/RNG."""

    path: Path
    data_state: dict[str, Any]
    trainer_state: dict[str, Any]


def checkpoint_root(out_dir: Path) -> Path:
    return Path(out_dir) / CHECKPOINTS_DIR


def step_dir_name(step: int) -> str:
    return f"step_{step:08d}"


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoint directories under `root`, oldest step first (temp dirs ignored)."""
    if not Path(root).is_dir():
        return []
    found = []
    for child in Path(root).iterdir():
        match = _STEP_DIR.match(child.name)
        if match and child.is_dir() and (child / TRAINER_STATE).is_file():
            found.append((int(match.group(1)), child))
    return [path for _, path in sorted(found)]


def latest_checkpoint(root: Path) -> Optional[Path]:
    found = list_checkpoints(root)
    return found[-1] if found else None


def save_checkpoint(
    root: Path,
    step: int,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    data_state: dict[str, Any],
    trainer_state: dict[str, Any],
    keep_last: int = 0,
) -> Path:
    """Write checkpoint `step` atomically, then prune to the newest `keep_last` (0 keeps all)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_dir_name(step)
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        save_model(model, str(tmp / STEP_WEIGHTS))
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "optimizer.pt")
        write_step_files(tmp, step, data_state=data_state, trainer_state=trainer_state)
        publish_checkpoint(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    prune_checkpoints(root, keep_last)
    return final


def write_step_files(tmp: Path, step: int, *, data_state: dict[str, Any], trainer_state: dict[str, Any]) -> None:
    """The backend-independent part of a step checkpoint: RNG states, data and trainer state."""
    torch.save(capture_rng_state(), tmp / "rng.pt")
    _write_json(tmp / "data_state.json", data_state, "data iterator state")
    _write_json(tmp / TRAINER_STATE, {**trainer_state, "step": step}, "trainer state")


def publish_checkpoint(tmp: Path, final: Path) -> None:
    """Rename the finished temporary folder into place (replacing the same step saved again)."""
    if final.exists():  # the same step saved again (e.g. the end of a run that just saved it)
        stale = final.with_name(f".old-{final.name}-{os.getpid()}")
        os.replace(final, stale)
        shutil.rmtree(stale, ignore_errors=True)
    os.replace(tmp, final)


def read_step_files(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Restore the RNG states of a step checkpoint; return its (data state, trainer state)."""
    restore_rng_state(torch.load(path / "rng.pt", weights_only=True))
    data_state = json.loads((path / "data_state.json").read_text(encoding="utf-8"))
    trainer_state = json.loads((path / TRAINER_STATE).read_text(encoding="utf-8"))
    return data_state, trainer_state


def prune_checkpoints(root: Path, keep_last: int) -> list[Path]:
    """Delete all but the newest `keep_last` step checkpoints (0 keeps all); return the deleted ones."""
    found = list_checkpoints(root)
    doomed = found[:-keep_last] if keep_last > 0 else []
    for path in doomed:
        shutil.rmtree(path)
    return doomed


def load_checkpoint(
    path: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> LoadedCheckpoint:
    """Restore model, optimizer, scheduler and RNG states in place; return the data and trainer states."""
    path = Path(path)
    if not (path / STEP_WEIGHTS).is_file() and (path / MEGATRON_STATE).is_dir():
        raise DataError(
            f"checkpoint {path} was written by the megatron backend: resume it with parallel.backend=megatron "
            "under torchrun, or export it with `megathink convert megatron-to-hf` and start from that."
        )
    device = next(model.parameters()).device
    load_model(model, str(path / STEP_WEIGHTS), device=str(device))
    states = torch.load(path / "optimizer.pt", map_location=device, weights_only=True)
    optimizer.load_state_dict(states["optimizer"])
    scheduler.load_state_dict(states["scheduler"])
    data_state, trainer_state = read_step_files(path)
    return LoadedCheckpoint(path=path, data_state=data_state, trainer_state=trainer_state)


def restore_checkpoint(
    resume_from: Optional[Path],
    root: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> Optional[LoadedCheckpoint]:
    """Load `resume_from` (from `resolve_resume`); None starts fresh.

    When it is one of this run's own step checkpoints (`checkpoint.resume=auto`) and cannot be
    read (a truncated file, a disk error), the failure is reported and the next older
    checkpoint is tried; an explicit path given by the user is never silently replaced.
    """
    if resume_from is None:
        return None
    own = Path(resume_from).parent == Path(root)
    candidates = [c for c in reversed(list_checkpoints(root)) if c.name <= Path(resume_from).name] if own else []
    candidates = candidates or [Path(resume_from)]
    for index, path in enumerate(candidates):
        try:
            return load_checkpoint(path, model=model, optimizer=optimizer, scheduler=scheduler)
        except Exception as err:  # noqa: BLE001 - any unreadable file means "try the previous one"
            if index == len(candidates) - 1:
                raise
            log.warning(
                "checkpoint %s is unreadable (%s: %s); resuming from the previous one, %s",
                path, type(err).__name__, err, candidates[index + 1].name,
            )
    return None


def resolve_resume(cfg: CheckpointConfig, root: Path) -> Optional[Path]:
    """The checkpoint to resume from under `checkpoint.resume`, or None to start fresh."""
    newest = latest_checkpoint(root)
    if cfg.resume == "auto":
        return newest
    if cfg.resume == "never":
        if newest is not None:
            raise ExistingOutputError(
                f"checkpoint.resume = 'never' but {root} already holds checkpoints (newest: {newest.name}): "
                "choose a fresh output_dir, set checkpoint.resume=auto to continue that run, or remove "
                "the old checkpoints yourself. Nothing was deleted."
            )
        return None
    path = Path(cfg.resume)
    if not (path / TRAINER_STATE).is_file():
        raise MissingPathError(
            f"checkpoint.resume = {cfg.resume!r} is not a checkpoint directory (no {TRAINER_STATE}): "
            f"give a `{CHECKPOINTS_DIR}/step_NNNNNNNN` directory, or 'auto' / 'never'."
        )
    return path


def _write_json(path: Path, data: dict[str, Any], what: str) -> None:
    try:
        text = json.dumps(data, indent=1)
    except TypeError as err:
        raise TypeError(f"the {what} must be json-serialisable to be checkpointed: {err}") from err
    path.write_text(text + "\n", encoding="utf-8")

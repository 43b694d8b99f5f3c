"""What every stage does first: its folder, seeds, CPU threads, the resolved config on disk;
and `starting_from`, the config of a stage that starts from an earlier stage's HF folder."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
import yaml

from megathink.config.run import RunConfig
from megathink.run_layout import RESOLVED_CONFIG
from megathink.trainer.ranks import is_main_process
from megathink.trainer.rng import seed_everything


def prepare_stage(cfg: RunConfig, out_dir: Path) -> dict[str, Any]:
    """Create `out_dir`, seed everything, set torch threads, write `resolved_config.yaml`;
    return the config as a plain dict (for the metrics sinks)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.trainer.seed)
    if cfg.trainer.num_threads > 0:
        torch.set_num_threads(cfg.trainer.num_threads)
    config_dict = dataclasses.asdict(cfg)
    if is_main_process():  # one writer in a torchrun job
        (out_dir / RESOLVED_CONFIG).write_text(yaml.safe_dump(config_dict, sort_keys=False), encoding="utf-8")
    return config_dict


def starting_from(cfg: RunConfig, model_dir: Path) -> RunConfig:
    """`cfg` with the model and tokenizer read from the HF directory an earlier stage wrote."""
    model = dataclasses.replace(cfg.model, path=str(model_dir))
    tokenizer = dataclasses.replace(cfg.tokenizer, kind="pretrained", path=str(model_dir))
    return dataclasses.replace(cfg, model=model, tokenizer=tokenizer)

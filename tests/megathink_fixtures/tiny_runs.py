"""Finished tiny runs that several test modules read (built once per session by tests/conftest.py).

Tests must treat them as read-only: copy a folder before changing anything in it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from megathink.config import (
    CheckpointConfig,
    DataConfig,
    LoggerConfig,
    ModelConfig,
    OptimizerConfig,
    RunConfig,
    SFTConfig,
    TrainerConfig,
)

TINY_MODEL = ModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64)
"""The tiny Qwen2 of the evaluation tests: one layer, hidden 32."""


def build_tiny_sft_stage(out: Path) -> Path:
    """A finished 4-step SFT stage of `TINY_MODEL` on toy levels 1-2 in `out`/sft: resolved_config.yaml,
    checkpoints/step_00000002 and step_00000004, hf/. Returns the stage folder."""
    from megathink.trainer.sft import run_sft

    threads = torch.get_num_threads()
    stage = out / "sft"
    cfg = RunConfig(
        output_dir=str(out),
        model=TINY_MODEL,
        data=DataConfig(levels=[1, 2], toy_train_size=16, toy_eval_per_level=0, max_seq_len=64),
        trainer=TrainerConfig(device="cpu", num_threads=1),
        sft=SFTConfig(max_steps=4, micro_batch_size=4, optimizer=OptimizerConfig(lr=3e-3, min_lr=3e-4)),
        checkpoint=CheckpointConfig(save_every=2, keep_last=2, save_hf=True),
        logger=LoggerConfig(console=False, progress_bar=False, tensorboard=False),
    )
    try:
        run_sft(cfg, stage)
    finally:
        torch.set_num_threads(threads)
    return stage

"""Thinkless stage 1 on the toy task, driven from Python with the typed configs (no Hydra).

    python examples/toy_sft_without_hydra.py [output_dir]

The library takes dataclasses; Hydra is only the command-line front end. This runs a short
SFT warm-up of a tiny random Qwen2 and prints the forced-mode table per difficulty level.
"""

from __future__ import annotations

import sys

from megathink.config import (
    DataConfig,
    EvalConfig,
    ModelConfig,
    OptimizerConfig,
    RunConfig,
    SFTConfig,
    TrainerConfig,
)
from megathink.trainer.pipeline import run_pipeline


def main() -> None:
    output_dir = sys.argv[1] if len(sys.argv) > 1 else "outputs/example_toy_sft"
    cfg = RunConfig(
        output_dir=output_dir,
        model=ModelConfig(arch="qwen2", hidden_size=128, num_layers=2, num_heads=4, num_kv_heads=4),
        data=DataConfig(levels=[1, 2, 3], toy_train_size=3000, toy_eval_per_level=50, max_seq_len=96),
        trainer=TrainerConfig(device="cpu", log_every=50),
        sft=SFTConfig(max_steps=300, micro_batch_size=32, optimizer=OptimizerConfig(lr=2e-3, min_lr=1e-4)),
        eval=EvalConfig(max_new_tokens=64),
    )
    run_pipeline(cfg)


if __name__ == "__main__":
    main()

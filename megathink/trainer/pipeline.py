"""Runs the configured stages in order, each in its own sub-folder of the output directory.

`<output_dir>/sft/` holds the SFT stage and `<output_dir>/rl/` the RL stage (checkpoints,
metrics, evaluations, the final HF model in `hf/`). The presample stage (AdaptThink) writes
`<output_dir>/reference_accuracy.jsonl` (unless `algorithm.reference_accuracy_path` names
another file) and `<output_dir>/presample_summary.json`; it resumes like the other stages.
Presample and RL start from the SFT stage's `hf/` model when it runs (`checkpoint.save_hf`
must then be on), else from `model.path`. The RL stage's `summary.json` is also copied to
`<output_dir>/summary.json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from megathink.config import RunConfig
from megathink.errors import ConfigError
from megathink.run_layout import HF_DIR
from megathink.trainer.ranks import is_main_process
from megathink.trainer.stage_setup import starting_from


def run_pipeline(cfg: RunConfig) -> dict[str, Any]:
    """Run every stage in `cfg.stages`; returns each stage's result by name."""
    out = Path(cfg.output_dir)
    results: dict[str, Any] = {}
    later = [stage for stage in cfg.stages if stage != "sft"]
    if "sft" in cfg.stages and later and not cfg.checkpoint.save_hf:
        raise ConfigError(
            f"checkpoint.save_hf = False is invalid with stages {cfg.stages}: {', '.join(later)} start(s) from sft/hf."
        )
    for stage in cfg.stages:
        if stage == "sft":
            from megathink.trainer.sft import run_sft

            results[stage] = run_sft(cfg, out / "sft")
        elif stage == "presample":
            from megathink.evaluation.presample import run_presample

            results[stage] = run_presample(starting_from(cfg, out / "sft" / HF_DIR) if "sft" in cfg.stages else cfg)
        elif stage == "rl":
            from megathink.trainer.rl import run_rl

            init_dir = out / "sft" / HF_DIR if "sft" in cfg.stages else None
            result = run_rl(cfg, out / "rl", init_dir=init_dir)
            if is_main_process():
                (out / "summary.json").write_text(json.dumps(result.summary, indent=2) + "\n", encoding="utf-8")
            results[stage] = result
    return results


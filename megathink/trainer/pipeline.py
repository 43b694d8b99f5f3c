"""Runs the configured stages in order, each in its own sub-folder of the output directory.

`<output_dir>/sft/` holds the SFT stage and `<output_dir>/rl/` the RL stage (checkpoints,
metrics, evaluations, the final HF model in `hf/`). The presample stage (AdaptThink) writes
`<output_dir>/reference_accuracy.jsonl` (unless `algorithm.reference_accuracy_path` names
another file) and `<output_dir>/presample_summary.json`; it resumes like the other stages.
Presample and RL start from the SFT stage's `hf/` model when it runs (`checkpoint.save_hf`
must then be on), else from `model.path`. The RL stage's `summary.json` is also copied to
`<output_dir>/summary.json`.

The SFT and RL stages run under `preemption.signal_handlers()`: SIGTERM / SIGUSR1 make them
checkpoint at the next step boundary and raise `StagePreempted`; the pipeline then writes
`<output_dir>/preempted.json` (rank 0), runs no later stage, and re-raises for the command line
(exit status 75). A signal that comes after a stage's last step stops the pipeline before the
next stage the same way.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from megathink.config import RunConfig
from megathink.errors import ConfigError
from megathink.run_layout import HF_DIR
from megathink.trainer import preemption
from megathink.trainer.preemption import StagePreempted
from megathink.trainer.ranks import is_main_process
from megathink.trainer.stage_setup import starting_from

log = logging.getLogger(__name__)


def run_pipeline(cfg: RunConfig) -> dict[str, Any]:
    """Run every stage in `cfg.stages`; returns each stage's result by name."""
    out = Path(cfg.output_dir)
    results: dict[str, Any] = {}
    later = [stage for stage in cfg.stages if stage != "sft"]
    if "sft" in cfg.stages and later and not cfg.checkpoint.save_hf:
        raise ConfigError(
            f"checkpoint.save_hf = False is invalid with stages {cfg.stages}: {', '.join(later)} start(s) from sft/hf."
        )
    if is_main_process():
        preemption.clear_record(out)
    try:
        for index, stage in enumerate(cfg.stages):
            with preemption.signal_handlers(enabled=stage in CHECKPOINTING_STAGES):
                results[stage] = _run_stage(cfg, stage, out)
                next_stage = index + 1 < len(cfg.stages)
                if next_stage and stage in CHECKPOINTING_STAGES and preemption.stop_requested():  # collective
                    raise StagePreempted(stage, results[stage].final_step, None, finished=True)
    except StagePreempted as stop:
        log.warning("%s", stop)
        if is_main_process():
            preemption.write_record(out, stop)
        raise
    return results


CHECKPOINTING_STAGES = ("sft", "rl")
"""Stages whose loops check for a stop signal at each step boundary (presample keeps the default
handlers: SIGTERM ends it at once, and its append-only file keeps every prompt already done)."""


def _run_stage(cfg: RunConfig, stage: str, out: Path) -> Any:
    """Run `stage` in its folder under `out`; returns its result (RL also copies summary.json to `out`)."""
    if stage == "sft":
        from megathink.trainer.sft import run_sft

        return run_sft(cfg, out / "sft")
    if stage == "presample":
        from megathink.evaluation.presample import run_presample

        return run_presample(starting_from(cfg, out / "sft" / HF_DIR) if "sft" in cfg.stages else cfg)
    from megathink.trainer.rl import run_rl

    init_dir = out / "sft" / HF_DIR if "sft" in cfg.stages else None
    result = run_rl(cfg, out / "rl", init_dir=init_dir)
    if is_main_process():
        (out / "summary.json").write_text(json.dumps(result.summary, indent=2) + "\n", encoding="utf-8")
    return result

"""`megathink plan`: will this run fit? Per-GPU memory by component and the step time, from the
config and the model's config.json alone (no weights, no GPU), and the start-up check that
`megathink train` / `sft` run with the same planner.

    megathink plan experiment=thinkless_degrpo_7b [any override megathink train takes]

prints one screen (megathink.planning.report) and exits 0 when the worst rank fits in
`plan.gpu_memory_gib` less `plan.headroom`, 1 when it does not (after the knobs that would make
it fit, each re-planned), 2 for bad input (a missing config.json, an invalid override), the
CLI's convention. The world size is torchrun's WORLD_SIZE when set, else `plan.world_size`,
else the layout's own (tp * pp * cp * parallel.dp). `trainer.device=cpu` gives a CPU plan (no
CUDA overhead line).

The start-up check (`check_before_training`, called by the CLI's train and sft commands before
anything is built): on a GPU run (trainer.device cuda, or auto with CUDA present) the same plan
at the job's WORLD_SIZE; a layout that does not fit is refused with a ConfigError (exit 2)
holding the plan and the knobs, unless `plan.enforce=false` (then it is logged as a warning).
A CPU run (the toy demo, the tests) is never checked.
"""

from __future__ import annotations

import logging
import os
import sys

from megathink.config import RunConfig
from megathink.errors import ConfigError

log = logging.getLogger(__name__)

SUMMARY = (
    "per-GPU memory by component and step time of a run (the same overrides as train); "
    "exit 0 if it fits, 1 if not (with the knobs that make it fit)"
)


def planned_shape(cfg: RunConfig) -> tuple[object, str]:
    """(the model's ModelShape, where it came from): model.path/config.json, or the random
    model of the `model` section with the tokenizer's vocabulary (the toy tokenizer is built in
    memory; nothing else is read)."""
    from megathink.planning import read_model_shape

    if cfg.model.path is not None:
        return read_model_shape(cfg), f"{cfg.model.path}/config.json"
    from megathink.data.tokenizer import load_tokenizer

    vocab = load_tokenizer(cfg.tokenizer).vocab_size
    return read_model_shape(cfg, vocab_size=vocab), "random model from the model section"


def _world_size() -> int | None:
    world = int(os.environ.get("WORLD_SIZE", "0") or 0)
    return world if world > 1 else None


def plan_text(cfg: RunConfig, *, device: str) -> tuple[bool, str]:
    """(fits, the one-screen plan with the knobs when it does not fit)."""
    from megathink.planning import format_plan, plan_run, suggest_knobs

    shape, source = planned_shape(cfg)
    world = _world_size() if cfg.parallel.backend == "megatron" else None
    plan = plan_run(cfg, shape, world_size=world, device=device)
    knobs = [] if plan.fits else suggest_knobs(cfg, shape, world_size=world, device=device)
    return plan.fits, format_plan(plan, knobs, source=source)


def run_plan_command(cfg: RunConfig) -> None:
    fits, text = plan_text(cfg, device="cpu" if cfg.trainer.device == "cpu" else "cuda")
    print(text)
    sys.stdout.flush()
    sys.exit(0 if fits else 1)


def check_before_training(cfg: RunConfig) -> None:
    """Refuse (ConfigError) a GPU run the planner says does not fit; nothing on CPU runs."""
    device = cfg.trainer.device
    if device == "cpu":
        return
    if device == "auto":
        import torch

        if not torch.cuda.is_available():
            return
    fits, text = plan_text(cfg, device="cuda")
    if fits:
        log.info("memory plan: %s", text.splitlines()[-1])
        return
    if not cfg.plan.enforce:
        log.warning("memory plan (plan.enforce=false, starting anyway):\n%s", text)
        return
    raise ConfigError(
        "the memory planner says this layout does not fit the GPU (megathink plan with the same overrides "
        f"prints this again):\n{text}\nApply one of the knobs above, or set plan.enforce=false to start anyway."
    )

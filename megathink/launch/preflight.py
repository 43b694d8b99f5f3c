"""Pre-flight checks of a run: everything that can fail before a single weight is loaded.

`preflight(cfg, world_size=)` runs, on the validated `RunConfig` (composition and every
dataclass rule already passed), one check per concern and returns their results:

* model     the model's config.json (never the weights): readable, an architecture megathink
            trains (Qwen2 / Llama; the megatron backend's feature rules, e.g. no RoPE scaling),
            or the `model` section's random model;
* parallel  heads and KV heads divisible by parallel.tp, layers by pp x vpp, the FFN by tp
            (megatron), and the world size (WORLD_SIZE, or plan.world_size) a multiple of
            tp x pp x cp (and equal to tp x pp x cp x dp when parallel.dp is set);
* tokenizer the tokenizer files load and the control tokens are in place (their ids);
* data      every file the stages read exists and its first row has the needed columns (the
            loaders' own parsing of that row), the SFT shards' manifest, AdaptThink's Rbar_ref
            file when RL runs without the presample stage;
* output    the output folder can be created and written;
* memory    the planner (megathink/planning) at the same world size: the worst rank fits the GPU
            (skipped for CPU runs, as the start-up check is).

`megathink check` prints them on one screen and exits 0 iff all pass (check_command.py). `train`
and `sft` run the same checks (all but memory, which `plan_command.check_before_training` does)
before any weights load and refuse a failing run with the first failure's message.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from megathink.config import RunConfig
from megathink.errors import MegathinkError


@dataclass(frozen=True)
class CheckResult:
    """One pre-flight check: its name, whether it passed, and what it found (or the failure)."""

    name: str
    ok: bool
    detail: str


def world_size_of(cfg: RunConfig) -> Optional[int]:
    """The job's world size: torchrun's WORLD_SIZE (> 1), else plan.world_size (> 0), else None."""
    world = int(os.environ.get("WORLD_SIZE", "0") or 0)
    if world > 1:
        return world
    return cfg.plan.world_size or None


def check_model(cfg: RunConfig) -> str:
    from megathink.launch.plan_command import planned_shape

    shape, source = planned_shape(cfg)
    if cfg.model.path is not None and cfg.parallel.backend == "megatron":
        import json

        from megathink.models.megatron.gpt_spec import GPTSpec

        GPTSpec.from_hf_config(json.loads((Path(cfg.model.path) / "config.json").read_text(encoding="utf-8")))
    return (
        f"{source}: {shape.layers} layers, hidden {shape.hidden}, {shape.heads} heads, {shape.kv_heads} KV heads, "
        f"vocab {shape.vocab}, {cfg.model.dtype}"
    )


def check_parallel(cfg: RunConfig, world_size: Optional[int]) -> str:
    from megathink.errors import ConfigError
    from megathink.launch.plan_command import planned_shape

    p = cfg.parallel
    if p.backend == "hf":
        if world_size and world_size > 1:
            raise ConfigError(
                f"parallel.backend = 'hf' runs in one process, but the job has {world_size}: use "
                "parallel=megatron to shard, or start one process."
            )
        return "HF backend, one process"
    shape, _ = planned_shape(cfg)
    if shape.heads % p.tp or shape.kv_heads % p.tp:
        divisors = [d for d in range(1, shape.kv_heads + 1) if shape.kv_heads % d == 0 and shape.heads % d == 0]
        raise ConfigError(
            f"parallel.tp = {p.tp} is invalid for this model: its {shape.heads} attention heads and {shape.kv_heads} KV "
            f"heads must both divide by it; use one of {', '.join(map(str, divisors))}."
        )
    if shape.ffn % p.tp:
        raise ConfigError(f"parallel.tp = {p.tp} is invalid for this model: its FFN size {shape.ffn} must divide by it.")
    if shape.layers % (p.pp * p.vpp):
        raise ConfigError(
            f"parallel.pp = {p.pp} x parallel.vpp = {p.vpp} is invalid for this model: its {shape.layers} layers must "
            "divide into pp * vpp pipeline chunks."
        )
    model_parallel = p.tp * p.pp * p.cp
    if world_size is None:
        return f"tp {p.tp} x pp {p.pp} (vpp {p.vpp}) x cp {p.cp}; world size unknown (set plan.world_size to check it)"
    if world_size % model_parallel:
        raise ConfigError(
            f"the world size {world_size} is not a multiple of parallel.tp * pp * cp = {model_parallel}: change the "
            "process count or the parallel sizes."
        )
    if p.dp and world_size != model_parallel * p.dp:
        raise ConfigError(
            f"parallel.dp = {p.dp} is invalid with {world_size} processes at tp * pp * cp = {model_parallel}: that "
            f"leaves {world_size // model_parallel} replicas; set parallel.dp=0 (derived) or change the process count."
        )
    return f"world {world_size} = tp {p.tp} x pp {p.pp} (vpp {p.vpp}) x cp {p.cp} x dp {world_size // model_parallel}"


def check_tokenizer(cfg: RunConfig) -> str:
    from megathink.data.tokenizer import load_tokenizer

    bundle = load_tokenizer(cfg.tokenizer)
    control = bundle.control
    return (
        f"vocab {bundle.vocab_size}; <short> {control.short}, <think> {control.think}, </think> {control.end_think}; "
        f"EOS {bundle.eos_id}, PAD {bundle.pad_id}" + ("; control tokens added (embeddings grow)" if bundle.vocab_grew else "")
    )


def check_data(cfg: RunConfig, presample_first: bool = False) -> str:
    from megathink.data.loaders import first_hybrid_sft, first_prompt
    from megathink.data.shards.format import MANIFEST_NAME
    from megathink.errors import MissingPathError

    data, found = cfg.data, []
    if data.source == "toy":
        found.append(f"toy task, levels {list(data.levels)}")
    else:
        if "sft" in cfg.stages:
            if data.sft_shards:
                if not (Path(data.sft_shards) / MANIFEST_NAME).is_file():
                    raise MissingPathError(
                        f"data.sft_shards = {data.sft_shards!r} has no {MANIFEST_NAME}: build the shards first "
                        "(megathink shards ...) or point data.sft_shards at them."
                    )
                found.append(f"SFT shards {data.sft_shards}")
            elif data.sft_path:
                first_hybrid_sft(data.sft_path, data)
                found.append(f"SFT {data.sft_path}")
        if ("rl" in cfg.stages or "presample" in cfg.stages) and data.train_path:
            first_prompt(data.train_path, data)
            found.append(f"RL prompts {data.train_path}")
        if data.eval_path:
            first_prompt(data.eval_path, data)
            found.append(f"eval {data.eval_path}")
    for path in cfg.eval.datasets:
        first_prompt(path, data)
        found.append(f"eval {path}")
    if "rl" in cfg.stages and "presample" not in cfg.stages and cfg.algorithm.uses_presample and not presample_first:
        from megathink.evaluation.reference_accuracy import reference_accuracy_file

        rbar = reference_accuracy_file(cfg)
        if not rbar.is_file():
            raise MissingPathError(
                f"algorithm.reference_accuracy_path: {str(rbar)!r} does not exist: run the presample stage first "
                "(stages=[presample,rl], or megathink presample), or point the field at the file."
            )
        found.append(f"Rbar_ref {rbar}")
    return "; ".join(found)


def check_output(cfg: RunConfig) -> str:
    from megathink.errors import ConfigError

    folder = Path(cfg.output_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".megathink-check-"):
            pass
    except OSError as err:
        raise ConfigError(f"output_dir = {str(folder)!r} cannot be written ({err.strerror}): choose a writable folder "
                          "(hydra.run.dir=...).") from err
    return f"{folder} is writable"


def check_memory(cfg: RunConfig, world_size: Optional[int]) -> str:
    from megathink.errors import ConfigError
    from megathink.launch.plan_command import plan_text

    if cfg.trainer.device == "cpu":
        return "CPU run: not planned"
    fits, text = plan_text(cfg, device="cuda")
    last = text.strip().splitlines()[-1]
    if not fits:
        raise ConfigError(f"the planner says it does not fit: {last} (megathink plan with the same overrides shows why)")
    return last


CHECKS: tuple[tuple[str, Callable[..., str]], ...] = (
    ("model", check_model),
    ("parallel", check_parallel),
    ("tokenizer", check_tokenizer),
    ("data", check_data),
    ("output", check_output),
    ("memory", check_memory),
)
NEEDS_WORLD = {"parallel", "memory"}


def preflight(
    cfg: RunConfig, *, world_size: Optional[int] = None, skip: tuple[str, ...] = (), presample_first: bool = False
) -> list[CheckResult]:
    """Every check of the module doc but those in `skip`; a failing check never stops the others.
    presample_first: a presample pass will write the Rbar_ref file before RL (the sbatch library's
    PRESAMPLE=1), so its absence is not a failure."""
    results = []
    for name, check in CHECKS:
        if name in skip:
            continue
        try:
            if name in NEEDS_WORLD:
                detail = check(cfg, world_size)
            elif name == "data":
                detail = check(cfg, presample_first)
            else:
                detail = check(cfg)
            results.append(CheckResult(name, True, detail))
        except (MegathinkError, OSError) as err:
            results.append(CheckResult(name, False, str(err)))
    return results


def require_preflight(cfg: RunConfig) -> None:
    """The start-up form (train / sft): raise the first failing check's error, memory left to the
    planner's own start-up check."""
    from megathink.errors import ConfigError

    failed = [r for r in preflight(cfg, world_size=world_size_of(cfg), skip=("memory",)) if not r.ok]
    if failed:
        raise ConfigError(f"pre-flight check '{failed[0].name}' failed: {failed[0].detail}")


__all__ = ["CHECKS", "CheckResult", "preflight", "require_preflight", "world_size_of"]

"""What to change when a layout does not fit: each knob re-planned, not guessed.

`suggest_knobs(cfg, shape, world_size=, device=)` re-plans the run with one change at a time,
then two or three on top of the changes that came closest (a beam search), and returns the
changes that fit, fewest overrides first, or the few that come closest. The candidates:

- parallel.recompute=full / selective (megatron) and parallel.sequence_parallel=true (TE, tp > 1);
- a token budget: the largest `<stage>.max_tokens_per_micro_batch` from a ladder that fits
  (with parallel.pack_sequences=true on megatron, which the budget needs), or a smaller
  `<stage>.micro_batch_size`;
- more model parallelism at the same world size: parallel.tp, pp or cp doubled (when the
  model and the world divide);
- parallel.distributed_optimizer=true (ZeRO-1 over dp x cp > 1);
- kernels.logprob=chunked instead of naive;
- generation on the trainer GPU: a smaller rollout.batch_size / eval.batch_size, or
  rollout.engine=sglang (rollouts on their own GPUs, megatron's sampler parked on the CPU).

Every knob is a dotted override that `megathink train` takes as is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from megathink.config.run import RunConfig
from megathink.errors import ConfigError
from megathink.planning.memory import GIB
from megathink.planning.model_shape import ModelShape
from megathink.planning.planner import RunPlan, plan_run

BUDGETS = (65536, 49152, 32768, 24576, 16384, 12288, 8192, 4096)
"""Token budgets tried for `*.max_tokens_per_micro_batch`, largest first."""
BATCHES = (128, 64, 32, 16, 8, 4, 2, 1)
"""Generation batch sizes tried for rollout.batch_size / eval.batch_size, largest first."""


@dataclass(frozen=True)
class Knob:
    overrides: tuple[str, ...]  # e.g. ("parallel.recompute=full",)
    peak_gib: float
    fits: bool

    def describe(self) -> str:
        return " ".join(self.overrides)


def with_overrides(cfg: RunConfig, overrides: tuple[str, ...]) -> RunConfig:
    """`cfg` with dotted `section.field=value` overrides applied (validated again)."""
    sections: dict[str, dict[str, Any]] = {}
    for override in overrides:
        key, _, raw = override.partition("=")
        section, _, name = key.partition(".")
        sections.setdefault(section, {})[name] = _value(raw)
    changes = {section: dataclasses.replace(getattr(cfg, section), **fields) for section, fields in sections.items()}
    return dataclasses.replace(cfg, **changes)


def _value(raw: str) -> Any:
    if raw in ("true", "false"):
        return raw == "true"
    try:
        return int(raw)
    except ValueError:
        return raw


def _candidates(cfg: RunConfig, shape: ModelShape, base: RunPlan) -> list[tuple[str, ...]]:
    p, layout = cfg.parallel, base.layout
    out: list[tuple[str, ...]] = []
    if p.recompute != "full":
        out.append(("parallel.recompute=full",))
    if p.backend == "megatron" and p.recompute == "none":
        out.append(("parallel.recompute=selective",))
    if layout.layers == "megatron_te" and p.tp > 1 and not p.sequence_parallel:
        out.append(("parallel.sequence_parallel=true",))
    if p.backend == "megatron" and not p.distributed_optimizer and layout.dp * layout.cp > 1:
        out.append(("parallel.distributed_optimizer=true",))
    if cfg.kernels.logprob_for(shape.vocab) == "naive":
        out.append(("kernels.logprob=chunked",))
    if p.backend == "megatron":
        for name in ("tp", "pp", "cp"):
            value = getattr(p, name) * 2
            if layout.world % (layout.tp * layout.pp * layout.cp * 2) == 0:
                out.append((f"parallel.{name}={value}",))
        if cfg.rollout.engine == "local" and "rl" in cfg.stages:
            out.append(("rollout.engine=sglang",))
    pack = ("parallel.pack_sequences=true",) if p.backend == "megatron" and not p.pack_sequences else ()
    for stage in ("rl", "sft"):
        if stage not in cfg.stages:
            continue
        section = getattr(cfg, stage)
        current = section.max_tokens_per_micro_batch
        for budget in BUDGETS:
            if current == 0 or budget < current:
                out.append((f"{stage}.max_tokens_per_micro_batch={budget}", *pack))
        size = section.micro_batch_size // 2
        while current == 0 and size >= 1:
            out.append((f"{stage}.micro_batch_size={size}",))
            size //= 2
    for batch in BATCHES:
        if "rl" in cfg.stages and cfg.rollout.engine == "local" and batch < cfg.rollout.batch_size:
            out.append((f"rollout.batch_size={batch}",))
        if "sft" in cfg.stages and batch < cfg.eval.batch_size:
            out.append((f"eval.batch_size={batch}",))
    return out


def _try(plan_of: Callable[[RunConfig], RunPlan], cfg: RunConfig, overrides: tuple[str, ...]) -> Knob | None:
    try:
        plan = plan_of(with_overrides(cfg, overrides))
    except (ConfigError, TypeError, ValueError):
        return None  # not a valid layout for this model or world
    return Knob(overrides=overrides, peak_gib=plan.peak_bytes / GIB, fits=plan.fits)


def suggest_knobs(
    cfg: RunConfig, shape: ModelShape, *, world_size: int | None = None, device: str = "cuda", limit: int = 6
) -> list[Knob]:
    """Changes that make `cfg` fit (re-planned), fewest overrides first; the closest when none does.

    A small beam search: one knob at a time on top of the BEAM best partial changes, up to
    DEPTH knobs (a run can need two, e.g. a token budget for the update and SGLang rollouts)."""
    plan_of = lambda c: plan_run(c, shape, world_size=world_size, device=device)
    if plan_of(cfg).fits:
        return []
    paths: list[Knob] = [Knob(overrides=(), peak_gib=float("inf"), fits=False)]
    tried: list[Knob] = []
    for _ in range(DEPTH):
        found = []
        for path in paths:
            base = with_overrides(cfg, path.overrides)
            used = {o.partition("=")[0] for o in path.overrides}
            for change in _candidates(base, shape, plan_of(base)):
                if change[0].partition("=")[0] in used:
                    continue
                knob = _try(plan_of, cfg, path.overrides + change)
                if knob is not None:
                    found.append(knob)
        tried += found
        if any(k.fits for k in found):
            return _best(found, limit)
        paths = _distinct(sorted(found, key=lambda k: k.peak_gib))[:BEAM]
        if not paths:
            break
    return sorted(tried, key=lambda k: k.peak_gib)[: min(limit, 3)]


DEPTH = 3
"""Most knobs combined in one suggestion."""
BEAM = 3
"""Partial suggestions carried to the next knob."""


def _distinct(knobs: list[Knob]) -> list[Knob]:
    """One knob per set of settings (the first: candidates come largest budget / batch first)."""
    out, seen = [], set()
    for knob in knobs:
        setting = frozenset(o.partition("=")[0] for o in knob.overrides)
        if setting not in seen:
            seen.add(setting)
            out.append(knob)
    return out


def _best(knobs: list[Knob], limit: int) -> list[Knob]:
    """The fitting knobs, one per set of settings, fewest overrides then lowest peak first."""
    fitting = _distinct([k for k in knobs if k.fits])
    return sorted(fitting, key=lambda k: (len(k.overrides), k.peak_gib))[:limit]

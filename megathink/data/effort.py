"""Effort levels: named token budgets handed to prompts, and eval prompts expanded per level.

L1 (arXiv 2503.04697) conditions a reasoning model on a token budget stated in the prompt
("Think for N tokens.") and rewards meeting it. Here a record's `budget` is that N (rendered by
`chat_template.user_content`, read by the L1 reward through
`methods.rollout_step.shaping_inputs`), and `data.effort_levels` names a few budgets
({low: 10, medium: 30, high: 55}) in the way Qwen3 / o-series models expose effort settings:

- `assign_efforts` gives every record of a split that states no budget of its own one of the
  levels (`data.effort_assignment`): 'cycle' hands out the levels in increasing budget order by
  the record's index, 'random' draws one from (data.seed, split, index). Both depend only on
  the seed and the index, so the RL stage, the presample pass and SFT see the same budgets.
  A budget from the data (`data.budget_key`) is kept.
- `effort_splits` makes one copy of every eval record per level (budget and `effort` label
  set), a dataset per level, so an evaluation reports accuracy and response tokens per effort
  level (`datasets_by_effort` does it for every dataset of an evaluation: `eval.per_effort`);
  `expand_by_effort` is the same as one flat list.

Departure from L1: the paper samples N uniformly from a range per prompt; named levels are a
handful of fixed budgets, which makes per-level evaluation and the toy task's budget rule
(`sft_examples`) simple.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from typing import TypeVar

from megathink.config.data import DataConfig
from megathink.errors import ConfigError

R = TypeVar("R")
"""A frozen record dataclass with `budget` and `effort` fields (PromptRecord, HybridSFTRecord)."""


def ordered_levels(cfg: DataConfig) -> list[tuple[str, int]]:
    """`data.effort_levels` as (name, budget) pairs in increasing budget order (ties by name)."""
    return sorted(cfg.effort_levels.items(), key=lambda item: (item[1], item[0]))


def assigned_level(cfg: DataConfig, split: str, index: int) -> tuple[str, int]:
    """The (name, budget) `data.effort_assignment` gives the `index`-th record of `split`."""
    levels = ordered_levels(cfg)
    if cfg.effort_assignment == "none" or not levels:
        raise ConfigError(
            f"data.effort_assignment = {cfg.effort_assignment!r} with data.effort_levels = "
            f"{cfg.effort_levels!r} assigns no level: set both (e.g. data.effort_assignment=cycle)."
        )
    if cfg.effort_assignment == "cycle":
        return levels[index % len(levels)]
    return levels[random.Random(f"effort:{cfg.seed}:{split}:{index}").randrange(len(levels))]


def assign_efforts(records: Sequence[R], cfg: DataConfig, split: str) -> list[R]:
    """The records of `split` ('train', 'eval'), those without a budget given an effort level by
    `data.effort_assignment` (by their index in `records`); unchanged with 'none'."""
    if cfg.effort_assignment == "none":
        return list(records)
    out = []
    for index, record in enumerate(records):
        if getattr(record, "budget", None) is None:
            name, budget = assigned_level(cfg, split, index)
            record = dataclasses.replace(record, budget=budget, effort=name)  # type: ignore[type-var]
        out.append(record)
    return out


def effort_splits(records: Sequence[R], cfg: DataConfig) -> dict[str, list[R]]:
    """{level name: every record at that level}, in increasing budget order: copies with `budget`
    set to the level's budget (replacing any the record had) and `effort` to its name. Evaluate
    each list as its own dataset to report accuracy and response tokens per effort level."""
    levels = ordered_levels(cfg)
    if not levels:
        raise ConfigError(
            "data.effort_levels = {} is invalid for a per-effort evaluation: name the budgets, e.g. "
            "++data.effort_levels={low:512,medium:2048,high:8192}."
        )
    return {
        name: [dataclasses.replace(record, budget=budget, effort=name) for record in records]  # type: ignore[type-var]
        for name, budget in levels
    }


def datasets_by_effort(datasets: dict[str, Sequence[R]], cfg: DataConfig) -> dict[str, list[R]]:
    """Every dataset once per effort level, named `<dataset>@<level>` (levels in increasing
    budget order): what `eval.per_effort` evaluates."""
    return {f"{name}@{level}": split for name, records in datasets.items() for level, split in effort_splits(records, cfg).items()}


def expand_by_effort(records: Sequence[R], cfg: DataConfig) -> list[R]:
    """`effort_splits` as one list: every record at the lowest budget, then at the next, and so
    on (len(records) x len(levels) records); group the results by `.effort`."""
    return [record for split in effort_splits(records, cfg).values() for record in split]


__all__ = [
    "datasets_by_effort","assign_efforts", "assigned_level", "effort_splits", "expand_by_effort", "ordered_levels"]

"""The prompts of the RL stage (and of AdaptThink's presample pass over them) and their eval split.

`source="toy"`: the toy task's training questions, of which `data.toy_rl_prompts > 0` keeps
the first N (the list is shuffled over the levels, so every level stays represented), and its
held-out questions. `source="files"`: `data.train_path` and, when set, `data.eval_path`.
Both the RL stage and `megathink presample` call `rl_prompt_split`, so the prompts that get an
Rbar_ref are exactly the prompts RL samples from.

Token budgets (L1): a file's `data.budget_key` column, else an effort level from
`data.effort_assignment` (data/effort.py; the toy task assigns them when it builds its
questions, so SFT and RL agree). Records carry them as `.budget`, which the prompt rendering
(`chat_template.encode_record_prompt`) and the L1 reward read.
"""

from __future__ import annotations

import os
from typing import Union

from megathink.config.data import DataConfig
from megathink.data.effort import assign_efforts
from megathink.data.loaders import load_prompts
from megathink.data.toy_task import build_toy_datasets
from megathink.data.types import HybridSFTRecord, PromptRecord
from megathink.errors import ConfigError, MissingPathError

RLRecord = Union[PromptRecord, HybridSFTRecord]
"""A prompt with its reference answer: anything with `.problem`, `.answer`, `.level` and `.budget`."""


def rl_prompt_split(cfg: DataConfig, *, command: str = "the rl stage") -> tuple[list[RLRecord], list[RLRecord]]:
    """(training prompts, evaluation prompts); the latter empty for files without eval_path."""
    if cfg.source == "toy":
        train, evaluation = build_toy_datasets(cfg)
        if cfg.toy_rl_prompts > 0:
            train = train[: cfg.toy_rl_prompts]
        return list(train), list(evaluation)
    if not cfg.train_path:
        raise ConfigError(
            f"data.train_path = None is invalid for {command} with data.source='files': give the "
            "training prompt file (problem, answer[, level] per line)."
        )
    if not os.path.isfile(cfg.train_path):
        raise MissingPathError(f"data.train_path = {cfg.train_path!r} does not exist: give a .jsonl or .parquet prompt file.")
    train = assign_efforts(load_prompts(cfg.train_path, cfg), cfg, "train")
    evaluation: list[RLRecord] = []
    if cfg.eval_path:
        evaluation = assign_efforts(load_prompts(cfg.eval_path, cfg), cfg, "eval")
    return train, evaluation

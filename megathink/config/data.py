"""Where prompts and SFT answers come from.

`source="toy"` generates the "when to think" arithmetic task in memory (deterministic by
seed); `source="files"` reads jsonl or parquet files with `problem`/`answer`/optional `level`
fields (GSM8K, MATH-500, Minerva, AIME and DeepScaleR all fit this shape after renaming
columns with the *_key fields) and, for SFT, a hybrid file with one long and one short answer
per question.

Effort levels (L1, arXiv 2503.04697): a prompt may state a token budget ("Think for N tokens.",
`tokenizer.budget_instruction`), read from the `data.budget_key` column of a prompt file or
given by a named level of `data.effort_levels` through `data.effort_assignment`
(megathink/data/effort.py); the L1 reward (`reward.l1_mode`) reads it back.

A million-sample SFT set is better tokenized once into shards (`data.sft_shards`, built by
`python -m megathink.data.shards.build`, see docs/DATA.md) and read memory-mapped, by the
plain reader or by NVIDIA DALI (`data.sft_reader=dali`), which prepares batches ahead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from megathink.config.validation import ConfigError, check_choice, check_int, check_nonempty_str, fail

DATA_SOURCES = ("toy", "files")
SFT_READERS = ("plain", "dali")
EFFORT_ASSIGNMENTS = ("none", "cycle", "random")
TOY_MAX_LEVEL = 8


@dataclass(kw_only=True)
class DataConfig:
    source: str = "toy"
    """'toy' generates the arithmetic task; 'files' reads the paths below."""

    sft_path: Optional[str] = None
    """Hybrid SFT file (jsonl/parquet: problem, answer, long, short[, level]) for source='files'."""

    sft_shards: Optional[str] = None
    """Folder of pre-tokenized SFT shards (built from a hybrid SFT file by `python -m
    megathink.data.shards.build`) for source='files', instead of data.sft_path: the same
    batches, without tokenizing the file at start-up or holding it in memory. The shards must
    have been built with the run's tokenizer and prompt settings; they are refused otherwise."""

    sft_reader: str = "plain"
    """How SFT shards are read: 'plain' (memory-mapped, in the training process) or 'dali'
    (NVIDIA DALI prepares batches ahead of the training step; `pip install megathink[dali]`).
    Both give the same batches. 'dali' needs data.sft_shards."""

    sft_prefetch: int = 2
    """sft_reader='dali': batches prepared ahead of the training step (DALI's prefetch queue depth)."""

    sft_reader_workers: int = 0
    """sft_reader='dali': worker processes that gather shard rows for DALI (its parallel external
    source); 0 gathers them in the training process."""

    sft_shards_verify: bool = True
    """Check the sha256 of every shard file against the manifest when the shards are opened
    (reads them once, ~1 s per GB); sizes and the index are always checked."""

    train_path: Optional[str] = None
    """RL prompt file (jsonl/parquet: problem, answer[, level]) for source='files'."""

    eval_path: Optional[str] = None
    """Held-out prompt file for evaluation for source='files'."""

    problem_key: str = "problem"
    """Column holding the question text."""

    answer_key: str = "answer"
    """Column holding the reference answer."""

    level_key: str = "level"
    """Column holding the difficulty level (optional in the file)."""

    budget_key: str = "budget"
    """Column holding a prompt's token budget (a positive integer; the column, or a null in it,
    means no budget). Prompt files only: hybrid SFT files are read without budgets."""

    effort_levels: dict[str, int] = field(default_factory=dict)
    """Named token budgets, e.g. {low: 10, medium: 30, high: 55} for the toy task or {low: 512,
    medium: 2048, high: 8192} for math: the levels `effort_assignment` hands out and the per-level
    evaluation renders every eval prompt with (megathink/data/effort.py). Empty: no levels."""

    effort_assignment: str = "none"
    """How prompts that state no budget of their own get one of `effort_levels`: 'none' (they
    keep none), 'cycle' (the i-th prompt of a split gets the (i mod k)-th level, levels in
    increasing budget order) or 'random' (a level drawn from data.seed, the split and i). Applied
    to the RL and eval prompts and to the toy task's SFT questions."""

    levels: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    """Toy task difficulty levels to generate (level n adds two n-digit numbers)."""

    toy_train_size: int = 20000
    """Number of distinct toy training questions (spread evenly over the levels)."""

    toy_rl_prompts: int = 0
    """Toy task: the RL and presample stages use only the first N training questions (they
    are shuffled over the levels); 0 = all of them. AdaptThink's presample pass covers every
    RL prompt, so a small pool keeps it short while SFT still sees `toy_train_size` questions."""

    toy_eval_per_level: int = 100
    """Held-out toy questions per level for evaluation (never seen in training); capped at a
    fifth of a level's distinct problems (level 1 has 100, so it holds out at most 20)."""

    long_prefix: str = ""
    """Text put at the start of every long (thinking) SFT answer. The toy AdaptThink warm-up
    sets "Alright" so thinking responses share one opener, the word AdaptThink forces, as R1's
    thoughts do; R1-style data already has it. Empty: answers as given."""

    seed: int = 0
    """Seed of the toy generator and of data shuffling."""

    max_seq_len: int = 256
    """Longest prompt+response in tokens; longer SFT examples are dropped and counted."""

    def __post_init__(self) -> None:
        check_choice("data.source", self.source, DATA_SOURCES)
        for key in ("problem_key", "answer_key", "level_key", "budget_key"):
            check_nonempty_str(f"data.{key}", getattr(self, key))
        if not self.levels:
            raise ConfigError("data.levels = [] is invalid: list at least one level, e.g. [1,2,3,4,5].")
        for level in self.levels:
            check_int("data.levels[*]", level, low=1, high=TOY_MAX_LEVEL)
        if len(set(self.levels)) != len(self.levels):
            raise ConfigError(f"data.levels = {self.levels!r} is invalid: levels must not repeat.")
        check_int("data.toy_train_size", self.toy_train_size, low=1)
        check_int("data.toy_rl_prompts", self.toy_rl_prompts, low=0)
        check_int("data.toy_eval_per_level", self.toy_eval_per_level, low=0)
        if not isinstance(self.long_prefix, str):
            fail("data.long_prefix", self.long_prefix, "must be a string (empty for none)")
        check_int("data.seed", self.seed, low=0)
        if not isinstance(self.effort_levels, dict):
            fail("data.effort_levels", self.effort_levels, "must map level names to budgets, e.g. {low: 10, high: 50}")
        for name, budget in self.effort_levels.items():
            check_nonempty_str("data.effort_levels (a level name)", name)
            check_int(f"data.effort_levels.{name}", budget, low=1)
        check_choice("data.effort_assignment", self.effort_assignment, EFFORT_ASSIGNMENTS)
        if self.effort_assignment != "none" and not self.effort_levels:
            raise ConfigError(
                f"data.effort_assignment = {self.effort_assignment!r} is invalid with data.effort_levels = {{}}: "
                "name the budgets to hand out (++data.effort_levels={low:10,high:50}) or use data.effort_assignment=none."
            )
        check_int("data.max_seq_len", self.max_seq_len, low=8)
        if self.source == "files" and not (self.sft_path or self.sft_shards or self.train_path):
            raise ConfigError(
                "data.sft_path, data.sft_shards and data.train_path are all unset with data.source='files': "
                "give the hybrid SFT file (data.sft_path=...) or its shards (data.sft_shards=...) "
                "and/or the RL prompt file (data.train_path=...), or use data.source=toy."
            )
        if self.sft_shards is not None:
            check_nonempty_str("data.sft_shards", self.sft_shards)
            if self.source != "files":
                fail("data.sft_shards", self.sft_shards, "needs data.source='files' (the toy task is generated in memory)")
            if self.sft_path is not None:
                raise ConfigError(
                    f"data.sft_shards = {self.sft_shards!r} is invalid with data.sft_path = {self.sft_path!r}: "
                    "the shards replace the file they were built from; set one of them (data.sft_path=null)."
                )
        check_choice("data.sft_reader", self.sft_reader, SFT_READERS)
        if self.sft_reader == "dali" and self.sft_shards is None:
            raise ConfigError(
                "data.sft_reader = 'dali' is invalid without data.sft_shards: DALI reads pre-tokenized shards; "
                "build them with `python -m megathink.data.shards.build` or use data.sft_reader=plain."
            )
        check_int("data.sft_prefetch", self.sft_prefetch, low=1)
        check_int("data.sft_reader_workers", self.sft_reader_workers, low=0)
        if not isinstance(self.sft_shards_verify, bool):
            fail("data.sft_shards_verify", self.sft_shards_verify, "must be true or false")

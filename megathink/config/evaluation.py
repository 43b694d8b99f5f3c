"""Held-out evaluation: the forced-mode tables, the policy evaluation (`megathink eval`, RL before/after)
and the hybrid metrics that compare them.

The sampling fields (`max_new_tokens`, `temperature`, `top_p`, `batch_size`, `seeds`) serve every
evaluation, forced or natural, so a prompt's k = len(seeds) natural samples and its k samples
per forced mode are drawn alike (HAcc compares them); `model_dir` and `datasets` are read by
`megathink eval` only (ALGORITHMS.md section 3: accuracy, length and think ratio per dataset and
difficulty level, over several seeds). Where the generation runs is the `rollout` section's
choice (`rollout.engine`), as for RL rollouts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

from megathink.config.validation import ConfigError, check_float, check_int, fail

DATASET_EXTENSIONS = (".jsonl", ".parquet")


@dataclass(kw_only=True)
class EvalConfig:
    max_new_tokens: int = 128
    """Cap on generated tokens per evaluation answer."""

    temperature: float = 0.0
    """Evaluation sampling temperature; 0 is greedy."""

    top_p: float = 1.0
    """Nucleus mass in (0, 1] for the evaluations' sampling (natural and forced); 1 is off."""

    batch_size: int = 256
    """Sequences generated together (the local engine's batch in evaluations that build their own)."""

    model_dir: Optional[str] = None
    """Policy to evaluate with `megathink eval`: a HF model directory (e.g. `<run>/sft/hf`) or a
    step checkpoint directory (`<stage>/checkpoints/step_NNNNNNNN`, whose stage folder holds
    `resolved_config.yaml`)."""

    datasets: list[str] = field(default_factory=list)
    """Prompt files (.jsonl/.parquet: problem, answer[, level]) for `megathink eval`; each is
    reported under its file stem. Empty: the toy eval split (data.source=toy) or data.eval_path."""

    seeds: list[int] = field(default_factory=lambda: [0])
    """Sampling seeds of every evaluation: each seed draws one response per prompt (and per forced
    mode), so k = len(seeds) samples per prompt give avg@k and pass@k. At temperature 0 every
    seed draws the same greedy response."""

    hacc: bool = True
    """Complete the evaluations that report HAcc with the pass each lacks: `megathink eval` and the
    RL stage's before evaluation also force each mode (they sample the policy's own choice), the
    SFT stage's final evaluation also samples the policy's own choice (it forces each mode). Up to
    3x the sampling of one pass; false: one pass each, no HAcc (the RL stage's after evaluation
    always runs both, for HAcc and the always-think / always-short baselines of summary.json)."""

    per_effort: bool = False
    """Evaluate every dataset once per effort level of data.effort_levels (each prompt with that
    level's token budget), reported as datasets `<name>@<level>`: accuracy and response tokens
    per effort level. Needs data.effort_levels."""

    def __post_init__(self) -> None:
        check_int("eval.max_new_tokens", self.max_new_tokens, low=1)
        check_float("eval.temperature", self.temperature, low=0.0, high=10.0)
        check_float("eval.top_p", self.top_p, low=0.0, high=1.0, low_inclusive=False)
        check_int("eval.batch_size", self.batch_size, low=1)
        if self.model_dir is not None and (not isinstance(self.model_dir, str) or not self.model_dir):
            fail("eval.model_dir", self.model_dir, "must be a directory path or null")
        for path in self.datasets:
            if not isinstance(path, str) or not path.lower().endswith(DATASET_EXTENSIONS):
                fail("eval.datasets[*]", path, "must be a .jsonl or .parquet prompt file")
        stems = [dataset_name(path) for path in self.datasets]
        repeated = sorted({stem for stem in stems if stems.count(stem) > 1})
        if repeated:
            fail(
                "eval.datasets", list(self.datasets),
                f"two files share the name {repeated[0]!r} (a dataset is named by its file stem)",
            )
        if not self.seeds:
            raise ConfigError("eval.seeds = [] is invalid: list at least one seed, e.g. [0] or [0,1,2].")
        for seed in self.seeds:
            check_int("eval.seeds[*]", seed, low=0)
        if not isinstance(self.hacc, bool):
            fail("eval.hacc", self.hacc, "must be true or false")
        if not isinstance(self.per_effort, bool):
            fail("eval.per_effort", self.per_effort, "must be true or false")
        if len(set(self.seeds)) != len(self.seeds):
            fail("eval.seeds", list(self.seeds), "seeds must not repeat (a repeated seed repeats its samples)")


def dataset_name(path: str) -> str:
    """The name a prompt file is reported under: its file name without folder and extension."""
    return os.path.splitext(os.path.basename(path))[0]

"""The grade function of a distill run, from megathink's own graders (`--grader`).

- `math` (default): `evaluation.batch_graders.grade_with_pool` over a `rewards.GraderPool`
  (`--grade-workers` processes, `--grade-timeout` seconds per answer): the last `\\boxed{}` of
  the answer region, then MATH-style normalisation and math-verify equivalence, the grading RL
  and `megathink eval` use for prompt files.
- `boxed`: `evaluation.graders.grade_boxed`, an exact match of the last `\\boxed{}` with the
  reference, whitespace removed; no worker processes (answers with several spellings of the
  same value count as wrong).

Both judge the long form in "think" mode and the short form in "short" mode with the run's
control-token strings.
"""

from __future__ import annotations

import contextlib

from megathink.config.tokenizer import TokenizerConfig
from megathink.distill.settings import DistillSettings
from megathink.evaluation.batch_graders import GradeFn, grade_with_pool, grade_with_verifier
from megathink.evaluation.graders import grade_boxed
from megathink.rewards.grader_pool import GraderPool


def build_grader(settings: DistillSettings, stack: contextlib.ExitStack) -> GradeFn:
    """The grade function of `settings.grader`; a grader pool is closed when `stack` closes."""
    tokens = TokenizerConfig(
        think_token=settings.think_token, end_think_token=settings.end_think_token, short_token=settings.short_token
    )
    if settings.grader == "boxed":
        return grade_with_verifier(grade_boxed, tokens)
    pool = stack.enter_context(GraderPool(workers=settings.grade_workers, timeout_s=settings.grade_timeout_s))
    return grade_with_pool(pool, tokens)

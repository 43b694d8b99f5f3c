"""Batch grading functions for the policy evaluation: `GradeFn` and its two adapters.

A `GradeFn` takes the decoded responses *after* their control token (special tokens kept),
their modes ("short" or "think", never "none": the evaluation counts those wrong itself) and
the reference answers, and returns one verdict per response. `grade_with_verifier` wraps a
per-response verifier (the toy task's `ArithmeticTask.verify`, `graders.grade_boxed`);
`grade_with_pool` sends the extracted answers to a `GraderPool` in one batch (symbolic
equivalence, time- and memory-bounded, for the math datasets). `task_grader` picks between
them the way every command does (RL, `megathink eval`, `megathink presample`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

from megathink.config.run import RunConfig
from megathink.config.tokenizer import TokenizerConfig
from megathink.data.toy_task import ArithmeticTask
from megathink.evaluation.graders import Verifier
from megathink.rewards.grader_pool import GraderPool
from megathink.rewards.grading import BatchGrader, grade_responses

GradeFn = Callable[[Sequence[str], Sequence[str], Sequence[str]], list[bool]]
"""(texts after the control token, modes, references) -> whether each response is correct."""


def grade_with_verifier(verify: Verifier, tok_cfg: TokenizerConfig) -> GradeFn:
    """A `GradeFn` that calls `verify(text, mode, reference, <control tokens of tok_cfg>)` per response."""
    tokens = dict(
        end_think_token=tok_cfg.end_think_token, think_token=tok_cfg.think_token, short_token=tok_cfg.short_token
    )

    def grade(texts: Sequence[str], modes: Sequence[str], references: Sequence[str]) -> list[bool]:
        return [bool(verify(text, mode, ref, **tokens)) for text, mode, ref in zip(texts, modes, references)]

    return grade


def grade_with_pool(pool: BatchGrader, tok_cfg: TokenizerConfig) -> GradeFn:
    """A `GradeFn` over `rewards.grade_responses` with `pool` (a `GraderPool`) as the grader."""

    def grade(texts: Sequence[str], modes: Sequence[str], references: Sequence[str]) -> list[bool]:
        return grade_responses(
            texts, modes, references, pool,
            end_think_token=tok_cfg.end_think_token, think_token=tok_cfg.think_token, short_token=tok_cfg.short_token,
        )

    return grade


def task_grader(cfg: RunConfig, tok_cfg: TokenizerConfig, *, toy: bool, stack: contextlib.ExitStack) -> GradeFn:
    """The toy task's own verifier when `toy`; else a `GraderPool` sized by `cfg.reward`, closed
    when `stack` closes."""
    if toy:
        return grade_with_verifier(ArithmeticTask.verify, tok_cfg)
    return grade_with_pool(stack.enter_context(GraderPool.from_config(cfg.reward)), tok_cfg)

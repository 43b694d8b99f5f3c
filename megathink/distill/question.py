"""Distill one question: ask the instruct endpoint (short form), then the reasoning endpoint (long form),
grade every sample and pick the kept one per form.

The short request goes first because it is the cheap one: a question whose instruct request
fails costs no reasoning tokens. Long texts are taken as what follows the think token
(completions.py); a think token the model wrote itself at the start (a template that did not
open the thought) is removed, so `<think>` + long never doubles it. Short texts are kept as
they are. All samples of both forms are graded in one call of the grade function: the long
ones in "think" mode (answer after the single end-think token), the short ones in "short" mode.
"""

from __future__ import annotations

from collections.abc import Sequence

from megathink.data.types import PromptRecord, prompt_id
from megathink.distill.completions import Completion, CompletionClient
from megathink.distill.filter import pick, well_formed
from megathink.distill.outcomes import FormResult, QuestionResult, Sample
from megathink.distill.settings import DistillSettings
from megathink.evaluation.batch_graders import GradeFn
from megathink.rewards.modes import SHORT, THINK


def distill_question(
    record: PromptRecord,
    reasoning: CompletionClient,
    instruct: CompletionClient,
    grade: GradeFn,
    settings: DistillSettings,
) -> QuestionResult:
    """Both answer forms of `record`, graded and picked (raises transport errors as they come)."""
    short = instruct.complete(record.problem)
    long = [Completion(long_text(c.text, settings.think_token), c.finished, c.tokens)
            for c in reasoning.complete(record.problem)]
    texts = [c.text for c in long] + [c.text for c in short]
    modes = [THINK] * len(long) + [SHORT] * len(short)
    verdicts = grade(texts, modes, [record.answer] * len(texts))
    if len(verdicts) != len(texts):
        raise RuntimeError(f"the grade function returned {len(verdicts)} verdicts for {len(texts)} answers")
    return QuestionResult(
        prompt_id=prompt_id(record.problem),
        problem=record.problem,
        answer=record.answer,
        level=record.level,
        long=_form(long, verdicts[: len(long)], THINK, settings),
        short=_form(short, verdicts[len(long):], SHORT, settings),
    )


def long_text(text: str, think_token: str) -> str:
    """`text` without a think token the model opened its answer with (leading whitespace before it included)."""
    stripped = text.lstrip()
    return stripped[len(think_token):] if stripped.startswith(think_token) else text


def _form(completions: Sequence[Completion], verdicts: Sequence[bool], mode: str, settings: DistillSettings) -> FormResult:
    samples = []
    for completion, verdict in zip(completions, verdicts):
        shaped = well_formed(
            completion.text, mode, completion.finished, think_token=settings.think_token,
            end_think_token=settings.end_think_token, short_token=settings.short_token,
        )
        samples.append(Sample(
            text=completion.text, finished=completion.finished, well_formed=shaped,
            correct=shaped and bool(verdict), tokens=completion.tokens,
        ))
    return FormResult(
        picked=pick(samples, settings.pick),
        samples=len(samples),
        correct=sum(s.correct for s in samples),
        finished=sum(s.finished for s in samples),
    )

"""Evaluate a policy that chooses its own mode: accuracy, length and think ratio per level.

ALGORITHMS.md section 3: per dataset (and per difficulty level where records carry one), the
accuracy, the mean response length in tokens and the think ratio, over several seeds. Nothing
is forced here (the forced-mode table of the SFT stage is `forced_mode.py`): every prompt is
rendered by the chat template and the engine samples the whole response, control token
included. The mode is read from the first generated token (`rewards.detect_mode`); a
response without a control token is wrong and is never sent to the grader. The text after
the control token (the trailing stop token removed, other special tokens kept) goes to the
`GradeFn` with the mode and the reference answer.

With `tokenizer.template="adaptthink"` the prompt already ends with `<think>\n` (ALGORITHMS.md
section 2), so the modes are AdaptThink's: NoThinking ("short": the first generated token is
`</think>`, graded on the text after it) or Thinking ("think": anything else, graded on the
whole response, which must then hold exactly one `</think>`); "none" cannot occur, and the
think ratio is 1 - the NoThinking ratio.

Each seed is one `engine.generate` call per dataset with `SamplingParams(seed=seed)`, and
`params.n` responses per prompt (1 gives the papers' "one sample per prompt per seed"); all
responses of all seeds are pooled into the row metrics. A dataset's samples depend only on its
own records, the seed and the weights, not on which other datasets are evaluated with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Union

from megathink.config.tokenizer import TokenizerConfig
from megathink.config.validation import fail
from megathink.data.chat_template import encode_prompt
from megathink.data.types import HybridSFTRecord, PromptRecord, TokenizerBundle
from megathink.evaluation.batch_graders import GradeFn
from megathink.evaluation.policy_report import Judged, PolicyEvalReport, PolicyEvalRow, dataset_rows
from megathink.rewards.modes import NONE, SHORT, THINK, detect_mode
from megathink.rollout.protocol import RolloutEngine
from megathink.rollout.types import RolloutRequest, Sample, SamplingParams

EvalRecord = Union[PromptRecord, HybridSFTRecord]
"""Anything with `.problem`, `.answer` and `.level`."""


def evaluate_policy(
    engine: RolloutEngine,
    bundle: TokenizerBundle,
    tok_cfg: TokenizerConfig,
    datasets: Mapping[str, Sequence[EvalRecord]],
    params: SamplingParams,
    grade: GradeFn,
    *,
    seeds: Sequence[int],
) -> PolicyEvalReport:
    """Sample every prompt of every dataset once per seed (`params.n` times), grade, and tabulate.

    `params.stop_token_ids` should hold the tokenizer's EOS (nothing is implicit). Datasets with
    no records get no rows.
    """
    if len(seeds) == 0:
        fail("seeds", list(seeds), "give at least one sampling seed")
    rows: list[PolicyEvalRow] = []
    for name, records in datasets.items():
        requests = [
            RolloutRequest(encode_prompt(bundle, record.problem, tok_cfg), group_id=index)
            for index, record in enumerate(records)
        ]
        judged: list[Judged] = []
        for seed in seeds:
            samples = engine.generate(requests, replace(params, seed=int(seed)))
            judged += judge_samples(samples, records, bundle, grade, template=tok_cfg.template)
        rows += dataset_rows(name, judged)
    sampling = {
        "temperature": params.temperature, "top_p": params.top_p, "top_k": params.top_k,
        "max_new_tokens": params.max_new_tokens, "n": params.n,
    }
    return PolicyEvalReport(rows=rows, seeds=[int(s) for s in seeds], sampling=sampling)


def judge_samples(
    samples: Sequence[Sample],
    records: Sequence[EvalRecord],
    bundle: TokenizerBundle,
    grade: GradeFn,
    *,
    template: str = "thinkless",
) -> list[Judged]:
    """Mode, correctness, length and truncation of each sample (`group_id` indexes `records`)."""
    chosen = [response_mode(sample, bundle, template) for sample in samples]
    modes = [mode for mode, _ in chosen]
    graded = [i for i, mode in enumerate(modes) if mode != NONE]
    verdicts = grade(
        [response_text(samples[i], bundle, start=chosen[i][1]) for i in graded],
        [modes[i] for i in graded],
        [str(records[samples[i].group_id].answer) for i in graded],
    )
    if len(verdicts) != len(graded):
        raise RuntimeError(f"the grade function returned {len(verdicts)} verdicts for {len(graded)} responses")
    correct = [False] * len(samples)
    for i, verdict in zip(graded, verdicts):
        correct[i] = bool(verdict)
    return [
        Judged(
            prompt_index=sample.group_id,
            level=records[sample.group_id].level,
            mode=mode,
            correct=ok,
            tokens=sample.num_generated,
            truncated=sample.finish_reason == "length",
        )
        for sample, mode, ok in zip(samples, modes, correct)
    ]


def response_mode(sample: Sample, bundle: TokenizerBundle, template: str) -> tuple[str, int]:
    """(mode, index of the first response token of the graded text) under the prompt template."""
    if template == "adaptthink":
        if sample.response_ids[:1] == [bundle.control.end_think]:
            return SHORT, 1
        return THINK, 0
    return detect_mode(sample.response_ids, bundle.control), 1


def response_text(sample: Sample, bundle: TokenizerBundle, *, start: int = 1) -> str:
    """The decoded response from token `start` on (1: after the control token), the final stop token removed."""
    body = sample.response_ids[start:]
    if sample.finish_reason == "stop" and body:
        body = body[:-1]
    return bundle.tokenizer.decode(body, skip_special_tokens=False)

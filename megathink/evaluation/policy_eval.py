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
`params.n` responses per prompt (1 gives the papers' "one sample per prompt per seed"), so
every prompt has k = len(seeds) x params.n samples; all responses of all seeds are pooled into
the row metrics, and avg@k / pass@k are taken per prompt over its k (`hybrid_metrics`). A
dataset's samples depend only on its own records, the seed and the weights, not on which other
datasets are evaluated with it.

With `forced=True` every prompt is also sampled k times with each mode forced
(`forced_mode.sample_forced_modes`, same engine, params and seeds): the rows then carry the
forced modes' avg@k / pass@k / tokens / mode rates, the oracle think rate and HAcc, and the
report the forced-mode table of each dataset. This is the standard adaptive-thinking
evaluation of `megathink eval` and the stages (docs/ARCHITECTURE.md, "Evaluation").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Union

from megathink.config.evaluation import EvalConfig
from megathink.config.tokenizer import TokenizerConfig
from megathink.config.validation import fail
from megathink.data.chat_template import encode_record_prompt
from megathink.data.types import HybridSFTRecord, PromptRecord, TokenizerBundle
from megathink.evaluation.batch_graders import GradeFn
from megathink.evaluation.forced_mode import ModeEvalRow, forced_rows, sample_forced_modes
from megathink.evaluation.policy_report import Judged, PolicyEvalReport, PolicyEvalRow, dataset_rows
from megathink.evaluation.responses import response_mode, response_text
from megathink.rewards.modes import NONE
from megathink.rollout.protocol import RolloutEngine
from megathink.rollout.types import RolloutRequest, Sample, SamplingParams

__all__ = ["EvalRecord", "eval_params", "evaluate_policy", "judge_samples", "response_mode", "response_text"]

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
    forced: bool = False,
    thinking_opener: Sequence[int] = (),
) -> PolicyEvalReport:
    """Sample every prompt of every dataset once per seed (`params.n` times), grade, and tabulate;
    with `forced`, also each mode forced (`thinking_opener`: AdaptThink's forced think opener).

    `params.stop_token_ids` should hold the tokenizer's EOS (nothing is implicit). Datasets with
    no records get no rows.
    """
    if len(seeds) == 0:
        fail("seeds", list(seeds), "give at least one sampling seed")
    rows: list[PolicyEvalRow] = []
    tables: dict[str, list[ModeEvalRow]] = {}  # dataset -> its forced-mode table
    for name, records in datasets.items():
        requests = [
            RolloutRequest(encode_record_prompt(bundle, record, tok_cfg), group_id=index)  # with its budget, if any
            for index, record in enumerate(records)
        ]
        judged: list[Judged] = []
        for seed in seeds:
            samples = engine.generate(requests, replace(params, seed=int(seed)))
            judged += judge_samples(samples, records, bundle, grade, template=tok_cfg.template)
        by_mode = None
        if forced and records:
            by_mode = sample_forced_modes(
                engine, bundle, tok_cfg, records, params, grade, seeds=seeds, thinking_opener=thinking_opener
            )
            tables[name] = forced_rows(by_mode)
        rows += dataset_rows(name, judged, by_mode)
    sampling = {
        "temperature": params.temperature, "top_p": params.top_p, "top_k": params.top_k,
        "max_new_tokens": params.max_new_tokens, "n": params.n,
    }
    return PolicyEvalReport(rows=rows, seeds=[int(s) for s in seeds], sampling=sampling, forced=tables)


def eval_params(eval_cfg: EvalConfig, eos_id: int) -> SamplingParams:
    """The sampling of every evaluation (the policy's own choice and each mode forced): eval.temperature
    (0: greedy), eval.top_p, top-k off, eval.max_new_tokens, stopping on `eos_id`."""
    return SamplingParams(
        temperature=eval_cfg.temperature, top_p=eval_cfg.top_p, max_new_tokens=eval_cfg.max_new_tokens,
        stop_token_ids=(eos_id,),
    )


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

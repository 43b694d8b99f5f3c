"""Held-out evaluation with each mode forced in turn: how good is `<short>` vs `<think>` per level.

For every record, each seed of `seeds` and each mode, the prompt is sent to a `RolloutEngine`
with the mode's forced tokens as the request's `forced_prefix` (never sampled, counted as
response tokens): the local engine in this process (KV cache, per-sequence random streams) or
SGLang-protocol servers (`rollout.engine=sglang`), the same engines rollouts use. The
sampling is the evaluation's `SamplingParams`: greedy at eval.temperature = 0 (the argmax, as
`model.generate` chose it, so greedy tables are what the HF `generate` path this replaced gave),
else temperature sampling at eval.temperature with eval.top_p (1, off, by default) and top-k off,
each sequence from its own stream seeded by (seed, prompt, sample): deterministic, independent
of the batch size and of the engine, and never touching the training run's random state. The
response after the forced tokens is cut at the stop token (EOS), decoded with special tokens
kept and graded by the `GradeFn` in the forced mode.

Per level (plus an "all" row, always last), a `ModeEvalRow` reports, over the k =
len(seeds) x params.n samples of each prompt: accuracy (avg@k), pass@k, mean response tokens
(the forced tokens, the tokens after them and the closing EOS; the prompt is never counted, as
the policy evaluation counts a response, so always-think lengths compare with a policy's), the
mode rate (share of responses whose first token reads as the forced mode, `hybrid_metrics`) and
two format rates: `format_ok` (ended with EOS within the cap; short: no think/end-think token;
think: exactly one end-think token and no think token) and `truncated` (no EOS in budget).
This is the Thinkless "forced mode" check that the SFT warm-up taught both modes; with
`tokenizer.template="adaptthink"` short is NoThinking (`</think>` forced after the prompt's
`<think>\\n`) and think is the thinking opener, or the model's own unforced response when there
is none (`forced_tokens`).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Optional

from megathink.config.tokenizer import TokenizerConfig
from megathink.config.validation import fail
from megathink.data.chat_template import encode_record_prompt
from megathink.data.types import TokenizerBundle
from megathink.evaluation.batch_graders import GradeFn
from megathink.evaluation.hybrid_metrics import avg_at_k, mode_rate, pass_at_k, samples_per_prompt
from megathink.evaluation.judged import Judged
from megathink.evaluation.responses import response_mode, response_text
from megathink.rewards.modes import SHORT, THINK
from megathink.rollout.protocol import RolloutEngine
from megathink.rollout.types import RolloutRequest, Sample, SamplingParams

MODES = (SHORT, THINK)


@dataclass
class ModeEvalRow:
    """Forced-mode results of one difficulty level ("all" = every record, "none" = no level)."""

    level: str
    n: int
    """Prompts (each sampled k times per mode)."""
    short_acc: float
    """avg@k of the forced-short responses (the share of correct ones: every prompt has k)."""
    think_acc: float
    short_tokens: float
    """Mean response tokens (forced tokens included, prompt excluded)."""
    think_tokens: float
    short_format_ok: float
    think_format_ok: float
    short_truncated: float
    think_truncated: float
    k: int = 1
    """Samples per prompt and mode: len(eval.seeds) x samples per seed."""
    short_pass_at_k: Optional[float] = None
    """Share of prompts with at least one correct forced-short response among their k."""
    think_pass_at_k: Optional[float] = None
    short_mode_rate: Optional[float] = None
    """Share of forced-short responses whose first token reads as short (NoThinking)."""
    think_mode_rate: Optional[float] = None
    """Share of forced-think responses whose first token reads as think (below 1 only when
    nothing is forced for think: AdaptThink's template without an opener)."""


def forced_tokens(
    mode: str, bundle: TokenizerBundle, template: str, thinking_opener: Sequence[int] = ()
) -> list[int]:
    """The token(s) that force `mode` after a prompt rendered with `template`.

    thinkless: the control token (`<short>` / `<think>`). adaptthink (the prompt ends with
    `<think>\\n`): `</think>` for short (NoThinking); for think the `thinking_opener` ids, or
    nothing (a warmed-up model thinks by default). The whole response, forced opener
    included, is then judged as a Thinking response.
    """
    if template == "adaptthink":
        return [bundle.control.end_think] if mode == SHORT else list(thinking_opener)
    return [bundle.control.short if mode == SHORT else bundle.control.think]


def sample_forced_modes(
    engine: RolloutEngine,
    bundle: TokenizerBundle,
    tok_cfg: TokenizerConfig,
    records: Sequence[Any],
    params: SamplingParams,
    grade: GradeFn,
    *,
    seeds: Sequence[int],
    thinking_opener: Sequence[int] = (),
) -> dict[str, list[Judged]]:
    """mode -> the judged responses of every record, seed and sample with that mode forced.

    records: objects with `.problem`, `.answer` and `.level` (PromptRecord, HybridSFTRecord);
    `Judged.prompt_index` indexes them. One `engine.generate` call per seed and mode, with
    `params.seed = seed`; `params.stop_token_ids` should hold the EOS.
    """
    if len(seeds) == 0:
        fail("seeds", list(seeds), "give at least one sampling seed")
    judged: dict[str, list[Judged]] = {mode: [] for mode in MODES}
    if not records:
        return judged
    prompts = [encode_record_prompt(bundle, r, tok_cfg) for r in records]  # with its effort budget, if any
    for seed in seeds:
        for mode in MODES:
            forced = forced_tokens(mode, bundle, tok_cfg.template, thinking_opener)
            requests = [RolloutRequest(p, group_id=i, forced_prefix=forced) for i, p in enumerate(prompts)]
            samples = engine.generate(requests, replace(params, seed=int(seed)))
            judged[mode] += judge_forced(samples, mode, records, bundle, tok_cfg, grade)
    return judged


def judge_forced(
    samples: Sequence[Sample], mode: str, records: Sequence[Any], bundle: TokenizerBundle,
    tok_cfg: TokenizerConfig, grade: GradeFn,
) -> list[Judged]:
    """Grade each sample in the forced `mode` on its text after the forced tokens (`group_id` indexes `records`)."""
    texts = [response_text(s, bundle, start=s.forced) for s in samples]
    verdicts = grade(texts, [mode] * len(samples), [str(records[s.group_id].answer) for s in samples])
    if len(verdicts) != len(samples):
        raise RuntimeError(f"the grade function returned {len(verdicts)} verdicts for {len(samples)} responses")
    out = []
    for sample, text, verdict in zip(samples, texts, verdicts):
        truncated = sample.finish_reason == "length"
        level = records[sample.group_id].level
        out.append(Judged(
            prompt_index=sample.group_id, level=None if level is None else int(level),
            mode=response_mode(sample, bundle, tok_cfg.template)[0], correct=bool(verdict),
            tokens=len(sample.response_ids), truncated=truncated,
            format_ok=_shape_ok(text, mode, tok_cfg) and not truncated,
        ))
    return out


def forced_rows(judged: Mapping[str, Sequence[Judged]]) -> list[ModeEvalRow]:
    """Rows per level (numeric levels first, then "none" for records without one) and a final
    "all" row, from `sample_forced_modes`' output; [] when nothing was sampled."""
    if not judged[SHORT]:
        return []
    groups: dict[str, set[int]] = defaultdict(set)
    for item in judged[SHORT]:
        groups[_level_name(item.level)].add(item.prompt_index)
    ordered = sorted(groups, key=lambda lvl: (not lvl.isdigit(), int(lvl) if lvl.isdigit() else 0, lvl))
    rows = [_row(lvl, {m: [j for j in judged[m] if j.prompt_index in groups[lvl]] for m in MODES}) for lvl in ordered]
    return rows + [_row("all", judged)]


def evaluate_forced_modes(
    engine: RolloutEngine,
    bundle: TokenizerBundle,
    tok_cfg: TokenizerConfig,
    records: Sequence[Any],
    params: SamplingParams,
    grade: GradeFn,
    *,
    seeds: Sequence[int] = (0,),
    thinking_opener: Sequence[int] = (),
) -> list[ModeEvalRow]:
    """`forced_rows(sample_forced_modes(...))`: rows per level and a final "all" row ([] without records)."""
    return forced_rows(sample_forced_modes(
        engine, bundle, tok_cfg, records, params, grade, seeds=seeds, thinking_opener=thinking_opener
    ))


def format_mode_table(rows: Sequence[ModeEvalRow]) -> str:
    """An aligned text table: accuracy forced short / forced think, mean tokens, format rates.

    An "all" row (the n-weighted mean of the others) is added when `rows` has none.
    """
    rows = list(rows)
    if rows and not any(r.level == "all" for r in rows):
        rows.append(_combine(rows))
    header = ("level", "n", "acc short", "acc think", "tok short", "tok think", "fmt short", "fmt think")
    lines = [header]
    for r in rows:
        lines.append((
            r.level, str(r.n), f"{100 * r.short_acc:.1f}%", f"{100 * r.think_acc:.1f}%",
            f"{r.short_tokens:.1f}", f"{r.think_tokens:.1f}",
            f"{100 * r.short_format_ok:.1f}%", f"{100 * r.think_format_ok:.1f}%",
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))
        for line in lines
    )


def save_eval_rows(rows: Sequence[ModeEvalRow], path: Path) -> Path:
    """Write the rows as a json list (atomically: temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def summary_metrics(rows: Sequence[ModeEvalRow], prefix: str = "eval") -> dict[str, float]:
    """Flat metrics of the "all" row (and per-level accuracies) for the metrics log."""
    out: dict[str, float] = {}
    for r in rows:
        tag = "" if r.level == "all" else f"_L{r.level}"
        out[f"{prefix}/short_acc{tag}"] = r.short_acc
        out[f"{prefix}/think_acc{tag}"] = r.think_acc
        if r.level == "all":
            out[f"{prefix}/short_tokens"] = r.short_tokens
            out[f"{prefix}/think_tokens"] = r.think_tokens
            for mode in MODES:
                value = getattr(r, f"{mode}_pass_at_k")
                if value is not None:
                    out[f"{prefix}/{mode}_pass_at_k"] = value
    return out


def _shape_ok(text: str, mode: str, tok_cfg: TokenizerConfig) -> bool:
    stray = tok_cfg.think_token in text or tok_cfg.short_token in text
    if mode == SHORT:
        return not stray and tok_cfg.end_think_token not in text
    return not stray and text.count(tok_cfg.end_think_token) == 1


def _level_name(level: Optional[int]) -> str:
    return "none" if level is None else str(level)


def _row(level: str, judged: Mapping[str, Sequence[Judged]]) -> ModeEvalRow:
    def mean(mode: str, field: str) -> float:
        items = judged[mode]
        return sum(float(getattr(j, field)) for j in items) / len(items)

    return ModeEvalRow(
        level=level, n=len({j.prompt_index for j in judged[SHORT]}),
        short_acc=avg_at_k(judged[SHORT]), think_acc=avg_at_k(judged[THINK]),
        short_tokens=mean(SHORT, "tokens"), think_tokens=mean(THINK, "tokens"),
        short_format_ok=mean(SHORT, "format_ok"), think_format_ok=mean(THINK, "format_ok"),
        short_truncated=mean(SHORT, "truncated"), think_truncated=mean(THINK, "truncated"),
        k=samples_per_prompt(judged[SHORT]),
        short_pass_at_k=pass_at_k(judged[SHORT]), think_pass_at_k=pass_at_k(judged[THINK]),
        short_mode_rate=mode_rate(judged[SHORT], SHORT), think_mode_rate=mode_rate(judged[THINK], THINK),
    )


def _combine(rows: Sequence[ModeEvalRow]) -> ModeEvalRow:
    """The prompt-weighted mean of per-level rows (every prompt has k samples per mode)."""
    total = sum(r.n for r in rows)
    fields = [f for f in ModeEvalRow.__dataclass_fields__ if f not in ("level", "n", "k")]
    means: dict[str, Any] = {}
    for f in fields:
        values = [getattr(r, f) for r in rows]
        means[f] = None if any(v is None for v in values) else sum(v * r.n for v, r in zip(values, rows)) / max(total, 1)
    return ModeEvalRow(level="all", n=total, k=max(r.k for r in rows), **means)

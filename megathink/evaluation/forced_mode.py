"""Held-out evaluation with each mode forced in turn: how good is `<short>` vs `<think>` per level.

For every record and each mode, the prompt is followed by the forced control token and the
model continues it (`model.generate`, KV cache, left padding, greedy at eval.temperature = 0,
else plain temperature sampling with top-k/top-p off). The response after the control token
is cut at the first EOS, decoded with special tokens kept and judged by the task's verifier.

Per level (plus an "all" row, always last), a `ModeEvalRow` reports accuracy, mean response
tokens (the control token, the tokens after it and the closing EOS: counted as the policy
evaluation counts a response, so always-think lengths compare with a policy's) and two format
rates: `format_ok` (ended with EOS within eval.max_new_tokens; short: no think/end-think token;
think: exactly one end-think token and no think token) and `truncated` (no EOS in budget).
This is the Thinkless "forced mode" check that the SFT warm-up taught both modes; the think
ratio of a freely choosing policy is measured by the RL evaluation instead. With
`tokenizer.template="adaptthink"` short is NoThinking (`</think>` forced after the prompt's
`<think>\n`) and think is the model's own unforced response (`forced_tokens`).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from megathink.config.evaluation import EvalConfig
from megathink.config.tokenizer import TokenizerConfig
from megathink.data.chat_template import encode_prompt
from megathink.data.types import TokenizerBundle
from megathink.evaluation.graders import Verifier
from megathink.models.protocol import PolicyBackend

MODES = ("short", "think")


@dataclass
class ModeEvalRow:
    """Forced-mode results of one difficulty level ("all" = every record, "none" = no level)."""

    level: str
    n: int
    short_acc: float
    think_acc: float
    short_tokens: float
    think_tokens: float
    short_format_ok: float
    think_format_ok: float
    short_truncated: float
    think_truncated: float


@dataclass
class _Judged:
    level: str
    correct: bool
    tokens: int
    format_ok: bool
    truncated: bool


def evaluate_forced_modes(
    backend: PolicyBackend,
    bundle: TokenizerBundle,
    tok_cfg: TokenizerConfig,
    records: Sequence[Any],
    eval_cfg: EvalConfig,
    verify: Verifier,
    *,
    seed: int = 0,
    thinking_opener: Sequence[int] = (),
) -> list[ModeEvalRow]:
    """Rows per level (sorted, numeric levels first) and a final "all" row.

    records: objects with `.problem`, `.answer` and `.level` (PromptRecord, HybridSFTRecord).
    Sampling (eval.temperature > 0) is seeded with `seed` inside a forked RNG, so evaluating
    never changes the training run's random stream. `thinking_opener`: token ids forced for
    think mode under the adaptthink template (AdaptThink's opener; none by default).
    """
    if not records:
        return []
    prompts = [encode_prompt(bundle, r.problem, tok_cfg) for r in records]
    judged: dict[str, list[_Judged]] = {}
    was_training = backend.model.training
    backend.model.eval()
    try:
        with torch.random.fork_rng(devices=_rng_devices(backend.device)):
            torch.manual_seed(seed)
            for mode in MODES:
                forced = forced_tokens(mode, bundle, tok_cfg.template, thinking_opener)
                responses = generate_responses(backend, bundle, [p + forced for p in prompts], eval_cfg)
                judged[mode] = [
                    _judge(ids, truncated, mode, record, bundle, tok_cfg, verify, forced=len(forced))
                    for (ids, truncated), record in zip(responses, records)
                ]
    finally:
        backend.model.train(was_training)
    return _rows(judged)


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
        return [bundle.control.end_think] if mode == "short" else list(thinking_opener)
    return [bundle.control.short if mode == "short" else bundle.control.think]


@torch.no_grad()
def generate_responses(
    backend: PolicyBackend, bundle: TokenizerBundle, inputs: Sequence[list[int]], eval_cfg: EvalConfig
) -> list[tuple[list[int], bool]]:
    """Continue each id list; return (generated ids up to and including EOS, truncated) per input."""
    from transformers import GenerationConfig

    sampling = eval_cfg.temperature > 0
    # Every knob is set explicitly so a checkpoint's generation_config.json (Qwen ships top_p,
    # repetition_penalty, ...) cannot change what "greedy" or "temperature T" means here.
    sampling_knobs = dict(temperature=eval_cfg.temperature, top_k=0, top_p=1.0) if sampling else {}
    gen_cfg = GenerationConfig(
        max_new_tokens=eval_cfg.max_new_tokens,
        do_sample=sampling,
        repetition_penalty=1.0,
        num_beams=1,
        use_cache=True,
        eos_token_id=bundle.eos_id,
        pad_token_id=bundle.pad_id,
        **sampling_knobs,
    )
    results: list[tuple[list[int], bool]] = []
    for start in range(0, len(inputs), eval_cfg.batch_size):
        chunk = inputs[start : start + eval_cfg.batch_size]
        width = max(len(ids) for ids in chunk)
        input_ids = torch.full((len(chunk), width), bundle.pad_id, dtype=torch.long)  # [B, P] left padded
        attention_mask = torch.zeros((len(chunk), width), dtype=torch.long)  # [B, P]
        for row, ids in enumerate(chunk):
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, width - len(ids) :] = 1
        out = backend.model.generate(
            input_ids=input_ids.to(backend.device),
            attention_mask=attention_mask.to(backend.device),
            generation_config=gen_cfg,
        )  # [B, P + new]
        for new in out[:, width:].tolist():
            if bundle.eos_id in new:
                results.append((new[: new.index(bundle.eos_id) + 1], False))
            else:
                results.append((new, True))
    return results


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
    return out


def _judge(
    ids: list[int], truncated: bool, mode: str, record: Any, bundle: TokenizerBundle,
    tok_cfg: TokenizerConfig, verify: Verifier, *, forced: int = 1,
) -> _Judged:
    body = ids if truncated else ids[:-1]  # drop the closing EOS before decoding
    text = bundle.tokenizer.decode(body, skip_special_tokens=False)
    tokens = dict(end_think_token=tok_cfg.end_think_token, think_token=tok_cfg.think_token, short_token=tok_cfg.short_token)
    correct = bool(verify(text, mode, str(record.answer), **tokens))
    stray = tok_cfg.think_token in text or tok_cfg.short_token in text
    if mode == "short":
        shape_ok = not stray and tok_cfg.end_think_token not in text
    else:
        shape_ok = not stray and text.count(tok_cfg.end_think_token) == 1
    level = "none" if getattr(record, "level", None) is None else str(record.level)
    return _Judged(level, correct, forced + len(ids), shape_ok and not truncated, truncated)  # + the forced token


def _rows(judged: dict[str, list[_Judged]]) -> list[ModeEvalRow]:
    groups: dict[str, list[int]] = defaultdict(list)
    for index, item in enumerate(judged["short"]):
        groups[item.level].append(index)
    ordered = sorted(groups, key=lambda lvl: (not lvl.isdigit(), int(lvl) if lvl.isdigit() else 0, lvl))
    everything = list(range(len(judged["short"])))
    return [_row(lvl, groups[lvl], judged) for lvl in ordered] + [_row("all", everything, judged)]


def _row(level: str, indices: list[int], judged: dict[str, list[_Judged]]) -> ModeEvalRow:
    def mean(mode: str, field: str) -> float:
        return sum(float(getattr(judged[mode][i], field)) for i in indices) / len(indices)

    return ModeEvalRow(
        level=level, n=len(indices),
        short_acc=mean("short", "correct"), think_acc=mean("think", "correct"),
        short_tokens=mean("short", "tokens"), think_tokens=mean("think", "tokens"),
        short_format_ok=mean("short", "format_ok"), think_format_ok=mean("think", "format_ok"),
        short_truncated=mean("short", "truncated"), think_truncated=mean("think", "truncated"),
    )


def _combine(rows: Sequence[ModeEvalRow]) -> ModeEvalRow:
    total = sum(r.n for r in rows)
    fields = [f for f in ModeEvalRow.__dataclass_fields__ if f not in ("level", "n")]
    means = {f: sum(getattr(r, f) * r.n for r in rows) / max(total, 1) for f in fields}
    return ModeEvalRow(level="all", n=total, **means)


def _rng_devices(device: torch.device) -> list[Any]:
    return [device] if device.type == "cuda" else []

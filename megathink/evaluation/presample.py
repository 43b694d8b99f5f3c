"""`run_presample(cfg)`: AdaptThink's reference pre-sampling pass (the library side of `megathink presample`).

ALGORITHMS.md section 2: `Rbar_ref(x)` is the mean accuracy of K = `algorithm.presample_k`
samples of the reference model (`model.path`, a HF directory) on each training prompt x,
computed once before training. The training prompts are the `data.train_path` file
(`data.source=files`) or the toy task's train split (`data.source=toy`, its first
`data.toy_rl_prompts` when set): the prompts RL samples from (`data.rl_prompts.rl_prompt_split`), deduplicated by
`prompt_id` in file order; `algorithm.presample_limit > 0` keeps only the first N of them.

Sampling: each prompt is rendered by the configured chat template (AdaptThink needs
`tokenizer.template=adaptthink`, so the prompt ends with `<think>\\n` and the model is in
Thinking mode simply by being sampled; nothing is forced) and continued K times by the
`rollout.engine` at the rollout settings (`rollout.temperature`, `top_p`, `top_k`,
`max_new_tokens`), stopping on EOS: the local engine on the reference model loaded here, or
SGLang-protocol servers attached (`rollout.sglang.urls`, told to load `model.path`) or launched
on `model.path` (`eval_engine`; no model is built here then unless the tokenizer grew the
vocabulary, and then on the CPU, to write the resized weights for the engines). One `generate`
call per prompt, seeded by `prompt_seed(trainer.seed, prompt_id)`, so a prompt's samples depend
on nothing else: a resumed run writes exactly the lines an uninterrupted one would, and the
engines' samples equal the local engine's through `megathink serve`.

Grading (the adapter `grade_thinking`): every response is judged in the "think" mode on its
whole text (the final stop token removed, special tokens kept): correct and well formed means
exactly one `</think>`, no `<think>`, and the last `\\boxed{}` after `</think>` equals the
reference. For the toy task that is `ArithmeticTask.verify(text, "think", ...)`; for prompt
files it is the rewards module's `extract_answer(text, "think")` checked by a `GraderPool`
sized by the `reward` section (`batch_graders.grade_with_pool`).

Output (format in `reference_accuracy`): one line per prompt, appended and fsync'ed after each
batch of `max(1, rollout.batch_size // K)` prompts; a rerun skips the prompts already there (a
torn last line is cut off and redone). At the end the mean Rbar_ref over the selected prompts
(and per level) is printed and written to `<output_dir>/presample_summary.json`. When every
prompt is already done, no model is loaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Union

import torch
from tqdm import tqdm

from megathink.config.run import RunConfig
from megathink.config.tokenizer import TokenizerConfig
from megathink.data.chat_template import encode_record_prompt
from megathink.data.tokenizer import load_tokenizer
from megathink.data.rl_prompts import rl_prompt_split
from megathink.data.types import HybridSFTRecord, PromptRecord, TokenizerBundle, prompt_id
from megathink.errors import ConfigError, MissingPathError
from megathink.evaluation.batch_graders import GradeFn, task_grader
from megathink.evaluation.eval_engine import model_device, needs_local_model, open_eval_engine
from megathink.evaluation.responses import response_text
from megathink.evaluation.reference_accuracy import (
    FIELD,
    ReferenceAccuracy,
    append_rows,
    cut_torn_tail,
    reference_accuracy_file,
)
from megathink.models.hf_backend import build_hf_backend
from megathink.rewards.modes import THINK
from megathink.rollout.protocol import RolloutEngine
from megathink.rollout.types import RolloutRequest, Sample, SamplingParams

log = logging.getLogger(__name__)

SUMMARY_FILE = "presample_summary.json"

TrainRecord = Union[PromptRecord, HybridSFTRecord]
"""A training prompt: anything with `.problem`, `.answer` and `.level`."""


@dataclass
class PresampleResult:
    """What `run_presample` did: Rbar_ref of every selected prompt and where it is written."""

    path: Path
    """The Rbar_ref jsonl file."""
    summary_path: Path
    """`<output_dir>/presample_summary.json`."""
    rbar: dict[str, float]
    """prompt_id -> Rbar_ref of every selected training prompt."""
    sampled: int
    """Prompts sampled by this run."""
    skipped: int
    """Prompts already in the file (a resumed run)."""
    mean_rbar: float
    """Mean Rbar_ref over the selected prompts."""


def run_presample(cfg: RunConfig) -> PresampleResult:
    """Write Rbar_ref of every training prompt to the reference-accuracy file (resuming it)."""
    k = cfg.algorithm.presample_k
    records, toy = training_prompts(cfg)
    path = reference_accuracy_file(cfg)
    done = cut_torn_tail(path)
    _check_k(done, k, path)
    todo = [record for record in records if prompt_id(record.problem) not in done]
    if todo:
        if cfg.tokenizer.template != "adaptthink":
            log.warning("tokenizer.template = %r: AdaptThink's Rbar_ref needs tokenizer.template=adaptthink",
                        cfg.tokenizer.template)
        new_rows = _sample_prompts(cfg, todo, toy, path, skipped=len(records) - len(todo))
        done.update({row.prompt_id: row for row in new_rows})
    selected = [done[prompt_id(record.problem)] for record in records]
    result = PresampleResult(
        path=path,
        summary_path=Path(cfg.output_dir) / SUMMARY_FILE,
        rbar={row.prompt_id: row.rbar for row in selected},
        sampled=len(todo),
        skipped=len(records) - len(todo),
        mean_rbar=sum(row.rbar for row in selected) / len(selected),
    )
    _write_summary(cfg, result, selected)
    if cfg.logger.console:
        print(
            f"presample: mean Rbar_ref = {result.mean_rbar:.4f} over {len(selected)} prompts (K = {k}; "
            f"{result.sampled} sampled now, {result.skipped} already done); wrote {path}",
            flush=True,
        )
    return result


def training_prompts(cfg: RunConfig) -> tuple[list[TrainRecord], bool]:
    """(the distinct RL training prompts in order, first `algorithm.presample_limit` of them; whether toy)."""
    records, _ = rl_prompt_split(cfg.data, command="megathink presample")
    distinct: dict[str, TrainRecord] = {}
    for record in records:
        distinct.setdefault(prompt_id(record.problem), record)
    chosen = list(distinct.values())  # never empty: toy_train_size >= 1, and a prompt file has rows
    limit = cfg.algorithm.presample_limit
    return (chosen[:limit] if limit > 0 else chosen), cfg.data.source == "toy"


def prompt_seed(seed: int, pid: str) -> int:
    """The sampling seed of prompt `pid` under `trainer.seed = seed` (63 bits)."""
    digest = hashlib.sha256(f"presample:{seed}:{pid}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def presample_prompt(
    engine: RolloutEngine,
    bundle: TokenizerBundle,
    tok_cfg: TokenizerConfig,
    record: TrainRecord,
    params: SamplingParams,
    grade: GradeFn,
    *,
    seed: int,
) -> ReferenceAccuracy:
    """Sample `params.n` responses to one prompt (seeded by `prompt_seed(seed, ...)`) and count the correct ones."""
    pid = prompt_id(record.problem)
    request = RolloutRequest(encode_record_prompt(bundle, record, tok_cfg), group_id=0)  # with its budget, if any
    samples = engine.generate([request], replace(params, seed=prompt_seed(seed, pid)))
    verdicts = grade_thinking(samples, [str(record.answer)] * len(samples), bundle, grade)
    return ReferenceAccuracy(prompt_id=pid, k=len(samples), correct=sum(verdicts), level=record.level)


def grade_thinking(
    samples: Sequence[Sample], references: Sequence[str], bundle: TokenizerBundle, grade: GradeFn
) -> list[bool]:
    """Whether each whole response is correct and well formed as a Thinking-mode response."""
    texts = [response_text(sample, bundle, start=0) for sample in samples]
    verdicts = grade(texts, [THINK] * len(texts), list(references))
    if len(verdicts) != len(texts):
        raise RuntimeError(f"the grade function returned {len(verdicts)} verdicts for {len(texts)} responses")
    return [bool(v) for v in verdicts]


def _sample_prompts(
    cfg: RunConfig, todo: Sequence[TrainRecord], toy: bool, path: Path, *, skipped: int
) -> list[ReferenceAccuracy]:
    """Load the reference model, sample and grade every prompt of `todo`, appending to `path` per batch."""
    if cfg.model.path is None:
        raise ConfigError(
            "model.path = None is invalid for megathink presample: point it at the reference model's HF "
            "directory (the model AdaptThink training starts from)."
        )
    if not Path(cfg.model.path).is_dir():
        raise MissingPathError(
            f"model.path = {cfg.model.path!r} is not a directory: point it at the reference model's HF "
            "directory (config.json + *.safetensors + tokenizer)."
        )
    bundle = load_tokenizer(cfg.tokenizer)
    if cfg.trainer.num_threads > 0:
        torch.set_num_threads(cfg.trainer.num_threads)
    backend = None
    if needs_local_model(cfg, cfg.model.path, bundle):  # the local engine, or resized weights for the engines
        backend = build_hf_backend(cfg.model, bundle, device=model_device(cfg), seed=cfg.trainer.seed)
    k = cfg.algorithm.presample_k
    params = SamplingParams(
        temperature=cfg.rollout.temperature,
        top_p=cfg.rollout.top_p,
        top_k=cfg.rollout.top_k,
        max_new_tokens=cfg.rollout.max_new_tokens,
        stop_token_ids=(bundle.eos_id,),
        n=k,
    )
    per_batch = max(1, cfg.rollout.batch_size // k)
    written: list[ReferenceAccuracy] = []
    progress = tqdm(
        total=skipped + len(todo), initial=skipped, desc="presample", unit="prompt",
        disable=not cfg.logger.progress_bar, dynamic_ncols=True,
    )
    with contextlib.ExitStack() as stack:
        engine = open_eval_engine(
            cfg, sampler=backend, bundle=bundle, model_dir=cfg.model.path, out_dir=Path(cfg.output_dir),
            batch_size=cfg.rollout.batch_size, stack=stack,
        )
        stack.callback(progress.close)
        grade = task_grader(cfg, cfg.tokenizer, toy=toy, stack=stack)
        for start in range(0, len(todo), per_batch):
            rows = [
                presample_prompt(engine, bundle, cfg.tokenizer, record, params, grade, seed=cfg.trainer.seed)
                for record in todo[start : start + per_batch]
            ]
            append_rows(path, rows)
            written += rows
            progress.update(len(rows))
    return written




def _check_k(done: dict[str, ReferenceAccuracy], k: int, path: Path) -> None:
    other = sorted({row.k for row in done.values() if row.k != k})
    if other:
        raise ConfigError(
            f"algorithm.presample_k = {k} is invalid with {FIELD} = {str(path)!r}, whose lines were written with "
            f"k = {other[0]}: rerun with algorithm.presample_k={other[0]}, or give a new {FIELD}."
        )


def _write_summary(cfg: RunConfig, result: PresampleResult, rows: Sequence[ReferenceAccuracy]) -> None:
    by_level: dict[str, list[float]] = {}
    for row in rows:
        if row.level is not None:
            by_level.setdefault(str(row.level), []).append(row.rbar)
    summary: dict[str, Any] = {
        "reference_accuracy_path": str(result.path),
        "prompts": len(rows),
        "sampled": result.sampled,
        "skipped": result.skipped,
        "k": cfg.algorithm.presample_k,
        "mean_rbar": result.mean_rbar,
        "mean_rbar_by_level": {level: sum(v) / len(v) for level, v in sorted(by_level.items(), key=_level_order)},
        "model": cfg.model.path,
        "template": cfg.tokenizer.template,
        "sampling": {
            "temperature": cfg.rollout.temperature, "top_p": cfg.rollout.top_p, "top_k": cfg.rollout.top_k,
            "max_new_tokens": cfg.rollout.max_new_tokens, "seed": cfg.trainer.seed,
        },
    }
    result.summary_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = result.summary_path.with_name(f".{result.summary_path.name}.tmp")
    tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, result.summary_path)


def _level_order(item: tuple[str, list[float]]) -> int:
    return int(item[0])

"""The RL stage (Thinkless stage 2): rollout -> grade -> advantages -> updates -> sync -> log.

`run_rl(cfg, out_dir, init_dir=None)` trains the policy with GRPO or DeGRPO (`algorithm`)
on the Thinkless reward table (`reward`), starting from `init_dir` (the SFT stage's `hf/`)
or `model.path`. Each step: `rl.prompts_per_step` prompts, `rollout.n_samples` responses
each from the local engine; the mode is read from the first response token; correctness
from the task's verifier (toy) or the time-bounded `GraderPool` (prompt files); group-relative
advantages; the old policy's log-probs are recomputed by the trainer at the rollout
temperature (and their mean absolute gap to the engine's is logged; with one mini-batch the
update's own forward pass serves, see rl_update.py); then `rl.mini_batches` optimizer steps. It writes, in `out_dir`:

    resolved_config.yaml, metrics.jsonl (+ tensorboard/), checkpoints/step_NNNNNNNN/,
    eval/before.json and eval/after.json (the policy's own choice of mode, per level),
    eval/forced_after.json (the final model forced short / forced think), summary.json, hf/

Departure from the authors' loop: no dynamic batch-size balancing; micro-batches see a fixed
number of sequences.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from tqdm import tqdm

from megathink.algorithms import group_advantages
from megathink.config.run import RunConfig
from megathink.data.chat_template import encode_prompt
from megathink.data.loaders import load_prompts
from megathink.data.prompt_sampler import PromptSampler
from megathink.data.tokenizer import load_tokenizer
from megathink.data.toy_task import ArithmeticTask, build_toy_datasets
from megathink.evaluation.batch_graders import task_grader
from megathink.evaluation.forced_mode import ModeEvalRow, evaluate_forced_modes, save_eval_rows
from megathink.evaluation.policy_eval import evaluate_policy, judge_samples
from megathink.evaluation.graders import Verifier
from megathink.evaluation.policy_report import ALL, PolicyEvalReport
from megathink.models.hf_backend import HFBackend, build_hf_backend
from megathink.rewards import thinkless_rewards
from megathink.rollout.local_engine import LocalEngine
from megathink.rollout.types import RolloutRequest, SamplingParams
from megathink.run_layout import HF_DIR
from megathink.trainer.checkpoint import checkpoint_root, resolve_resume, restore_checkpoint, save_checkpoint
from megathink.trainer.lr_schedule import build_scheduler
from megathink.trainer.metrics import MetricsLogger
from megathink.trainer.optim import build_adamw
from megathink.trainer.rl_batch import build_rl_batch, nonzero_advantage_rows
from megathink.trainer.rl_metrics import rollout_metrics
from megathink.trainer.rl_update import rl_update, score_batch
from megathink.trainer.stage_setup import prepare_stage

log = logging.getLogger(__name__)


@dataclass
class RLResult:
    final_step: int
    history: list[dict[str, float]]
    before: Optional[PolicyEvalReport]
    after: PolicyEvalReport
    summary: dict[str, Any]
    out_dir: Path


def run_rl(cfg: RunConfig, out_dir: Path, init_dir: Optional[Path] = None) -> RLResult:
    out_dir = Path(out_dir)
    ckpt_root = checkpoint_root(out_dir)
    resume_from = resolve_resume(cfg.checkpoint, ckpt_root)
    config_dict = prepare_stage(cfg, out_dir)

    model_cfg, tok_cfg = cfg.model, cfg.tokenizer
    if init_dir is not None:  # start from the previous stage's HF directory and its tokenizer
        model_cfg = dataclasses.replace(cfg.model, path=str(init_dir))
        tok_cfg = dataclasses.replace(cfg.tokenizer, kind="pretrained", path=str(init_dir))
    bundle = load_tokenizer(tok_cfg)
    train, evaluation, verify = _prompts(cfg)
    backend = build_hf_backend(model_cfg, bundle, device=cfg.trainer.device, seed=cfg.trainer.seed)
    reference = _frozen_copy(backend) if cfg.algorithm.kl_coef > 0 else None
    engine = LocalEngine(backend, pad_id=bundle.pad_id, batch_size=cfg.rollout.batch_size)
    optimizer = build_adamw(backend.named_parameters(), cfg.rl.optimizer)
    scheduler = build_scheduler(optimizer, cfg.rl.optimizer, cfg.rl.max_steps * cfg.rl.mini_batches)
    sampler = PromptSampler(len(train), cfg.rl.prompts_per_step, cfg.data.seed)
    prompt_ids = [encode_prompt(bundle, record.problem, tok_cfg) for record in train]

    step = 0
    if resume_from is not None:
        loaded = restore_checkpoint(
            resume_from, ckpt_root, model=backend.model, optimizer=optimizer, scheduler=scheduler
        )
        resume_from = loaded.path
        sampler.load_state_dict(loaded.data_state)
        step = int(loaded.trainer_state["step"])
        log.info("resumed RL from %s at step %d", resume_from, step)

    resources = contextlib.ExitStack()  # the grader pool (prompt files) and the metrics sinks
    grade = task_grader(cfg, tok_cfg, toy=verify is not None, stack=resources)
    metrics = resources.enter_context(MetricsLogger(out_dir, cfg.logger, out_dir.name, config_dict))
    eval_params = SamplingParams(
        temperature=cfg.eval.temperature, top_p=cfg.eval.top_p, max_new_tokens=cfg.eval.max_new_tokens,
        stop_token_ids=(bundle.eos_id,),
    )

    def evaluate(name: str) -> PolicyEvalReport:
        report = evaluate_policy(
            engine, bundle, tok_cfg, {"eval": evaluation}, eval_params, grade, seeds=cfg.eval.seeds
        )
        report.save(out_dir / "eval" / f"{name}.json")
        if cfg.logger.console:
            tqdm.write(f"policy evaluation ({name}, step {step}):\n{report.format_table()}", file=sys.stdout)
        metrics.log(step, report.flat_metrics(prefix=f"eval_{name}"))
        return report

    history: list[dict[str, float]] = []
    try:
        before = evaluate("before") if resume_from is None and evaluation else None
        progress = tqdm(
            total=cfg.rl.max_steps, initial=step, desc="rl", unit="step", file=sys.stderr,
            disable=not cfg.logger.progress_bar, mininterval=0.5 if sys.stderr.isatty() else 30.0,
        )
        started = time.monotonic()
        deadline = started + 60.0 * cfg.trainer.max_time_minutes if cfg.trainer.max_time_minutes > 0 else None
        while step < cfg.rl.max_steps:
            step_started = time.monotonic()
            indices = sampler.next()
            chosen = [train[i] for i in indices]
            requests = [RolloutRequest(prompt_ids=prompt_ids[i], group_id=g) for g, i in enumerate(indices)]
            params = SamplingParams(
                temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p, top_k=cfg.rollout.top_k,
                max_new_tokens=cfg.rollout.max_new_tokens, stop_token_ids=(bundle.eos_id,),
                n=cfg.rollout.n_samples, seed=cfg.trainer.seed * 1_000_003 + step,
            )
            samples = engine.generate(requests, params)
            judged = judge_samples(samples, chosen, bundle, grade, template=tok_cfg.template)
            rewards = thinkless_rewards([j.mode for j in judged], [j.correct for j in judged], cfg.reward)
            group_ids = torch.tensor([s.group_id for s in samples])
            advantages = group_advantages(
                torch.tensor(rewards, dtype=torch.float32), group_ids, std_normalize=cfg.algorithm.std_normalize
            )
            batch = build_rl_batch(samples, advantages, pad_id=bundle.pad_id)
            if cfg.rl.filter_zero_advantage:
                batch = batch.select(nonzero_advantage_rows(batch))
            row = rollout_metrics(judged, rewards)
            if batch.size:
                backend.train(False)
                score = dict(temperature=cfg.rollout.temperature, micro_batch_size=cfg.rl.micro_batch_size)
                old_logp = None  # one update per rollout step: on-policy, see rl_update
                if cfg.rl.mini_batches > 1:
                    old_logp = score_batch(backend, batch, **score)
                    diff = (old_logp - batch.rollout_logp).abs() * batch.response_mask
                    row["logprob_diff"] = float(diff.sum() / batch.response_mask.sum().clamp(min=1))
                ref_logp = score_batch(reference, batch, **score) if reference is not None else None
                row.update(rl_update(
                    backend, batch, old_logp, ref_logp, optimizer, scheduler,
                    algorithm=cfg.algorithm, rl=cfg.rl, temperature=cfg.rollout.temperature,
                ))
                engine.sync_weights(backend)
            step += 1
            seconds = time.monotonic() - step_started
            row.update(step_time=seconds, tokens_per_s=sum(len(s.response_ids) for s in samples) / max(seconds, 1e-9))
            history.append(row)
            progress.update(1)
            progress.set_postfix(reward=f"{row['reward']:.3f}", think=f"{row['think_ratio']:.2f}", refresh=False)
            if step % cfg.trainer.log_every == 0 or step == cfg.rl.max_steps:
                metrics.log(step, row)
            if cfg.checkpoint.save_every and step % cfg.checkpoint.save_every == 0:
                _checkpoint(cfg, ckpt_root, step, backend, optimizer, scheduler, sampler)
            if cfg.rl.eval_every and step % cfg.rl.eval_every == 0 and step < cfg.rl.max_steps:
                evaluate(f"step_{step:08d}")
            if deadline is not None and time.monotonic() >= deadline:
                log.info("trainer.max_time_minutes = %s reached at RL step %d", cfg.trainer.max_time_minutes, step)
                break
        progress.close()
        if not (cfg.checkpoint.save_every and step % cfg.checkpoint.save_every == 0):
            _checkpoint(cfg, ckpt_root, step, backend, optimizer, scheduler, sampler)
        after = evaluate("after")
        forced: list[ModeEvalRow] = []
        if verify is not None and evaluation:  # always-think / always-short baselines of the final model
            forced = evaluate_forced_modes(backend, bundle, tok_cfg, evaluation, cfg.eval, verify, seed=cfg.trainer.seed)
            save_eval_rows(forced, out_dir / "eval" / "forced_after.json")
        summary = build_summary(after, forced)
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        if cfg.logger.console:
            tqdm.write(format_summary(summary), file=sys.stdout)
        if cfg.checkpoint.save_hf:
            backend.save_hf(out_dir / HF_DIR, bundle.tokenizer)
    finally:
        resources.close()
    return RLResult(final_step=step, history=history, before=before, after=after, summary=summary, out_dir=out_dir)


def _prompts(cfg: RunConfig) -> tuple[list[Any], list[Any], Optional[Verifier]]:
    """(train prompts, eval prompts, the task's verifier or None for prompt files)."""
    if cfg.data.source == "toy":
        train, evaluation = build_toy_datasets(cfg.data)
        return train, evaluation, ArithmeticTask(cfg.data.levels, cfg.data.seed).verify
    assert cfg.data.train_path is not None  # RunConfig guarantees it for the rl stage
    train = load_prompts(cfg.data.train_path, cfg.data)
    evaluation = load_prompts(cfg.data.eval_path, cfg.data) if cfg.data.eval_path else []
    return train, evaluation, None


def _frozen_copy(backend: HFBackend) -> HFBackend:
    """The reference policy for the KL term: a frozen copy of the starting weights."""
    reference = copy.copy(backend)
    reference.model = copy.deepcopy(backend.model).eval().requires_grad_(False)
    return reference


def _checkpoint(
    cfg: RunConfig,
    root: Path,
    step: int,
    backend: HFBackend,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    sampler: PromptSampler,
) -> Path:
    """Atomic step checkpoint: weights, optimizer, schedule, RNG and the prompt sampler's position."""
    return save_checkpoint(
        root, step, model=backend.model, optimizer=optimizer, scheduler=scheduler,
        data_state=sampler.state_dict(), trainer_state={}, keep_last=cfg.checkpoint.keep_last,
    )


def build_summary(after: PolicyEvalReport, forced: list[ModeEvalRow]) -> dict[str, Any]:
    """The demo's summary: the trained policy per level and overall, next to the same model
    forced to always think / always answer short (None when there is no forced evaluation)."""
    rows = [row for row in after.rows if row.dataset == "eval"]
    overall = next(row.metrics for row in rows if row.level == ALL)
    forced_all = next((row for row in forced if row.level == ALL), None)
    return {
        "per_level": [
            {
                "level": int(row.level) if row.level.isdigit() else row.level,
                "think_ratio": row.metrics.think_ratio,
                "accuracy": row.metrics.accuracy,
                "mean_tokens": row.metrics.mean_tokens,
            }
            for row in rows
            if row.level != ALL
        ],
        "accuracy": overall.accuracy,
        "mean_tokens": overall.mean_tokens,
        "think_ratio": overall.think_ratio,
        "always_think_accuracy": forced_all.think_acc if forced_all else None,
        "always_think_mean_tokens": forced_all.think_tokens if forced_all else None,
        "always_short_accuracy": forced_all.short_acc if forced_all else None,
    }


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a few readable lines: the policy per level, then against always-think."""
    lines = ["RL summary (the policy chooses its mode):", "level  think ratio  accuracy  mean tokens"]
    for row in summary["per_level"]:
        lines.append(
            f"{row['level']!s:<5}  {100 * row['think_ratio']:10.1f}%  {100 * row['accuracy']:7.1f}%  {row['mean_tokens']:11.1f}"
        )
    lines.append(
        f"all    {100 * summary['think_ratio']:10.1f}%  {100 * summary['accuracy']:7.1f}%  {summary['mean_tokens']:11.1f}"
    )
    if summary["always_think_accuracy"] is not None:
        lines.append(
            f"always think: accuracy {100 * summary['always_think_accuracy']:.1f}%, "
            f"mean tokens {summary['always_think_mean_tokens']:.1f}; "
            f"always short: accuracy {100 * summary['always_short_accuracy']:.1f}%"
        )
    return "\n".join(lines)

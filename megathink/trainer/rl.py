"""The RL stage (Thinkless stage 2): rollout -> grade -> advantages -> updates -> sync -> log.

`run_rl(cfg, out_dir, init_dir=None)` trains the policy with the RL method `algorithm.name`
(`megathink.methods`: GRPO, DeGRPO, AdaptThink, ...), starting from `init_dir` (the SFT
stage's `hf/`) or `model.path`. The loop names no method: each step, `rl.prompts_per_step`
prompts go through the method's rollout plan, grading, rewards and advantages
(`methods.graded_rollout`; the mode is read from the first response token, correctness from
the task's verifier (toy) or the time-bounded `GraderPool` (prompt files)); the old policy's
log-probs are recomputed by the trainer at the rollout temperature (their mean absolute gap to
the engine's is logged; with one mini-batch the update's own forward pass serves, see
rl_update.py); then `rl.mini_batches` optimizer steps with the method's loss, and the
method's metrics. The method's state (if any) is saved in every checkpoint. It writes, in
`out_dir`:

    resolved_config.yaml, metrics.jsonl (+ tensorboard/), checkpoints/step_NNNNNNNN/,
    eval/before.json and eval/after.json (the policy's own choice of mode, per level; with each
    mode forced on the same prompts as well, their HAcc: always after, before with eval.hacc),
    eval/forced_after.json (and forced_before.json: the model forced short / forced think;
    AdaptThink: forced `</think>` / forced thinking opener), summary.json, hf/ (written before
    the after evaluation, so a failed evaluation never loses the model)

Every evaluation generates through the stage's rollout engine (in this process, or the SGLang
engines of `rollout.engine=sglang`), never through rank 0's model directly; the other ranks wait
for it in `ranks.wait_for_main` (deadline `trainer.dist_timeout_minutes`).

With `parallel.backend=megatron` every rank of the torchrun job runs this loop on its model
shard (trainer/megatron_policy.py): rank 0 samples from its HF copy of the policy, grades, and
broadcasts the graded rollouts (the others wait for them at `ranks.wait_for_main`, so a slow
rollout ends in an error naming `trainer.dist_timeout_minutes`); all ranks score and update
together; each engine sync exports the shards' full tensors into rank 0's copy; rank 0 alone
evaluates and writes files.

"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from tqdm import tqdm

from megathink.config.run import RunConfig
from megathink.data.chat_template import encode_record_prompt
from megathink.data.effort import datasets_by_effort
from megathink.data.prompt_sampler import PromptSampler
from megathink.data.tokenizer import load_tokenizer
from megathink.data.rl_prompts import rl_prompt_split
from megathink.evaluation.batch_graders import task_grader
from megathink.evaluation.forced_mode import save_eval_rows
from megathink.evaluation.policy_eval import eval_params as evaluation_params
from megathink.evaluation.policy_eval import evaluate_policy
from megathink.evaluation.policy_report import PolicyEvalReport
from megathink.methods import MethodContext, build_method
from megathink.methods.rollout_step import graded_rollout
from megathink.rewards.shaping import RewardShaping
from megathink.rollout.engine_factory import build_rollout_engine, close_engine
from megathink.rollout.follower_engine import FollowerEngine
from megathink.rollout.types import SamplingParams
from megathink.run_layout import HF_DIR
from megathink.trainer.checkpoint import checkpoint_root, resolve_resume
from megathink.trainer.lr_schedule import build_scheduler
from megathink.trainer.metrics import MetricsLogger
from megathink.trainer.parked_reference import ParkedReference
from megathink.trainer import preemption
from megathink.trainer.policy import Policy, build_policy
from megathink.trainer.ranks import on_main_then_broadcast, wait_for_main
from megathink.trainer.rl_batch import build_rl_batch, nonzero_advantage_rows
from megathink.trainer.rl_metrics import rollout_metrics
from megathink.trainer.rl_summary import build_summary, format_summary, saved_report
from megathink.trainer.rl_update import rl_update, score_batch
from megathink.trainer.stage_setup import prepare_stage, starting_from

log = logging.getLogger(__name__)


@dataclass
class RLResult:
    final_step: int
    history: list[dict[str, float]]
    before: Optional[PolicyEvalReport]
    after: Optional[PolicyEvalReport]
    """None on every rank but 0 of a megatron job (only rank 0 evaluates)."""
    summary: dict[str, Any]
    out_dir: Path


def run_rl(cfg: RunConfig, out_dir: Path, init_dir: Optional[Path] = None) -> RLResult:
    out_dir = Path(out_dir)
    ckpt_root = checkpoint_root(out_dir)
    resume_from = resolve_resume(cfg.checkpoint, ckpt_root)
    config_dict = prepare_stage(cfg, out_dir)

    start = starting_from(cfg, init_dir) if init_dir is not None else cfg  # the previous stage's HF folder
    model_cfg, tok_cfg = start.model, start.tokenizer
    bundle = load_tokenizer(tok_cfg)
    train, evaluation = rl_prompt_split(cfg.data)
    toy = cfg.data.source == "toy"
    # before the model loads: a method's own inputs (AdaptThink's Rbar_ref file) fail fast
    method = build_method(cfg.algorithm, MethodContext(run=cfg, bundle=bundle, train=train, template=tok_cfg.template))
    shaping = RewardShaping(cfg.reward)  # the reward.* terms and guards, on any method's rewards
    policy = build_policy(cfg, model_cfg, bundle, out_dir)  # every rank of a megatron job holds its shard
    backend = policy.backend
    reference = None
    if cfg.algorithm.kl_coef > 0:
        reference = ParkedReference(policy.frozen_reference(), policy.backend.device, park=cfg.rl.park_reference)
    engine = (  # rank 0 samples (from the trained model, or the megatron run's HF copy); the others follow
        build_rollout_engine(
            cfg.rollout, policy.sampler, pad_id=bundle.pad_id, batch_size=cfg.rollout.batch_size, out_dir=out_dir,
            model_dir=model_cfg.path, bundle=bundle,
        )
        if policy.main else FollowerEngine()
    )
    optimizer = policy.build_optimizer(cfg.rl.optimizer)
    scheduler = build_scheduler(optimizer, cfg.rl.optimizer, cfg.rl.max_steps * cfg.rl.mini_batches)
    sampler = PromptSampler(len(train), cfg.rl.prompts_per_step, cfg.data.seed)
    prompt_ids = [encode_record_prompt(bundle, record, tok_cfg) for record in train]  # with an effort budget

    step = 0
    if resume_from is not None:
        loaded = policy.restore(resume_from, ckpt_root, optimizer, scheduler)
        resume_from = loaded.path
        engine.sync_weights(backend)  # the engine samples from the restored weights
        sampler.load_state_dict(loaded.data_state)
        step = int(loaded.trainer_state["step"])
        method.load_state_dict(loaded.trainer_state.get("method", {}))
        shaping.load_state_dict(loaded.trainer_state.get("shaping", {}))
        log.info("resumed RL from %s at step %d", resume_from, step)

    resources = contextlib.ExitStack()  # the grader pool (prompt files) and the metrics sinks
    resources.callback(close_engine, engine)  # launched rollout servers stop with the stage
    grade = task_grader(cfg, tok_cfg, toy=toy, stack=resources) if policy.main else None  # rank 0 grades
    metrics = resources.enter_context(MetricsLogger(out_dir, cfg.logger, out_dir.name, config_dict, enabled=policy.main))
    eval_params = evaluation_params(cfg.eval, bundle.eos_id)

    eval_sets: dict[str, Any] = {"eval": evaluation}
    if cfg.eval.per_effort:  # the held-out prompts at every effort level too
        eval_sets.update(datasets_by_effort(eval_sets, cfg.data))

    def on_sampler() -> contextlib.AbstractContextManager:
        """The local engine generates from the policy's sampler: on its device meanwhile (the
        megatron backend parks rank 0's copy on the CPU otherwise); SGLang engines need nothing."""
        return policy.sampling() if cfg.rollout.engine == "local" else contextlib.nullcontext()

    def evaluate(name: str, *, forced: bool = False) -> Optional[PolicyEvalReport]:
        """The policy's own choice on the eval prompts (and, with `forced`, each mode forced: HAcc)."""
        report = None
        if policy.main:  # the engine of rank 0 samples; the other ranks wait for it below
            with on_sampler():
                report = evaluate_policy(
                    engine, bundle, tok_cfg, eval_sets, eval_params, grade, seeds=cfg.eval.seeds,
                    forced=forced, thinking_opener=method.forced_openers() or (),
                )
            report.save(out_dir / "eval" / f"{name}.json")
            if report.forced.get("eval"):
                save_eval_rows(report.forced["eval"], out_dir / "eval" / f"forced_{name}.json")
            if cfg.logger.console:
                tqdm.write(f"policy evaluation ({name}, step {step}; k = {report.k}):\n{report.format_table()}", file=sys.stdout)
            metrics.log(step, report.flat_metrics(prefix="eval"))  # one series over steps
        wait_for_main(f"the RL stage's {name} evaluation", cfg.trainer.dist_timeout_minutes)
        return report

    def checkpoint(at_step: int) -> Path:  # the method's and the shaping's state go with the weights
        state = {"method": method.state_dict(), "shaping": shaping.state_dict()}
        return _checkpoint(cfg, ckpt_root, at_step, policy, optimizer, scheduler, sampler, state)

    history: list[dict[str, float]] = []
    try:
        before = evaluate("before", forced=cfg.eval.hacc) if resume_from is None and evaluation else None
        progress = tqdm(
            total=cfg.rl.max_steps, initial=step, desc="rl", unit="step", file=sys.stderr,
            disable=not (cfg.logger.progress_bar and policy.main), mininterval=0.5 if sys.stderr.isatty() else 30.0,
        )
        started = time.monotonic()
        deadline = started + 60.0 * cfg.trainer.max_time_minutes if cfg.trainer.max_time_minutes > 0 else None
        while step < cfg.rl.max_steps:
            step_started = time.monotonic()
            indices = sampler.next()
            chosen = [train[i] for i in indices]
            params = SamplingParams(
                temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p, top_k=cfg.rollout.top_k,
                max_new_tokens=cfg.rollout.max_new_tokens, stop_token_ids=(bundle.eos_id,),
                n=cfg.rollout.n_samples, seed=cfg.trainer.seed * 1_000_003 + step,
            )
            prompts = [prompt_ids[i] for i in indices]
            with on_sampler():  # (a no-op on ranks without a sampler)
                graded = on_main_then_broadcast(lambda: graded_rollout(
                    method, engine, prompts, chosen, params, grade, shaping, progress=step / cfg.rl.max_steps
                ), f"step {step}'s rollouts and grading", cfg.trainer.dist_timeout_minutes,
                   "fewer rl.prompts_per_step or rollout.n_samples, a lower rollout.max_new_tokens, rollout.engine=sglang")
            samples, judged, rewards = graded.rollouts.samples, graded.rollouts.judged, graded.rewards
            batch = build_rl_batch(
                samples, graded.advantages, pad_id=bundle.pad_id, opener_prob=graded.rollouts.opener_prob,
                control_advantages=graded.control_advantages,
            )
            if cfg.rl.filter_zero_advantage:
                batch = batch.select(nonzero_advantage_rows(batch))
            row = rollout_metrics(judged, rewards)
            row.update(method.rollout_metrics(graded.rollouts))
            row.update(graded.metrics)
            row.update(engine.drain_metrics())
            row["advantage_mean"] = float(graded.advantages.mean())
            if batch.size:
                backend.train(False)
                score = dict(temperature=cfg.rollout.temperature, rl=cfg.rl)
                old_logp = None  # one update per rollout step: on-policy, see rl_update
                if cfg.rl.mini_batches > 1:
                    old_logp = score_batch(backend, batch, **score)
                    diff = (old_logp - batch.rollout_logp).abs() * batch.response_mask
                    row["logprob_diff"] = float(diff.sum() / batch.response_mask.sum().clamp(min=1))
                ref_logp = None
                if reference is not None:
                    with reference.scoring() as reference_backend:
                        ref_logp = score_batch(reference_backend, batch, **score)
                row.update(rl_update(
                    backend, batch, old_logp, ref_logp, optimizer, scheduler,
                    algorithm=cfg.algorithm, rl=cfg.rl, temperature=cfg.rollout.temperature,
                    loss_impl=cfg.kernels.policy_loss,
                ))
                row.update(method.update_metrics(batch, lambda rows: score_batch(
                    backend, batch.select(rows), temperature=cfg.rollout.temperature, rl=cfg.rl
                )))
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
                checkpoint(step)
            if preemption.stop_requested():  # SIGTERM / SIGUSR1 on any rank: checkpoint this step, exit 75
                if not (cfg.checkpoint.save_every and step % cfg.checkpoint.save_every == 0):
                    checkpoint(step)
                raise preemption.StagePreempted("rl", step, ckpt_root)
            if cfg.rl.eval_every and step % cfg.rl.eval_every == 0 and step < cfg.rl.max_steps:
                evaluate(f"step_{step:08d}")
            if deadline is not None and time.monotonic() >= deadline:
                log.info("trainer.max_time_minutes = %s reached at RL step %d", cfg.trainer.max_time_minutes, step)
                break
        progress.close()
        if not (cfg.checkpoint.save_every and step % cfg.checkpoint.save_every == 0):
            checkpoint(step)
        if cfg.checkpoint.save_hf:  # before the final evaluation: a failed one never loses the model
            policy.save_hf(out_dir / HF_DIR, bundle.tokenizer)
        after = evaluate("after", forced=True)  # with each mode forced: HAcc, always-think / always-short
        summary: dict[str, Any] = {}
        if policy.main:  # the final model's reports (rank 0's engine holds the synced weights)
            forced = after.forced.get("eval", [])
            summary = build_summary(after, forced, before=before if before is not None else saved_report(out_dir / "eval" / "before.json"))
            (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
            if cfg.logger.console:
                tqdm.write(format_summary(summary), file=sys.stdout)
    finally:
        resources.close()
    return RLResult(final_step=step, history=history, before=before, after=after, summary=summary, out_dir=out_dir)


def _checkpoint(
    cfg: RunConfig,
    root: Path,
    step: int,
    policy: Policy,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    sampler: PromptSampler,
    state: Optional[dict[str, Any]] = None,
) -> Path:
    """Atomic step checkpoint: weights, optimizer, schedule, RNG, the prompt sampler's position and
    the method's and the reward shaping's state (`state`, JSON)."""
    return policy.save(
        root, step, optimizer, scheduler, data_state=sampler.state_dict(),
        trainer_state=dict(state or {}), keep_last=cfg.checkpoint.keep_last,
    )

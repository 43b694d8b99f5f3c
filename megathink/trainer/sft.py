"""Thinkless stage 1: the SFT warm-up that teaches both answer modes behind their control tokens.

`run_sft(cfg, out_dir)` trains the policy on hybrid records (every question with its long
`<think>` answer and its short `<short>` answer in the same batch), with the prompt masked and
a per-token mean loss over each optimizer step (see `sft_step.py`). With
`tokenizer.template=adaptthink` the same loop warms a model up to *think* (AdaptThink's starting
point on the toy task; `data/sft_examples.py` says which tokens are trained). It writes

    <out>/resolved_config.yaml     the full RunConfig of this invocation
    <out>/metrics.jsonl            one json line per log (appended across resumes)
    <out>/checkpoints/step_NNNNNNNN/   atomic step checkpoints (see checkpoint.py)
    <out>/eval/step_NNNNNNNN.json, <out>/eval/final.json   forced-mode evaluation rows
    <out>/eval/final_policy.json   the final evaluation with the policy's own choice and HAcc (eval.hacc)
    <out>/hf/                      final weights + tokenizer (checkpoint.save_hf)

The evaluations generate through the `rollout.engine` the run names (stage_eval.py): in this
process, or on SGLang-protocol servers. `hf/` is written before the final evaluation; a final
evaluation that fails is logged and recorded in `eval/final_error.json`, and the stage still
ends normally (the model is on disk; a later stage starts from it).

With `parallel.backend=megatron` every rank of the torchrun job runs this loop in lock step on
its model shard (trainer/megatron_policy.py); rank 0 alone writes metrics, evaluations and the
HF folder, and the checkpoints are sharded (they reshard on resume).

Departures from the authors' recipe: the run length is counted in optimizer steps
(`sft.max_steps`), not epochs, and `trainer.max_time_minutes` bounds the wall time of
*this process* (a resumed run gets the budget again); a time stop still checkpoints, evaluates
and exports like a normal end.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from tqdm import tqdm

from megathink.config.run import RunConfig
from megathink.data.loaders import load_hybrid_sft, load_prompts
from megathink.data.sft_source import build_sft_batches
from megathink.data.tokenizer import load_tokenizer
from megathink.data.toy_task import ArithmeticTask, build_toy_datasets
from megathink.evaluation.batch_graders import grade_with_verifier
from megathink.evaluation.forced_mode import ModeEvalRow
from megathink.evaluation.graders import Verifier, grade_boxed
from megathink.run_layout import HF_DIR
from megathink.trainer.checkpoint import checkpoint_root, resolve_resume, step_dir_name
from megathink.trainer.lr_schedule import build_scheduler
from megathink.trainer.metrics import MetricsLogger
from megathink.trainer import preemption
from megathink.trainer.policy import build_policy
from megathink.trainer.ranks import wait_for_main
from megathink.trainer.sft_step import SFTStepStats, sft_step
from megathink.trainer.stage_eval import StageEvalEngine, record_failed_evaluation, sft_evaluation
from megathink.trainer.stage_setup import prepare_stage

log = logging.getLogger(__name__)


@dataclass
class SFTResult:
    """Outcome of one `run_sft` call (losses cover the steps run by this call only)."""

    final_step: int
    losses: list[tuple[int, float]]
    eval_rows: list[ModeEvalRow]
    stopped_early: bool
    out_dir: Path
    metrics_path: Path
    checkpoint_dir: Optional[Path]
    hf_dir: Optional[Path]
    resumed_from: Optional[Path]
    eval_error: Optional[str] = None
    """The final evaluation's error when it failed (the stage still ended normally)."""

    @property
    def first_loss(self) -> Optional[float]:
        return self.losses[0][1] if self.losses else None

    @property
    def last_loss(self) -> Optional[float]:
        return self.losses[-1][1] if self.losses else None


def run_sft(cfg: RunConfig, out_dir: Path) -> SFTResult:
    """Run (or resume) the SFT warm-up of `cfg` in `out_dir`; see the module docstring."""
    out_dir = Path(out_dir)
    ckpt_root = checkpoint_root(out_dir)
    resume_from = resolve_resume(cfg.checkpoint, ckpt_root)  # before writing anything
    config_dict = prepare_stage(cfg, out_dir)

    bundle = load_tokenizer(cfg.tokenizer)
    train_records, eval_records, verify = _load_data(cfg)
    batches = build_sft_batches(cfg, bundle, train_records)  # in memory, or from data.sft_shards
    policy = build_policy(cfg, cfg.model, bundle, out_dir)  # every rank of a megatron job holds its shard
    backend = policy.backend
    optimizer = policy.build_optimizer(cfg.sft.optimizer)
    scheduler = build_scheduler(optimizer, cfg.sft.optimizer, cfg.sft.max_steps)

    step, tokens_seen, elapsed_before = 0, 0, 0.0
    if resume_from is not None:
        loaded = policy.restore(resume_from, ckpt_root, optimizer, scheduler)
        resume_from = loaded.path
        batches.load_state_dict(loaded.data_state)
        step = int(loaded.trainer_state["step"])
        tokens_seen = int(loaded.trainer_state.get("tokens_seen", 0))
        elapsed_before = float(loaded.trainer_state.get("elapsed_seconds", 0.0))
        log.info("resumed from %s at step %d", resume_from, step)

    metrics = MetricsLogger(out_dir, cfg.logger, out_dir.name, config_dict, enabled=policy.main)

    eval_engine = StageEvalEngine(cfg, policy, bundle, out_dir)  # rank 0 generates (or its SGLang engines)
    grade = grade_with_verifier(verify, cfg.tokenizer)
    eval_errors: list[str] = []

    def evaluate(name: str, *, serve_dir: Optional[Path] = None) -> list[ModeEvalRow]:
        """Forced-mode rows of the current weights; the final one (`serve_dir`: hf/ on rank 0, when
        written) also samples the policy's own choice for HAcc (eval.hacc) and never raises."""
        final = name == "final"
        if not (final and cfg.checkpoint.save_hf):  # save_hf refreshed it already (every rank decides alike)
            policy.refresh_sampler()  # megatron: the exported weights into rank 0's HF copy (collective)
        rows: list[ModeEvalRow] = []
        try:
            if policy.main and eval_records:
                rows = sft_evaluation(
                    cfg, eval_engine, bundle, eval_records, grade, name, out_dir, metrics, step, serve_dir, final
                )
        except Exception as err:
            if not final:
                raise
            record_failed_evaluation(out_dir, name, err, serve_dir)
            eval_errors.append(f"{type(err).__name__}: {err}")
        wait_for_main(f"the SFT stage's {name} evaluation", cfg.trainer.dist_timeout_minutes)
        return rows

    def checkpoint() -> Path:
        state = {"tokens_seen": tokens_seen, "elapsed_seconds": elapsed_before + time.monotonic() - started}
        return policy.save(
            ckpt_root, step, optimizer, scheduler,
            data_state=batches.state_dict(), trainer_state=state, keep_last=cfg.checkpoint.keep_last,
        )

    started = time.monotonic()
    deadline = started + 60.0 * cfg.trainer.max_time_minutes if cfg.trainer.max_time_minutes > 0 else None
    losses: list[tuple[int, float]] = []
    window = _Window(step, tokens_seen, started)
    last_ckpt = resume_from if resume_from is not None and resume_from.parent == ckpt_root else None
    stopped_early = False
    progress = tqdm(
        total=cfg.sft.max_steps, initial=step, desc="sft", unit="step", file=sys.stderr,
        disable=not (cfg.logger.progress_bar and policy.main), dynamic_ncols=True,
        mininterval=0.5 if sys.stderr.isatty() else 30.0,  # a log file gets a line every 30 s
    )
    try:
        while step < cfg.sft.max_steps:
            micro = [next(batches) for _ in range(cfg.sft.grad_accum_steps)]
            stats = sft_step(
                backend, micro, optimizer, scheduler, grad_clip=cfg.sft.optimizer.grad_clip, control=bundle.control,
                max_tokens=cfg.sft.max_tokens_per_micro_batch,
            )
            step += 1
            tokens_seen += stats.tokens
            losses.append((step, stats.loss))
            progress.update(1)
            progress.set_postfix(loss=f"{stats.loss:.4f}", refresh=False)
            if step % cfg.trainer.log_every == 0:
                metrics.log(step, window.metrics(step, tokens_seen, stats))
            if cfg.checkpoint.save_every and step % cfg.checkpoint.save_every == 0:
                last_ckpt = checkpoint()
            if preemption.stop_requested():  # SIGTERM / SIGUSR1 on any rank: checkpoint this step, exit 75
                if last_ckpt is None or last_ckpt.name != step_dir_name(step):
                    checkpoint()
                raise preemption.StagePreempted("sft", step, ckpt_root)
            if cfg.sft.eval_every and step % cfg.sft.eval_every == 0 and step < cfg.sft.max_steps:
                evaluate(step_dir_name(step))
            if deadline is not None and time.monotonic() >= deadline and step < cfg.sft.max_steps:
                stopped_early = True
                log.info("trainer.max_time_minutes = %s reached at step %d", cfg.trainer.max_time_minutes, step)
                break
        progress.close()
        if losses and step % cfg.trainer.log_every != 0:  # a time stop between log lines
            metrics.log(step, window.metrics(step, tokens_seen, stats))
        if last_ckpt is None or last_ckpt.name != step_dir_name(step):
            last_ckpt = checkpoint()
        hf_dir = policy.save_hf(out_dir / HF_DIR, bundle.tokenizer) if cfg.checkpoint.save_hf else None
        eval_rows = evaluate("final", serve_dir=hf_dir)  # after hf/: a failed evaluation never loses the model
    finally:
        progress.close()
        batches.close()
        eval_engine.close()
        metrics.close()
    return SFTResult(
        final_step=step, losses=losses, eval_rows=eval_rows, stopped_early=stopped_early, out_dir=out_dir,
        metrics_path=metrics.path, checkpoint_dir=last_ckpt, hf_dir=hf_dir, resumed_from=resume_from,
        eval_error=eval_errors[-1] if eval_errors else None,
    )


def _load_data(cfg: RunConfig) -> tuple[Optional[list[Any]], Sequence[Any], Verifier]:
    """(train hybrid records, eval records, verifier) from the toy task or the configured files;
    no train records with data.sft_shards (the batches come from the shards)."""
    if cfg.data.source == "toy":
        train, evaluation = build_toy_datasets(cfg.data)
        return train, evaluation, ArithmeticTask(cfg.data.levels, cfg.data.seed).verify
    sft_path = cfg.data.sft_path  # RunConfig guarantees it or data.sft_shards for the sft stage
    train = load_hybrid_sft(sft_path, cfg.data, cfg.tokenizer.end_think_token) if sft_path else None
    evaluation = load_prompts(cfg.data.eval_path, cfg.data) if cfg.data.eval_path else []
    return train, evaluation, grade_boxed


class _Window:
    """Throughput since the previous log line."""

    def __init__(self, step: int, tokens: int, now: float) -> None:
        self.step, self.tokens, self.time = step, tokens, now

    def metrics(self, step: int, tokens: int, stats: SFTStepStats) -> dict[str, float]:
        now = time.monotonic()
        seconds = max(now - self.time, 1e-9)
        out = {
            "loss": stats.loss,
            "loss_short": stats.loss_short,
            "loss_think": stats.loss_think,
            "lr": stats.lr,
            "grad_norm": stats.grad_norm,
            "padding_waste": stats.padding_waste,
            "tokens_per_s": (tokens - self.tokens) / seconds,
            "steps_per_s": (step - self.step) / seconds,
        }
        self.step, self.tokens, self.time = step, tokens, now
        return out

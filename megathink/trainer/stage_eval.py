"""The SFT stage's evaluations on rank 0: the engine they generate with, one evaluation
(`sft_evaluation`), and a failed final one.

`rollout.engine=local`: a `LocalEngine` on the policy's sampler (the trained model, or rank 0's
HF copy of a megatron policy, moved to `trainer.device` for the duration by `policy.sampling()`),
batches of `eval.batch_size`. `rollout.engine=sglang`: SGLang-protocol servers, set up from
`rollout.sglang` as the RL stage sets up its rollout engines (launched, or attached by `urls`),
built at the first evaluation and kept for the stage: they start on the stage's `hf/` folder when
the first evaluation is the final one (it is written first), else on the sampler's weights written
as a HF folder (weight version 0); each later evaluation first syncs the sampler's current weights
(`sync_weights`, a new folder loaded by every engine). So rank 0 never holds an evaluation's KV
cache; with a megatron policy its HF copy stays parked on the CPU. The engines are stopped when
the stage ends (`close`).

The RL stage evaluates with its rollout engine, which is already synced to the policy.

`record_failed_evaluation`: the SFT stage writes `hf/` before its final evaluation; when that
evaluation fails, the stage logs the error, writes `eval/<name>_error.json` (the error, the model
folder and the command that evaluates it later) and ends normally, so the next stage starts
(docs/ARCHITECTURE.md, "Evaluation").
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Optional

from tqdm import tqdm

from megathink.config.run import RunConfig
from megathink.data.types import TokenizerBundle
from megathink.evaluation.batch_graders import GradeFn
from megathink.evaluation.forced_mode import (
    ModeEvalRow,
    evaluate_forced_modes,
    format_mode_table,
    save_eval_rows,
    summary_metrics,
)
from megathink.evaluation.policy_eval import eval_params, evaluate_policy
from megathink.rollout.engine_factory import build_rollout_engine, close_engine
from megathink.rollout.local_engine import LocalEngine
from megathink.rollout.protocol import RolloutEngine
from megathink.trainer.metrics import MetricsLogger
from megathink.trainer.policy import Policy

log = logging.getLogger(__name__)


class StageEvalEngine:
    """The engine of a stage's evaluations (rank 0 only; see the module docstring)."""

    def __init__(self, cfg: RunConfig, policy: Policy, bundle: TokenizerBundle, out_dir: Path) -> None:
        self.cfg = cfg
        self.policy = policy
        self.bundle = bundle
        self.out_dir = Path(out_dir)
        self._engine: Optional[RolloutEngine] = None

    @contextlib.contextmanager
    def session(self, serve_dir: Optional[Path] = None) -> Iterator[RolloutEngine]:
        """An engine that samples from the policy's current weights, for one evaluation.

        serve_dir: a HF folder that holds exactly those weights (the stage's `hf/`), which SGLang
        engines started by this call load instead of a written copy."""
        if self.cfg.rollout.engine == "local":
            with self.policy.sampling() as sampler:
                if sampler is None:
                    raise RuntimeError("StageEvalEngine.session runs on rank 0 only (it holds the sampler)")
                yield LocalEngine(sampler, pad_id=self.bundle.pad_id, batch_size=self.cfg.eval.batch_size)
            return
        if self._engine is None:
            self._engine = build_rollout_engine(
                self.cfg.rollout, self.policy.sampler, pad_id=self.bundle.pad_id,
                batch_size=self.cfg.rollout.batch_size, out_dir=self.out_dir,
                model_dir=str(serve_dir) if serve_dir is not None else None, bundle=self.bundle, load_attached=True,
            )
        else:
            self._engine.sync_weights(self.policy.sampler)  # trained since the last evaluation
        yield self._engine

    def close(self) -> None:
        """Stop the engines this stage launched (attached ones keep running)."""
        if self._engine is not None:
            close_engine(self._engine)
            self._engine = None


def sft_evaluation(
    cfg: RunConfig, eval_engine: StageEvalEngine, bundle: TokenizerBundle, records: Sequence[Any], grade: GradeFn,
    name: str, out_dir: Path, metrics: MetricsLogger, step: int, serve_dir: Optional[Path], final: bool,
) -> list[ModeEvalRow]:
    """Rank 0: one SFT evaluation through the stage's engine; writes eval/<name>.json (and, for the
    final one with eval.hacc, eval/<name>_policy.json with the policy's own choice and HAcc), prints
    the tables (logger.console) and logs their metrics at `step`."""
    params = eval_params(cfg.eval, bundle.eos_id)
    with eval_engine.session(serve_dir) as engine:
        if final and cfg.eval.hacc:
            report = evaluate_policy(
                engine, bundle, cfg.tokenizer, {"eval": records}, params, grade, seeds=cfg.eval.seeds, forced=True
            )
            rows = report.forced.get("eval", [])
        else:
            report = None
            rows = evaluate_forced_modes(engine, bundle, cfg.tokenizer, records, params, grade, seeds=cfg.eval.seeds)
    if rows:
        save_eval_rows(rows, out_dir / "eval" / f"{name}.json")
        if cfg.logger.console:
            tqdm.write(f"forced-mode evaluation ({name}, step {step}):\n{format_mode_table(rows)}", file=sys.stdout)
        metrics.log(step, summary_metrics(rows))
    if report is not None:
        report.source = str(serve_dir or out_dir)
        report.save(out_dir / "eval" / f"{name}_policy.json")
        if cfg.logger.console:
            tqdm.write(f"policy evaluation ({name}, step {step}; k = {report.k}):\n{report.format_table()}", file=sys.stdout)
        metrics.log(step, report.flat_metrics(prefix="eval"))
    return rows


def record_failed_evaluation(out_dir: Path, name: str, err: BaseException, model_dir: Optional[Path]) -> Path:
    """Log a failed evaluation and write `<out_dir>/eval/<name>_error.json`; returns its path."""
    rerun = f"megathink eval eval.model_dir={model_dir}" if model_dir is not None else None
    log.error(
        "the %s evaluation of %s failed (%s: %s); the trained model is saved%s. The stage goes on; "
        "evaluate it later with: %s", name, out_dir, type(err).__name__, err,
        f" in {model_dir}" if model_dir is not None else " in the last checkpoint", rerun or "megathink eval",
    )
    path = out_dir / "eval" / f"{name}_error.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "evaluation": name, "error": f"{type(err).__name__}: {err}", "model_dir": str(model_dir) if model_dir else None,
        "rerun": rerun, "traceback": traceback.format_exception(type(err), err, err.__traceback__),
    }
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path

"""`run_eval(cfg)`: the library side of `megathink eval` (the launch command only calls it).

Loads the policy at `eval.model_dir` (`policy_loader`), the evaluation sets, and samples every
prompt once per seed in `eval.seeds` with the local rollout engine (`eval.temperature`,
`eval.top_p`, `eval.max_new_tokens`, stopping on EOS); the policy chooses its own mode. Then
it prints the table (when `logger.console`) and writes `<output_dir>/eval.json`.

Evaluation sets: the prompt files of `eval.datasets` (each named by its file stem) graded by a
`GraderPool` sized by the `reward` section (closed at the end); with no files, the toy task's
held-out split (dataset "toy", `data.source=toy`, graded by `ArithmeticTask.verify`) or the
`data.eval_path` file. The files are read before the model is loaded, so a wrong path fails
in a second.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from megathink.config.evaluation import dataset_name
from megathink.config.run import RunConfig
from megathink.data.loaders import load_prompts
from megathink.data.toy_task import build_toy_datasets
from megathink.errors import ConfigError, MissingPathError
from megathink.evaluation.batch_graders import task_grader
from megathink.evaluation.policy_eval import EvalRecord, evaluate_policy
from megathink.evaluation.policy_loader import load_policy
from megathink.evaluation.policy_report import PolicyEvalReport
from megathink.rollout.local_engine import LocalEngine
from megathink.rollout.types import SamplingParams

log = logging.getLogger(__name__)

REPORT_FILE = "eval.json"
TOY_DATASET = "toy"


def run_eval(cfg: RunConfig) -> PolicyEvalReport:
    """Evaluate the policy at `cfg.eval.model_dir`; returns the report saved as `<output_dir>/eval.json`."""
    datasets, toy = _datasets(cfg)
    if cfg.trainer.num_threads > 0:
        torch.set_num_threads(cfg.trainer.num_threads)
    policy = load_policy(
        cfg.eval.model_dir, tokenizer=cfg.tokenizer, model=cfg.model, device=cfg.trainer.device, seed=cfg.trainer.seed
    )
    params = SamplingParams(
        temperature=cfg.eval.temperature,
        top_p=cfg.eval.top_p,
        max_new_tokens=cfg.eval.max_new_tokens,
        stop_token_ids=(policy.bundle.eos_id,),
    )
    engine = LocalEngine(policy.backend, pad_id=policy.bundle.pad_id, batch_size=cfg.eval.batch_size)
    with contextlib.ExitStack() as stack:
        grade = task_grader(cfg, policy.tok_cfg, toy=toy, stack=stack)
        report = evaluate_policy(
            engine, policy.bundle, policy.tok_cfg, datasets, params, grade, seeds=cfg.eval.seeds
        )
    report.source = str(policy.path)
    path = report.save(Path(cfg.output_dir) / REPORT_FILE)
    if cfg.logger.console:
        print(f"policy evaluation of {policy.path} (seeds {report.seeds}):\n{report.format_table()}", flush=True)
    log.info("wrote %s", path)
    return report


def _datasets(cfg: RunConfig) -> tuple[dict[str, Sequence[EvalRecord]], bool]:
    """(records by dataset name, whether they are the toy task's)."""
    if cfg.eval.datasets:
        return {dataset_name(p): _load_file(p, cfg, "eval.datasets[*]") for p in cfg.eval.datasets}, False
    if cfg.data.source == "toy":
        records = build_toy_datasets(cfg.data)[1]
        if not records:
            raise ConfigError(
                f"data.toy_eval_per_level = {cfg.data.toy_eval_per_level} leaves no toy evaluation questions: "
                "set it above 0, or list prompt files in eval.datasets."
            )
        return {TOY_DATASET: records}, True
    if cfg.data.eval_path:
        return {dataset_name(cfg.data.eval_path): _load_file(cfg.data.eval_path, cfg, "data.eval_path")}, False
    raise ConfigError(
        "eval.datasets = [] is invalid with data.source='files' and no data.eval_path: list the prompt files "
        "to evaluate, e.g. eval.datasets=[data/gsm8k.jsonl,data/math500.jsonl]."
    )


def _load_file(path: str, cfg: RunConfig, field: str) -> list[EvalRecord]:
    if not os.path.isfile(path):
        raise MissingPathError(f"{field} = {path!r} does not exist: give a .jsonl or .parquet prompt file.")
    return list(load_prompts(path, cfg.data))



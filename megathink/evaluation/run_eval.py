"""`run_eval(cfg)`: the library side of `megathink eval` (the launch command only calls it).

Loads the policy at `eval.model_dir` (`policy_loader`) and the evaluation sets, and runs the
standard adaptive-thinking evaluation: every prompt sampled k = len(eval.seeds) times with the
policy choosing its own mode (`eval.temperature`, `eval.top_p`, `eval.max_new_tokens`, stopping
on EOS) and, with `eval.hacc` (default), k times with each mode forced, giving per dataset and
level: accuracy (avg@k), pass@k, response tokens (the prompt excluded), the natural mode rates,
each forced mode's avg@k / pass@k / tokens / mode rate, the oracle think rate and HAcc
(`hybrid_metrics`). Under `tokenizer.template=adaptthink` the forced think mode opens with
`algorithm.thinking_opener` when the command's algorithm section has one (`algorithm=adaptthink`),
else nothing is forced for it. Then it prints the table (when `logger.console`) and writes
`<output_dir>/eval.json`.

Generation goes where `rollout.engine` says (`eval_engine`): the local engine on the model loaded
here (`trainer.device`, batches of `eval.batch_size`), or SGLang-protocol servers that
`rollout.sglang` attaches to (`urls`, told to load the evaluated folder) or launches on it; then
no model is built here when the folder can be served as is (else it is built on the CPU to write
a HF folder for the engines).

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
from megathink.data.effort import datasets_by_effort
from megathink.data.toy_task import build_toy_datasets
from megathink.errors import ConfigError, MissingPathError
from megathink.data.types import TokenizerBundle
from megathink.evaluation.batch_graders import task_grader
from megathink.evaluation.eval_engine import model_device, on_engines, open_eval_engine
from megathink.evaluation.policy_eval import EvalRecord, eval_params, evaluate_policy
from megathink.evaluation.policy_loader import load_policy
from megathink.evaluation.policy_report import PolicyEvalReport

log = logging.getLogger(__name__)

REPORT_FILE = "eval.json"
TOY_DATASET = "toy"


def run_eval(cfg: RunConfig) -> PolicyEvalReport:
    """Evaluate the policy at `cfg.eval.model_dir`; returns the report saved as `<output_dir>/eval.json`."""
    datasets, toy = _datasets(cfg)
    if cfg.trainer.num_threads > 0:
        torch.set_num_threads(cfg.trainer.num_threads)
    policy = load_policy(
        cfg.eval.model_dir, tokenizer=cfg.tokenizer, model=cfg.model, device=model_device(cfg), seed=cfg.trainer.seed,
        weights_only_if_needed=on_engines(cfg),
    )
    params = eval_params(cfg.eval, policy.bundle.eos_id)
    with contextlib.ExitStack() as stack:
        engine = open_eval_engine(
            cfg, sampler=policy.backend, bundle=policy.bundle,
            model_dir=str(policy.path) if policy.kind == "hf" else None, out_dir=Path(cfg.output_dir),
            batch_size=cfg.eval.batch_size if not on_engines(cfg) else cfg.rollout.batch_size, stack=stack,
        )
        grade = task_grader(cfg, policy.tok_cfg, toy=toy, stack=stack)
        report = evaluate_policy(
            engine, policy.bundle, policy.tok_cfg, datasets, params, grade, seeds=cfg.eval.seeds,
            forced=cfg.eval.hacc, thinking_opener=thinking_opener(cfg, policy.bundle, policy.tok_cfg.template),
        )
    report.source = str(policy.path)
    path = report.save(Path(cfg.output_dir) / REPORT_FILE)
    if cfg.logger.console:
        print(f"policy evaluation of {policy.path} (seeds {report.seeds}, k = {report.k}):\n{report.format_table()}", flush=True)
    log.info("wrote %s", path)
    return report


def thinking_opener(cfg: RunConfig, bundle: TokenizerBundle, template: str) -> list[int]:
    """Token ids forced to open the think mode: `algorithm.thinking_opener` under the adaptthink
    template when the algorithm section has one (AdaptThink); none otherwise (thinkless forces
    `<think>` itself)."""
    opener = getattr(cfg.algorithm, "thinking_opener", None)
    if template != "adaptthink" or not opener:
        return []
    return list(bundle.tokenizer.encode(opener, add_special_tokens=False))


def _datasets(cfg: RunConfig) -> tuple[dict[str, Sequence[EvalRecord]], bool]:
    """(records by dataset name, whether they are the toy task's); with eval.per_effort every
    dataset once per effort level (`<name>@<level>`)."""
    datasets, toy = _base_datasets(cfg)
    return (datasets_by_effort(datasets, cfg.data) if cfg.eval.per_effort else datasets), toy


def _base_datasets(cfg: RunConfig) -> tuple[dict[str, Sequence[EvalRecord]], bool]:
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



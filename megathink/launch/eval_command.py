"""`megathink eval`: the adaptive-thinking evaluation of a trained policy (see `evaluation.run_eval`).

Thin on purpose: the command builds nothing itself, so the same evaluation runs from Python
without Hydra (`megathink.evaluation.run_eval.run_eval(RunConfig(...))`). The library is
imported when the command runs, so `megathink --help` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from megathink.config import RunConfig

if TYPE_CHECKING:
    from megathink.evaluation.policy_report import PolicyEvalReport

SUMMARY = "evaluate a policy, natural and each mode forced: avg@k, pass@k, tokens, think ratio, HAcc per level (eval.model_dir=...)"


def run_eval_command(cfg: RunConfig) -> PolicyEvalReport:
    from megathink.evaluation.run_eval import run_eval

    return run_eval(cfg)

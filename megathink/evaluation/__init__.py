"""Held-out evaluation: each mode forced in turn, and the policy choosing its own mode
(`megathink eval`, the stages' evaluations), per dataset and difficulty level, with the
adaptive-thinking metrics that compare the two (`hybrid_metrics`: avg@k, pass@k, mode rates,
HAcc); every generation goes through a `RolloutEngine` (`eval_engine` builds the one a command
uses); plus AdaptThink's reference pre-sampling (`presample.py`, imported directly).
"""

from megathink.evaluation.batch_graders import GradeFn, grade_with_pool, grade_with_verifier
from megathink.evaluation.forced_mode import (
    ModeEvalRow,
    evaluate_forced_modes,
    forced_rows,
    format_mode_table,
    sample_forced_modes,
    save_eval_rows,
    summary_metrics,
)
from megathink.evaluation.graders import Verifier, grade_boxed
from megathink.evaluation.hybrid_metrics import avg_at_k, hybrid_accuracy, oracle_think_rate, pass_at_k
from megathink.evaluation.judged import Judged
from megathink.evaluation.policy_eval import eval_params, evaluate_policy, judge_samples
from megathink.evaluation.policy_report import PolicyEvalReport, PolicyEvalRow, PolicyMetrics

__all__ = [
    "GradeFn",
    "Judged",
    "ModeEvalRow",
    "PolicyEvalReport",
    "PolicyEvalRow",
    "PolicyMetrics",
    "Verifier",
    "avg_at_k",
    "eval_params",
    "evaluate_forced_modes",
    "evaluate_policy",
    "forced_rows",
    "format_mode_table",
    "grade_boxed",
    "grade_with_pool",
    "grade_with_verifier",
    "hybrid_accuracy",
    "judge_samples",
    "oracle_think_rate",
    "pass_at_k",
    "sample_forced_modes",
    "save_eval_rows",
    "summary_metrics",
]

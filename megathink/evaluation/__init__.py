"""Held-out evaluation: each mode forced in turn (SFT), and the policy choosing its own mode
(`megathink eval`, the RL stage's before/after evaluation), per dataset and difficulty level;
plus AdaptThink's reference pre-sampling (`presample.py`, imported directly)."""

from megathink.evaluation.batch_graders import GradeFn, grade_with_pool, grade_with_verifier
from megathink.evaluation.forced_mode import (
    ModeEvalRow,
    evaluate_forced_modes,
    format_mode_table,
    save_eval_rows,
    summary_metrics,
)
from megathink.evaluation.graders import Verifier, grade_boxed
from megathink.evaluation.policy_eval import evaluate_policy, judge_samples
from megathink.evaluation.policy_report import PolicyEvalReport, PolicyEvalRow, PolicyMetrics

__all__ = [
    "GradeFn",
    "ModeEvalRow",
    "PolicyEvalReport",
    "PolicyEvalRow",
    "PolicyMetrics",
    "Verifier",
    "evaluate_forced_modes",
    "evaluate_policy",
    "format_mode_table",
    "grade_boxed",
    "grade_with_pool",
    "grade_with_verifier",
    "judge_samples",
    "save_eval_rows",
    "summary_metrics",
]

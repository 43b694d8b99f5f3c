"""Held-out evaluation: forced-mode accuracy and length per difficulty level."""

from megathink.evaluation.forced_mode import (
    ModeEvalRow,
    evaluate_forced_modes,
    format_mode_table,
    save_eval_rows,
    summary_metrics,
)
from megathink.evaluation.graders import Verifier, grade_boxed

__all__ = [
    "ModeEvalRow",
    "Verifier",
    "evaluate_forced_modes",
    "format_mode_table",
    "grade_boxed",
    "save_eval_rows",
    "summary_metrics",
]

"""The RL stage's summary: the trained policy per level, next to its starting point and its forced modes.

`build_summary` gives the dict written to `summary.json` (and copied to the run folder by the
pipeline); `format_summary` prints it. Keys per level: think_ratio, nothinking_ratio (the
share of responses in short mode, read from the first response token: `<short>` under
Thinkless, an opening `</think>` under AdaptThink), accuracy, mean_tokens (response tokens, the
prompt excluded), and the adaptive-thinking metrics over k samples per prompt (`HYBRID_KEYS`:
avg_at_k, pass_at_k, the forced modes' accuracy and mode rate, oracle_think_rate, hacc; None
where the evaluation had no forced pass); then the same overall with `k`, the policy before RL
(`start`, when it was evaluated) and the final model forced to always think / always answer short.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from megathink.evaluation.forced_mode import ModeEvalRow
from megathink.evaluation.policy_report import ALL, PolicyEvalReport


def saved_report(path: Path) -> Optional[PolicyEvalReport]:
    """The report at `path`, or None when there is none (a resumed run evaluates "before" only once)."""
    return PolicyEvalReport.load(path) if path.is_file() else None


HYBRID_KEYS = (
    "avg_at_k", "pass_at_k", "forced_short_accuracy", "forced_think_accuracy", "forced_short_mode_rate",
    "forced_think_mode_rate", "oracle_think_rate", "hacc",
)
"""The adaptive-thinking metrics of a policy report row copied into the summary (policy_report.PolicyMetrics)."""


def _policy(report: PolicyEvalReport) -> dict[str, Any]:
    rows = [row for row in report.rows if row.dataset == "eval"]
    overall = next(row.metrics for row in rows if row.level == ALL)
    return {
        "per_level": [
            {
                "level": int(row.level) if row.level.isdigit() else row.level,
                "think_ratio": row.metrics.think_ratio,
                "nothinking_ratio": row.metrics.short_ratio,
                "accuracy": row.metrics.accuracy,
                "mean_tokens": row.metrics.mean_tokens,
                **{key: getattr(row.metrics, key) for key in HYBRID_KEYS},
            }
            for row in rows
            if row.level != ALL
        ],
        "accuracy": overall.accuracy,
        "mean_tokens": overall.mean_tokens,
        "think_ratio": overall.think_ratio,
        "nothinking_ratio": overall.short_ratio,
        "k": overall.k,
        **{key: getattr(overall, key) for key in HYBRID_KEYS},
    }


def build_summary(
    after: PolicyEvalReport, forced: list[ModeEvalRow], *, before: Optional[PolicyEvalReport] = None
) -> dict[str, Any]:
    """The policy after RL per level and overall, `start` (before RL, or None) and the forced
    always-think / always-short accuracies of the final model (None without a forced evaluation)."""
    forced_all = next((row for row in forced if row.level == ALL), None)
    summary = _policy(after)
    summary.update(
        start=_policy(before) if before is not None else None,
        always_think_accuracy=forced_all.think_acc if forced_all else None,
        always_think_mean_tokens=forced_all.think_tokens if forced_all else None,
        always_short_accuracy=forced_all.short_acc if forced_all else None,
    )
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a few readable lines: the policy per level, then against its start and always-think."""
    lines = [
        "RL summary (the policy chooses its mode):",
        "level  think ratio  short/nothinking  accuracy  mean tokens",
    ]
    for row in summary["per_level"]:
        lines.append(
            f"{row['level']!s:<5}  {100 * row['think_ratio']:10.1f}%  {100 * row['nothinking_ratio']:15.1f}%  "
            f"{100 * row['accuracy']:7.1f}%  {row['mean_tokens']:11.1f}"
        )
    lines.append(
        f"all    {100 * summary['think_ratio']:10.1f}%  {100 * summary['nothinking_ratio']:15.1f}%  "
        f"{100 * summary['accuracy']:7.1f}%  {summary['mean_tokens']:11.1f}"
    )
    start = summary.get("start")
    if start is not None:
        lines.append(
            f"before RL: accuracy {100 * start['accuracy']:.1f}%, mean tokens {start['mean_tokens']:.1f}, "
            f"think ratio {100 * start['think_ratio']:.1f}%"
        )
    if summary.get("hacc") is not None:
        lines.append(
            f"over k = {summary['k']} samples per prompt: avg@k {100 * summary['avg_at_k']:.1f}%, "
            f"pass@k {100 * summary['pass_at_k']:.1f}%; HAcc {100 * summary['hacc']:.1f}% (think chosen "
            f"{100 * summary['think_ratio']:.1f}% vs needed {100 * summary['oracle_think_rate']:.1f}%)"
        )
    if summary["always_think_accuracy"] is not None:
        lines.append(
            f"always think: accuracy {100 * summary['always_think_accuracy']:.1f}%, "
            f"mean tokens {summary['always_think_mean_tokens']:.1f}; "
            f"always short: accuracy {100 * summary['always_short_accuracy']:.1f}%"
        )
    return "\n".join(lines)

"""The end-of-run summary of `megathink distill`: printed, and written as json beside the output.

Path: `<out without extension>.summary.json`. It covers every selected prompt, including the
ones an earlier run finished: kept and dropped per reason (filter.py), per level, the questions
not done (their requests failed; a rerun retries them), and per endpoint the accuracy of the
picked answers, the accuracy and finished share over all samples, and the mean length of the
picked answers (characters always, tokens when the server reported them). Mean lengths of the
kept pairs are given separately. URLs are written without user info or query string; no
header or key is ever written.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from megathink.data.types import PromptRecord, prompt_id
from megathink.distill.filter import DROP_REASONS, drop_reason
from megathink.distill.outcomes import FormResult, QuestionResult
from megathink.distill.settings import DistillSettings, EndpointSettings


def summary_path(out: str) -> Path:
    """`<out without extension>.summary.json`."""
    return Path(os.path.splitext(out)[0] + ".summary.json")


def build_summary(
    settings: DistillSettings,
    records: Sequence[PromptRecord],
    results: dict[str, QuestionResult],
    *,
    queried: int,
    already_done: int,
    failures: Sequence[str],
    duplicates: int,
) -> dict[str, Any]:
    """The summary of a run over the selected `records` given the finished `results`."""
    done = [results[prompt_id(r.problem)] for r in records if prompt_id(r.problem) in results]
    dropped: Counter[str] = Counter()
    kept: list[QuestionResult] = []
    levels: dict[str, dict[str, Any]] = {}
    for record in records:
        level = levels.setdefault(_level_key(record.level), {"questions": 0, "done": 0, "kept": 0, "dropped": Counter(),
                                                             "long_correct": 0, "short_correct": 0})
        level["questions"] += 1
        result = results.get(prompt_id(record.problem))
        if result is None:
            continue
        level["done"] += 1
        level["long_correct"] += result.long.picked.correct
        level["short_correct"] += result.short.picked.correct
        reason = drop_reason(result, settings.filter)
        if reason is None:
            kept.append(result)
            level["kept"] += 1
        else:
            dropped[reason] += 1
            level["dropped"][reason] += 1
    return {
        "out": settings.out,
        "prompts_file": settings.prompts,
        "questions": len(records),
        "duplicates_skipped": duplicates,
        "done": len(done),
        "queried_now": queried,
        "already_done": already_done,
        "not_done": len(records) - len(done),
        "failed_now": len(failures),
        "failure_examples": list(failures[:3]),
        "filter": settings.filter,
        "pick": settings.pick,
        "grader": settings.grader,
        "kept": len(kept),
        "dropped": {reason: dropped[reason] for reason in DROP_REASONS if dropped[reason]},
        "by_level": {key: _level_row(row) for key, row in sorted(levels.items(), key=_level_order)},
        "reasoning": _endpoint_row(settings.reasoning, [r.long for r in done]),
        "instruct": _endpoint_row(settings.instruct, [r.short for r in done]),
        "kept_mean_chars": {"long": _mean([r.long.picked.chars for r in kept]),
                            "short": _mean([r.short.picked.chars for r in kept])},
        "kept_mean_tokens": {"long": _mean_known([r.long.picked.tokens for r in kept]),
                             "short": _mean_known([r.short.picked.tokens for r in kept])},
    }


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    """Write the summary json atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def format_summary(summary: dict[str, Any]) -> str:
    """A few human-readable lines of the summary."""
    dropped = ", ".join(f"{k} {v}" for k, v in summary["dropped"].items()) or "none"
    lines = [
        f"distill: {summary['kept']} kept of {summary['questions']} questions ({summary['done']} done: "
        f"{summary['queried_now']} now, {summary['already_done']} before; {summary['not_done']} not done); "
        f"filter {summary['filter']}; dropped: {dropped}",
    ]
    for role in ("reasoning", "instruct"):
        row = summary[role]
        lines.append(
            f"  {role:9s} accuracy {_pct(row['accuracy'])} (samples {_pct(row['sample_accuracy'])}, finished "
            f"{_pct(row['finished_share'])}), mean length {_num(row['mean_chars'])} chars / "
            f"{_num(row['mean_tokens'])} tokens"
        )
    for level, row in summary["by_level"].items():
        lines.append(
            f"  level {level}: {row['kept']}/{row['questions']} kept, long acc {_pct(row['long_accuracy'])}, "
            f"short acc {_pct(row['short_accuracy'])}"
        )
    return "\n".join(lines)


def _endpoint_row(endpoint: EndpointSettings, forms: Sequence[FormResult]) -> dict[str, Any]:
    samples = sum(f.samples for f in forms)
    return {
        "url": _public_url(endpoint.url),
        "api": endpoint.api,
        "questions": len(forms),
        "accuracy": _mean([float(f.picked.correct) for f in forms]),
        "sample_accuracy": sum(f.correct for f in forms) / samples if samples else None,
        "finished_share": sum(f.finished for f in forms) / samples if samples else None,
        "mean_chars": _mean([f.picked.chars for f in forms]),
        "mean_tokens": _mean_known([f.picked.tokens for f in forms]),
    }


def _public_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _level_row(row: dict[str, Any]) -> dict[str, Any]:
    done = row["done"]
    return {
        "questions": row["questions"], "done": done, "kept": row["kept"],
        "dropped": {reason: row["dropped"][reason] for reason in DROP_REASONS if row["dropped"][reason]},
        "long_accuracy": row["long_correct"] / done if done else None,
        "short_accuracy": row["short_correct"] / done if done else None,
    }


def _level_key(level: Optional[int]) -> str:
    return "none" if level is None else str(level)


def _level_order(item: tuple[str, Any]) -> tuple[int, int]:
    return (1, 0) if item[0] == "none" else (0, int(item[0]))


def _mean(values: Sequence[float]) -> Optional[float]:
    return sum(values) / len(values) if values else None


def _mean_known(values: Sequence[Optional[int]]) -> Optional[float]:
    return _mean([float(v) for v in values if v is not None])


def _pct(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _num(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.0f}"

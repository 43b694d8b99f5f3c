"""`PolicyEvalReport`: what a freely choosing policy did, per dataset and difficulty level.

One `PolicyEvalRow` per (dataset, level), levels in numeric order, then an "all" row per
dataset (records without a level appear in "all" only). Each row's `PolicyMetrics` pools every
response of every seed: accuracy, mean response tokens (generated tokens, the stop token
included; the prompt is never counted), think / short ratio (share of responses whose first
token is that control token; the rest had no control token and count as wrong), the accuracy
within each mode, and the share that reached the token cap; and, per prompt over its k samples
(`hybrid_metrics`), avg@k and pass@k. When each mode was also forced on the same prompts
(`evaluate_policy(..., forced=True)`), the row adds the forced modes' avg@k, pass@k, tokens and
mode rates, the oracle think rate and HAcc, and the report keeps each dataset's forced-mode
table (`forced`). The report prints as an aligned table, serialises to json and is saved
atomically (temporary file, then rename).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from megathink.evaluation.forced_mode import MODES, ModeEvalRow
from megathink.evaluation.hybrid_metrics import (
    avg_at_k,
    hybrid_accuracy,
    mode_rate,
    oracle_think_rate,
    pass_at_k,
    samples_per_prompt,
)
from megathink.evaluation.judged import Judged
from megathink.rewards.modes import SHORT, THINK

__all__ = ["ALL", "Judged", "PolicyEvalReport", "PolicyEvalRow", "PolicyMetrics", "dataset_rows", "summarize"]

ALL = "all"
"""Level name of a dataset's row over all its records."""


@dataclass(frozen=True)
class PolicyMetrics:
    """Pooled over all seeds; `n` counts responses (prompts x seeds x samples per seed)."""

    n: int
    prompts: int
    accuracy: float
    mean_tokens: float
    think_ratio: float
    short_ratio: float
    think_accuracy: Optional[float]
    """Accuracy of the think-mode responses; None when there were none."""
    short_accuracy: Optional[float]
    """Accuracy of the short-mode responses; None when there were none."""
    truncated: float
    """Share of responses that reached max_new_tokens without the stop token."""
    k: Optional[int] = None
    """Samples per prompt: len(seeds) x samples per seed (None in reports written before it existed)."""
    avg_at_k: Optional[float] = None
    """Mean over prompts of the share of a prompt's k samples that are correct."""
    pass_at_k: Optional[float] = None
    """Share of prompts with at least one correct sample among their k."""
    forced_short_accuracy: Optional[float] = None
    """avg@k with short (NoThinking) forced on the same prompts; None without a forced pass."""
    forced_think_accuracy: Optional[float] = None
    """avg@k with think (Thinking) forced on the same prompts; None without a forced pass."""
    forced_short_pass_at_k: Optional[float] = None
    forced_think_pass_at_k: Optional[float] = None
    forced_short_tokens: Optional[float] = None
    """Mean response tokens with short forced (forced tokens included, prompt excluded)."""
    forced_think_tokens: Optional[float] = None
    forced_short_mode_rate: Optional[float] = None
    """Share of forced-short responses whose first token reads as short (1 when a token is forced)."""
    forced_think_mode_rate: Optional[float] = None
    """Share of forced-think responses whose first token reads as think."""
    oracle_think_rate: Optional[float] = None
    """Share of prompts where forced think is strictly more accurate than forced short: the think
    ratio of a policy that picks the better mode per prompt (compare with `think_ratio`)."""
    hacc: Optional[float] = None
    """Hybrid accuracy: share of prompts whose majority natural mode is a best mode by forced
    accuracy (ties count as correct; `hybrid_metrics`)."""


@dataclass(frozen=True)
class PolicyEvalRow:
    dataset: str
    level: str
    """A difficulty level ("1", "2", ...) or "all"."""
    metrics: PolicyMetrics


@dataclass
class PolicyEvalReport:
    rows: list[PolicyEvalRow]
    seeds: list[int]
    sampling: dict[str, Any] = field(default_factory=dict)
    """The sampling settings the responses were drawn with (temperature, top_p, ...)."""
    source: str = ""
    """What was evaluated (the model directory), for the record."""
    forced: dict[str, list[ModeEvalRow]] = field(default_factory=dict)
    """dataset -> its forced-mode table (per level, then "all"); empty without a forced pass."""

    @property
    def k(self) -> Optional[int]:
        """Samples per prompt (of the first row), None for an empty or old report."""
        return self.rows[0].metrics.k if self.rows else None

    def row(self, dataset: str, level: str = ALL) -> PolicyEvalRow:
        """The row of `dataset` at `level` ("all" by default); KeyError when absent."""
        for row in self.rows:
            if row.dataset == dataset and row.level == level:
                return row
        raise KeyError(f"no row for dataset {dataset!r} at level {level!r}")

    def format_table(self) -> str:
        """An aligned text table, one line per dataset and level (ratios and accuracies in %): the
        policy's own choice (k samples per prompt), then, with a forced pass, each mode forced,
        the oracle think rate and HAcc."""
        forced = any(row.metrics.hacc is not None for row in self.rows)
        header = ("dataset", "level", "n", "acc", f"pass@{self.k or 1}", "tokens", "think", "short", "acc think",
                  "acc short", "trunc")
        if forced:
            header += ("forced short", "forced think", "oracle think", "HAcc")
        lines = [header]
        for row in self.rows:
            m = row.metrics
            line = (
                row.dataset, row.level, str(m.n), _pct(m.accuracy), _pct(m.pass_at_k), f"{m.mean_tokens:.1f}",
                _pct(m.think_ratio), _pct(m.short_ratio), _pct(m.think_accuracy), _pct(m.short_accuracy), _pct(m.truncated),
            )
            if forced:
                line += (_pct(m.forced_short_accuracy), _pct(m.forced_think_accuracy), _pct(m.oracle_think_rate), _pct(m.hacc))
            lines.append(line)
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        return "\n".join(
            "  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))
            for line in lines
        )

    def to_json(self) -> dict[str, Any]:
        """{"source", "seeds", "k", "sampling", "rows": [{"dataset", "level", <metrics>}, ...],
        "forced": {dataset: [<ModeEvalRow>, ...]}}."""
        return {
            "source": self.source,
            "seeds": list(self.seeds),
            "k": self.k,
            "sampling": dict(self.sampling),
            "rows": [{"dataset": r.dataset, "level": r.level, **asdict(r.metrics)} for r in self.rows],
            "forced": {name: [asdict(row) for row in rows] for name, rows in self.forced.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "PolicyEvalReport":
        """The report `to_json()` wrote."""
        fields = set(PolicyMetrics.__dataclass_fields__)
        rows = [
            PolicyEvalRow(r["dataset"], r["level"], PolicyMetrics(**{k: v for k, v in r.items() if k in fields}))
            for r in data["rows"]
        ]
        forced = {name: [ModeEvalRow(**row) for row in table] for name, table in (data.get("forced") or {}).items()}
        return cls(
            rows=rows, seeds=list(data["seeds"]), sampling=dict(data.get("sampling", {})), source=data.get("source", ""),
            forced=forced,
        )

    @classmethod
    def load(cls, path: Path | str) -> "PolicyEvalReport":
        """Read a report `save` wrote."""
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))

    def save(self, path: Path | str) -> Path:
        """Write `to_json()` to `path` atomically (temporary sibling, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            tmp.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def flat_metrics(self, prefix: str = "eval") -> dict[str, float]:
        """`{prefix}/{dataset}/{metric}` of each "all" row and `.../think_ratio_L{level}` per level
        (the think-ratio-by-difficulty curve), for a metrics log; None values are left out."""
        out: dict[str, float] = {}
        for row in self.rows:
            m = row.metrics
            base = f"{prefix}/{row.dataset}"
            if row.level == ALL:
                for name, value in asdict(m).items():
                    if value is not None and name not in ("n", "prompts", "k"):
                        out[f"{base}/{name}"] = float(value)
            else:
                out[f"{base}/think_ratio_L{row.level}"] = m.think_ratio
                out[f"{base}/accuracy_L{row.level}"] = m.accuracy
                for name in ("pass_at_k", "hacc", "oracle_think_rate"):
                    value = getattr(m, name)
                    if value is not None:
                        out[f"{base}/{name}_L{row.level}"] = float(value)
        return out


def summarize(judged: Sequence[Judged], forced: Optional[Mapping[str, Sequence[Judged]]] = None) -> PolicyMetrics:
    """Pool graded responses into one row's metrics (`judged` must not be empty).

    forced: mode -> the judged responses with that mode forced on the same prompts (the same
    `prompt_index`es), for the forced columns, the oracle think rate and HAcc; None: those stay None.
    """
    n = len(judged)
    think = [j for j in judged if j.mode == THINK]
    short = [j for j in judged if j.mode == SHORT]
    extra: dict[str, Any] = {}
    if forced is not None and all(forced.get(mode) for mode in MODES):
        for mode in MODES:
            extra[f"forced_{mode}_accuracy"] = avg_at_k(forced[mode])
            extra[f"forced_{mode}_pass_at_k"] = pass_at_k(forced[mode])
            extra[f"forced_{mode}_tokens"] = sum(j.tokens for j in forced[mode]) / len(forced[mode])
            extra[f"forced_{mode}_mode_rate"] = mode_rate(forced[mode], mode)
        extra["oracle_think_rate"] = oracle_think_rate(forced[SHORT], forced[THINK])
        extra["hacc"] = hybrid_accuracy(judged, forced[SHORT], forced[THINK])
    return PolicyMetrics(
        n=n,
        prompts=len({j.prompt_index for j in judged}),
        accuracy=sum(j.correct for j in judged) / n,
        mean_tokens=sum(j.tokens for j in judged) / n,
        think_ratio=len(think) / n,
        short_ratio=len(short) / n,
        think_accuracy=sum(j.correct for j in think) / len(think) if think else None,
        short_accuracy=sum(j.correct for j in short) / len(short) if short else None,
        truncated=sum(j.truncated for j in judged) / n,
        k=samples_per_prompt(judged),
        avg_at_k=avg_at_k(judged),
        pass_at_k=pass_at_k(judged),
        **extra,
    )


def dataset_rows(
    dataset: str, judged: Sequence[Judged], forced: Optional[Mapping[str, Sequence[Judged]]] = None
) -> list[PolicyEvalRow]:
    """One row per level present (numeric order), then the "all" row; [] when nothing was judged.

    forced: as in `summarize`, split by level like `judged`."""
    if not judged:
        return []
    levels = sorted({j.level for j in judged if j.level is not None})

    def at(level: Optional[int]) -> Optional[dict[str, list[Judged]]]:
        if forced is None:
            return None
        return {mode: [j for j in forced.get(mode, ()) if level is None or j.level == level] for mode in MODES}

    rows = [
        PolicyEvalRow(dataset, str(lvl), summarize([j for j in judged if j.level == lvl], at(lvl))) for lvl in levels
    ]
    return rows + [PolicyEvalRow(dataset, ALL, summarize(judged, at(None)))]


def _pct(value: Optional[float]) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"

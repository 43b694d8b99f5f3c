"""`PolicyEvalReport`: what a freely choosing policy did, per dataset and difficulty level.

One `PolicyEvalRow` per (dataset, level), levels in numeric order, then an "all" row per
dataset (records without a level appear in "all" only). Each row's `PolicyMetrics` pools every
response of every seed: accuracy, mean response tokens (generated tokens, the stop token
included), think / short ratio (share of responses whose first token is that control token;
the rest had no control token and count as wrong), the accuracy within each mode, and the share
that reached the token cap. The report prints as an aligned table, serialises to json and
is saved atomically (temporary file, then rename).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from megathink.rewards.modes import SHORT, THINK

ALL = "all"
"""Level name of a dataset's row over all its records."""


@dataclass(frozen=True)
class Judged:
    """One graded response: its prompt, the prompt's level, the mode it chose, and the outcome."""

    prompt_index: int
    level: Optional[int]
    mode: str
    correct: bool
    tokens: int
    truncated: bool


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

    def row(self, dataset: str, level: str = ALL) -> PolicyEvalRow:
        """The row of `dataset` at `level` ("all" by default); KeyError when absent."""
        for row in self.rows:
            if row.dataset == dataset and row.level == level:
                return row
        raise KeyError(f"no row for dataset {dataset!r} at level {level!r}")

    def format_table(self) -> str:
        """An aligned text table, one line per dataset and level (ratios and accuracies in %)."""
        header = ("dataset", "level", "n", "acc", "tokens", "think", "short", "acc think", "acc short", "trunc")
        lines = [header]
        for row in self.rows:
            m = row.metrics
            lines.append((
                row.dataset, row.level, str(m.n), _pct(m.accuracy), f"{m.mean_tokens:.1f}", _pct(m.think_ratio),
                _pct(m.short_ratio), _pct(m.think_accuracy), _pct(m.short_accuracy), _pct(m.truncated),
            ))
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        return "\n".join(
            "  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))
            for line in lines
        )

    def to_json(self) -> dict[str, Any]:
        """{"source", "seeds", "sampling", "rows": [{"dataset", "level", <metrics>}, ...]}."""
        return {
            "source": self.source,
            "seeds": list(self.seeds),
            "sampling": dict(self.sampling),
            "rows": [{"dataset": r.dataset, "level": r.level, **asdict(r.metrics)} for r in self.rows],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "PolicyEvalReport":
        """The report `to_json()` wrote."""
        fields = set(PolicyMetrics.__dataclass_fields__)
        rows = [
            PolicyEvalRow(r["dataset"], r["level"], PolicyMetrics(**{k: v for k, v in r.items() if k in fields}))
            for r in data["rows"]
        ]
        return cls(rows=rows, seeds=list(data["seeds"]), sampling=dict(data.get("sampling", {})), source=data.get("source", ""))

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
                    if value is not None and name not in ("n", "prompts"):
                        out[f"{base}/{name}"] = float(value)
            else:
                out[f"{base}/think_ratio_L{row.level}"] = m.think_ratio
                out[f"{base}/accuracy_L{row.level}"] = m.accuracy
        return out


def summarize(judged: Sequence[Judged]) -> PolicyMetrics:
    """Pool graded responses into one row's metrics (`judged` must not be empty)."""
    n = len(judged)
    think = [j for j in judged if j.mode == THINK]
    short = [j for j in judged if j.mode == SHORT]
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
    )


def dataset_rows(dataset: str, judged: Sequence[Judged]) -> list[PolicyEvalRow]:
    """One row per level present (numeric order), then the "all" row; [] when nothing was judged."""
    if not judged:
        return []
    levels = sorted({j.level for j in judged if j.level is not None})
    rows = [PolicyEvalRow(dataset, str(lvl), summarize([j for j in judged if j.level == lvl])) for lvl in levels]
    return rows + [PolicyEvalRow(dataset, ALL, summarize(judged))]


def _pct(value: Optional[float]) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"

"""avg@k, pass@k, mode rates, the oracle think rate and HAcc against hand-computed values on small
synthetic `Judged` lists; the same numbers through `dataset_rows` per level, and the report's json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from megathink.evaluation.forced_mode import forced_rows
from megathink.evaluation.hybrid_metrics import (
    avg_at_k,
    hybrid_accuracy,
    mode_rate,
    oracle_think_rate,
    pass_at_k,
    samples_per_prompt,
)
from megathink.evaluation.judged import Judged
from megathink.evaluation.policy_report import PolicyEvalReport, dataset_rows

LEVEL = {0: 1, 1: 1, 2: 2, 3: 2}
"""prompt -> level: prompts 0, 1 at level 1; 2, 3 at level 2. Every prompt has k = 3 samples."""


def _judged(prompt: int, modes: str, correct: str, *, format_ok=None) -> list[Judged]:
    """One Judged per character: modes 's' short / 't' think / 'n' none, correct '1' / '0'."""
    names = {"s": "short", "t": "think", "n": "none"}
    return [
        Judged(prompt_index=prompt, level=LEVEL[prompt], mode=names[m], correct=c == "1", tokens=10 * (i + 1),
               truncated=False, format_ok=format_ok)
        for i, (m, c) in enumerate(zip(modes, correct))
    ]


# The policy's own choice (natural), and each mode forced on the same prompts.
NATURAL = _judged(0, "sst", "100") + _judged(1, "ttt", "110") + _judged(2, "stn", "000") + _judged(3, "nnn", "000")
FORCED_SHORT = [j for p, c in ((0, "110"), (1, "000"), (2, "100"), (3, "111")) for j in _judged(p, "sss", c, format_ok=True)]
FORCED_THINK = [j for p, m, c in ((0, "ttt", "110"), (1, "ttt", "111"), (2, "ttt", "110"), (3, "tts", "111"))
                for j in _judged(p, m, c, format_ok=True)]
# Per prompt: forced short accuracy 2/3, 0, 1/3, 1; forced think 2/3, 1, 2/3, 1.
# HAcc: p0 majority short, forced accuracies tie -> 1; p1 majority think, think better -> 1;
# p2 a tied vote (1 short, 1 think, 1 none), only think is better -> 0.5; p3 no vote -> 0.


def _level(judged: list[Judged], level: int) -> list[Judged]:
    return [j for j in judged if j.level == level]


def test_avg_and_pass_at_k() -> None:
    assert samples_per_prompt(NATURAL) == 3
    assert avg_at_k(NATURAL) == pytest.approx((1 / 3 + 2 / 3 + 0 + 0) / 4)
    assert pass_at_k(NATURAL) == 0.5  # prompts 0 and 1 have a correct sample
    assert avg_at_k(_level(NATURAL, 1)) == pytest.approx(0.5) and pass_at_k(_level(NATURAL, 1)) == 1.0
    assert avg_at_k(_level(NATURAL, 2)) == 0.0 and pass_at_k(_level(NATURAL, 2)) == 0.0
    assert avg_at_k(FORCED_SHORT) == pytest.approx((2 / 3 + 0 + 1 / 3 + 1) / 4) and pass_at_k(FORCED_SHORT) == 0.75
    # avg@k is a mean over prompts: a prompt with more samples does not weigh more
    uneven = _judged(0, "s", "1") + _judged(1, "sss", "000")
    assert avg_at_k(uneven) == 0.5 and samples_per_prompt(uneven) == 3


def test_mode_rates_read_from_the_first_token() -> None:
    assert mode_rate(NATURAL, "short") == pytest.approx(3 / 12) and mode_rate(NATURAL, "think") == pytest.approx(5 / 12)
    assert mode_rate(FORCED_SHORT, "short") == 1.0
    assert mode_rate(FORCED_THINK, "think") == pytest.approx(11 / 12)  # one forced-think response opened short


def test_hybrid_accuracy_counts_ties_as_correct() -> None:
    assert hybrid_accuracy(NATURAL, FORCED_SHORT, FORCED_THINK) == pytest.approx((1 + 1 + 0.5 + 0) / 4)
    assert hybrid_accuracy(_level(NATURAL, 1), FORCED_SHORT, FORCED_THINK) == 1.0
    assert hybrid_accuracy(_level(NATURAL, 2), FORCED_SHORT, FORCED_THINK) == pytest.approx(0.25)
    # a majority for the worse mode scores 0; for the better mode 1; forced accuracies tied: 1 either way
    worse = _judged(1, "sst", "000")
    assert hybrid_accuracy(worse, FORCED_SHORT, FORCED_THINK) == 0.0
    assert hybrid_accuracy(_judged(1, "tts", "000"), FORCED_SHORT, FORCED_THINK) == 1.0
    assert hybrid_accuracy(_judged(3, "sss", "000"), FORCED_SHORT, FORCED_THINK) == 1.0
    assert hybrid_accuracy(_judged(3, "ttt", "000"), FORCED_SHORT, FORCED_THINK) == 1.0
    # only prompts present in all three lists count; none in common: None
    assert hybrid_accuracy(NATURAL, FORCED_SHORT[:3], FORCED_THINK) == 1.0  # prompt 0 alone
    assert hybrid_accuracy(NATURAL, [], FORCED_THINK) is None


def test_oracle_think_rate() -> None:
    assert oracle_think_rate(FORCED_SHORT, FORCED_THINK) == 0.5  # think strictly better on prompts 1 and 2
    assert oracle_think_rate(_level(FORCED_SHORT, 1), _level(FORCED_THINK, 1)) == 0.5
    assert oracle_think_rate(FORCED_THINK, FORCED_THINK) == 0.0  # ties never need thinking
    assert oracle_think_rate([], FORCED_THINK) is None


def test_dataset_rows_carry_the_hybrid_metrics_per_level(tmp_path: Path) -> None:
    forced = {"short": FORCED_SHORT, "think": FORCED_THINK}
    rows = dataset_rows("toy", NATURAL, forced)
    assert [(r.dataset, r.level) for r in rows] == [("toy", "1"), ("toy", "2"), ("toy", "all")]
    l1, l2, total = (r.metrics for r in rows)
    assert (total.k, total.n, total.prompts) == (3, 12, 4)
    assert total.avg_at_k == pytest.approx(0.25) and total.accuracy == pytest.approx(0.25) and total.pass_at_k == 0.5
    assert (l1.hacc, l2.hacc, total.hacc) == pytest.approx((1.0, 0.25, 0.625))
    assert (l1.oracle_think_rate, l2.oracle_think_rate, total.oracle_think_rate) == (0.5, 0.5, 0.5)
    assert l1.forced_short_accuracy == pytest.approx(1 / 3) and l1.forced_think_accuracy == pytest.approx(5 / 6)
    assert l2.forced_short_pass_at_k == 1.0 and l2.forced_think_mode_rate == pytest.approx(5 / 6)
    assert total.forced_short_tokens == 20.0 and total.mean_tokens == 20.0  # response tokens only
    plain = dataset_rows("toy", NATURAL)[-1].metrics  # no forced pass: no forced columns, no HAcc
    assert plain.hacc is None and plain.forced_think_accuracy is None and plain.pass_at_k == 0.5

    table = forced_rows(forced)
    assert [(r.level, r.n, r.k) for r in table] == [("1", 2, 3), ("2", 2, 3), ("all", 4, 3)]
    assert table[-1].think_pass_at_k == 1.0 and table[-1].think_mode_rate == pytest.approx(11 / 12)

    report = PolicyEvalReport(rows=rows, seeds=[0, 1, 2], sampling={"temperature": 0.6}, forced={"toy": table})
    saved = json.loads(report.save(tmp_path / "eval.json").read_text())
    assert saved["k"] == 3 and saved["forced"]["toy"][-1]["level"] == "all"
    assert {"avg_at_k", "pass_at_k", "hacc", "oracle_think_rate", "forced_short_mode_rate"} <= saved["rows"][0].keys()
    assert PolicyEvalReport.load(tmp_path / "eval.json") == report
    flat = report.flat_metrics()
    assert flat["eval/toy/hacc"] == pytest.approx(0.625) and flat["eval/toy/hacc_L2"] == pytest.approx(0.25)
    assert "eval/toy/k" not in flat and "hacc" in report.format_table().splitlines()[0].lower()


def test_reports_written_before_the_hybrid_metrics_still_load(tmp_path: Path) -> None:
    old = {"source": "m", "seeds": [0], "sampling": {}, "rows": [
        {"dataset": "eval", "level": "all", "n": 2, "prompts": 2, "accuracy": 0.5, "mean_tokens": 3.0, "think_ratio": 1.0,
         "short_ratio": 0.0, "think_accuracy": 0.5, "short_accuracy": None, "truncated": 0.0},
    ]}
    (tmp_path / "before.json").write_text(json.dumps(old))
    report = PolicyEvalReport.load(tmp_path / "before.json")
    assert report.rows[0].metrics.accuracy == 0.5 and report.rows[0].metrics.hacc is None and report.k is None
    assert report.forced == {}

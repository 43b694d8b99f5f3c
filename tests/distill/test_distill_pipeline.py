"""`run_distill` against scripted endpoints (megathink_fixtures/scripted_endpoint.py, a stand-in for remote model
servers): filters and the SFT file, the summary, resume (after a torn journal line and after a failed
request), bounded concurrency, and the refusals that protect earlier work."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from megathink_fixtures.scripted_endpoint import Reply, ScriptedEndpoint

from megathink.config.data import DataConfig
from megathink.data.loaders import load_hybrid_sft, write_jsonl
from megathink.data.types import HybridSFTRecord, prompt_id
from megathink.distill import DistillSettings, EndpointSettings, SamplingSettings, run_distill
from megathink.distill.journal import journal_path, read_journal
from megathink.errors import ConfigError, DataError, ExistingOutputError

LONG_OK = "\nthink</think>The answer is \\boxed{%s}."
PROMPTS = [  # problem, answer, level, long reply, short reply
    ("alpha: 1+1", "2", 1, Reply(LONG_OK % 2, tokens=6), Reply("\\boxed{2}", tokens=3)),  # both right
    ("beta: 2+2", "4", 1, Reply(LONG_OK % 4, tokens=6), Reply("\\boxed{5}", tokens=3)),  # short wrong
    ("gamma: 3+3", "6", 2, Reply(LONG_OK % 7, tokens=6), Reply("\\boxed{6}", tokens=3)),  # long wrong
    ("delta: 4+4", "8", 2, Reply(LONG_OK % 9, tokens=6), Reply("\\boxed{1}", tokens=3)),  # both wrong
    ("epsilon: 5+5", "10", 3, Reply("\nthinking on and on", finish="length", tokens=64), Reply("\\boxed{10}")),
    ("zeta: 6+6", "12", 3, Reply(LONG_OK % 12), Reply("hm</think>\\boxed{12}")),  # short malformed
]


@pytest.fixture
def servers():
    reasoning = ScriptedEndpoint({p: long for p, _, _, long, _ in PROMPTS})
    instruct = ScriptedEndpoint({p: short for p, _, _, _, short in PROMPTS})
    yield reasoning, instruct
    reasoning.close()
    instruct.close()


def write_prompts(path: Path, rows: list[tuple] = PROMPTS) -> str:
    write_jsonl(str(path), [{"problem": p, "answer": a, "level": lvl} for p, a, lvl, *_ in rows])
    return str(path)


def make_settings(prompts: str, out: Path, reasoning: ScriptedEndpoint, instruct: ScriptedEndpoint, **fields) -> DistillSettings:
    sampling = SamplingSettings(max_tokens=64, temperature=0.6, top_p=0.95)
    base = dict(
        prompts=prompts, out=str(out), grader="boxed", progress_bar=False, retries=1, backoff_s=0.01, timeout_s=30.0,
        reasoning=EndpointSettings(role="reasoning", url=reasoning.url, api="openai", sampling=sampling),
        instruct=EndpointSettings(role="instruct", url=instruct.url, api="openai", sampling=sampling),
    )
    base.update(fields)
    return DistillSettings(**base)


def test_filters_sft_file_and_summary(servers, tmp_path: Path) -> None:
    reasoning, instruct = servers
    prompts = write_prompts(tmp_path / "prompts.jsonl")
    out = tmp_path / "hybrid.jsonl"
    result = run_distill(make_settings(prompts, out, reasoning, instruct))
    assert result.complete and not result.failures
    records = load_hybrid_sft(str(out), DataConfig())
    assert records == [HybridSFTRecord(problem="alpha: 1+1", answer="2", long=LONG_OK % 2, short="\\boxed{2}", level=1)]
    summary = json.loads((tmp_path / "hybrid.summary.json").read_text())
    assert summary == result.summary
    assert summary["kept"] == 1 and summary["queried_now"] == 6 and summary["already_done"] == 0
    assert summary["dropped"] == {"long_truncated": 1, "short_malformed": 1, "long_wrong": 1, "short_wrong": 1,
                                  "both_wrong": 1}
    assert summary["reasoning"]["accuracy"] == pytest.approx(3 / 6)  # alpha, beta, zeta
    assert summary["instruct"]["accuracy"] == pytest.approx(3 / 6)  # alpha, gamma, epsilon
    assert summary["reasoning"]["finished_share"] == pytest.approx(5 / 6)
    assert summary["reasoning"]["mean_tokens"] == pytest.approx((6 * 4 + 64) / 5)  # zeta has no token count
    assert summary["by_level"]["1"] == {"questions": 2, "done": 2, "kept": 1, "dropped": {"short_wrong": 1},
                                        "long_accuracy": 1.0, "short_accuracy": 0.5}
    assert summary["kept_mean_chars"] == {"long": len(LONG_OK % 2), "short": len("\\boxed{2}")}
    asked = len(reasoning.requests)

    # Another filter re-cuts the output from the journal: no new request.
    again = run_distill(make_settings(prompts, out, reasoning, instruct, filter="any_correct"))
    assert len(reasoning.requests) == asked and again.summary["queried_now"] == 0 and again.summary["already_done"] == 6
    assert [r.problem for r in load_hybrid_sft(str(out), DataConfig())] == ["alpha: 1+1", "beta: 2+2", "gamma: 3+3"]
    everything = run_distill(make_settings(prompts, out, reasoning, instruct, filter="all"))
    assert everything.summary["kept"] == 4 and everything.summary["dropped"] == {"long_truncated": 1, "short_malformed": 1}
    long_only = run_distill(make_settings(prompts, out, reasoning, instruct, filter="long_correct"))
    assert [r.problem for r in load_hybrid_sft(str(out), DataConfig())] == ["alpha: 1+1", "beta: 2+2"]
    assert long_only.summary["dropped"]["long_wrong"] == 2


def test_parquet_output_duplicates_limit_and_pick(tmp_path: Path) -> None:
    script_long = {"p1": [Reply("\nlong</think>\\boxed{1}"), Reply("\nx</think>\\boxed{1}")], "p2": Reply(LONG_OK % 2),
                   "p3": Reply(LONG_OK % 3)}
    script_short = {"p1": [Reply("\\boxed{0}"), Reply("It is \\boxed{1}."), Reply("\\boxed{1}")], "p2": Reply("\\boxed{2}"),
                    "p3": Reply("\\boxed{3}")}
    reasoning, instruct = ScriptedEndpoint(script_long), ScriptedEndpoint(script_short)
    try:
        rows = [("p1", "1", None), ("p2", "2", 2), ("p1", "1", None), ("p3", "3", None)]  # the first row has no level
        prompts = write_prompts(tmp_path / "prompts.jsonl", rows)
        out = tmp_path / "hybrid.parquet"
        settings = make_settings(prompts, out, reasoning, instruct, limit=2, pick="shortest_correct")
        settings = dataclasses.replace(
            settings,
            reasoning=dataclasses.replace(settings.reasoning, sampling=dataclasses.replace(settings.reasoning.sampling, n=2)),
            instruct=dataclasses.replace(settings.instruct, sampling=dataclasses.replace(settings.instruct.sampling, n=3)),
        )
        result = run_distill(settings)
        records = load_hybrid_sft(str(out), DataConfig())
        assert [(r.problem, r.long, r.short, r.level) for r in records] == [
            ("p1", "\nx</think>\\boxed{1}", "\\boxed{1}", None), ("p2", LONG_OK % 2, "\\boxed{2}", 2)]
        assert result.summary["questions"] == 2 and result.summary["duplicates_skipped"] == 1
        assert sorted(reasoning.problems_asked()) == ["p1", "p2"]
        line = read_journal(journal_path(str(out))).entries[prompt_id("p1")].result
        assert (line.short.samples, line.short.correct, line.long.samples, line.long.correct) == (3, 2, 2, 2)
    finally:
        reasoning.close()
        instruct.close()


def test_concurrency_is_bounded(tmp_path: Path) -> None:
    rows = [(f"question {i}", str(i), None) for i in range(8)]
    reasoning = ScriptedEndpoint({p: Reply(LONG_OK % a) for p, a, _ in rows}, delay_s=0.25)
    instruct = ScriptedEndpoint({p: Reply("\\boxed{%s}" % a) for p, a, _ in rows}, delay_s=0.25)
    try:
        prompts = write_prompts(tmp_path / "prompts.jsonl", rows)
        result = run_distill(make_settings(prompts, tmp_path / "out.jsonl", reasoning, instruct, concurrency=3))
        assert result.summary["kept"] == 8
        assert reasoning.max_in_flight == 3 and instruct.max_in_flight == 3
    finally:
        reasoning.close()
        instruct.close()


def test_failed_question_is_left_out_then_retried(servers, tmp_path: Path) -> None:
    reasoning, instruct = servers
    reasoning.statuses["beta: 2+2"] = [400]  # this prompt rejected once (not retried)
    instruct.statuses["alpha: 1+1"] = [503, 503]  # retried once (retries=1), then given up
    prompts = write_prompts(tmp_path / "prompts.jsonl")
    out = tmp_path / "hybrid.jsonl"
    first = run_distill(make_settings(prompts, out, reasoning, instruct, filter="all"))
    assert not first.complete and len(first.failures) == 2
    assert any("HTTP 400" in line and "beta" in line for line in first.failures)
    assert any("failed after 2 attempts: HTTP 503" in line for line in first.failures)
    assert first.summary["not_done"] == 2 and first.summary["failed_now"] == 2
    assert prompt_id("beta: 2+2") not in read_journal(journal_path(str(out))).entries
    reasoning.requests.clear()
    instruct.requests.clear()
    second = run_distill(make_settings(prompts, out, reasoning, instruct, filter="all"))
    assert second.complete and second.summary["queried_now"] == 2 and second.summary["kept"] == 4
    assert sorted(instruct.problems_asked()) == ["alpha: 1+1", "beta: 2+2"]


def test_torn_journal_line_is_redone_and_earlier_lines_are_kept(servers, tmp_path: Path) -> None:
    reasoning, instruct = servers
    prompts = write_prompts(tmp_path / "prompts.jsonl")
    out = tmp_path / "hybrid.jsonl"
    settings = make_settings(prompts, out, reasoning, instruct, concurrency=1)
    run_distill(settings)
    journal = journal_path(str(out))
    whole = journal.read_bytes()
    last = whole.rstrip(b"\n").rfind(b"\n") + 1
    journal.write_bytes(whole[: last + 30])  # killed while writing the last line
    reasoning.requests.clear()
    result = run_distill(settings)
    assert reasoning.problems_asked() == ["zeta: 6+6"] and result.summary["queried_now"] == 1
    assert journal.read_bytes()[:last] == whole[:last] and len(journal.read_bytes().splitlines()) == 7


def test_refusals_protect_earlier_work(servers, tmp_path: Path) -> None:
    reasoning, instruct = servers
    prompts = write_prompts(tmp_path / "prompts.jsonl")
    foreign = tmp_path / "theirs.jsonl"
    foreign.write_text("not ours\n")
    with pytest.raises(ExistingOutputError, match="--out .*theirs.jsonl.* exists and has no journal"):
        run_distill(make_settings(prompts, foreign, reasoning, instruct))
    assert foreign.read_text() == "not ours\n" and not reasoning.requests
    out = tmp_path / "hybrid.jsonl"
    settings = make_settings(prompts, out, reasoning, instruct)
    run_distill(settings)
    hotter = dataclasses.replace(settings.reasoning, sampling=dataclasses.replace(settings.reasoning.sampling, temperature=1.0))
    with pytest.raises(ConfigError, match=r"--reasoning-temperature 1.0 differs from 0.6"):
        run_distill(dataclasses.replace(settings, reasoning=hotter))
    with pytest.raises(ConfigError, match="--pick 'shortest_correct' differs"):
        run_distill(dataclasses.replace(settings, pick="shortest_correct"))


def test_bad_settings_name_the_flag(servers, tmp_path: Path) -> None:
    reasoning, instruct = servers
    prompts = write_prompts(tmp_path / "prompts.jsonl")
    good = make_settings(prompts, tmp_path / "o.jsonl", reasoning, instruct)
    cases = [
        (dict(out=str(tmp_path / "o.csv")), "--out"),
        (dict(prompts=str(tmp_path / "none.jsonl")), "--prompts"),
        (dict(concurrency=0), "--concurrency"),
        (dict(filter="some"), "--filter"),
        (dict(reasoning=dataclasses.replace(good.reasoning, api="native")), "--reasoning-tokenizer is unset"),
        (dict(instruct=dataclasses.replace(good.instruct, url="localhost:1")), "--instruct-url"),
        (dict(instruct=dataclasses.replace(good.instruct, api_key_env="MEGATHINK_NO_SUCH_VAR")), "--instruct-api-key-env"),
        (dict(reasoning=dataclasses.replace(good.reasoning, sampling=SamplingSettings(max_tokens=0, temperature=0.6, top_p=1.0))),
         "--reasoning-max-tokens"),
        (dict(problem_key="question"), "--problem-key"),
    ]
    for fields, flag in cases:
        with pytest.raises((ConfigError, DataError, FileNotFoundError), match=flag):
            run_distill(dataclasses.replace(good, **fields))
    assert not reasoning.requests and not instruct.requests

"""Policy evaluation on a tiny random model and the toy task: rows, ratios, seeds, table, json, graders."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from megathink.config import ConfigError, DataConfig, ModelConfig, TokenizerConfig
from megathink.data.tokenizer import load_tokenizer
from megathink.data.toy_task import ArithmeticTask, build_toy_datasets
from megathink.data.types import PromptRecord, TokenizerBundle
from megathink.evaluation.batch_graders import grade_with_pool, grade_with_verifier
from megathink.evaluation.policy_eval import evaluate_policy, response_text
from megathink.evaluation.policy_report import PolicyEvalReport
from megathink.models import HFBackend, build_hf_backend
from megathink.rollout import LocalEngine, RolloutRequest, Sample, SamplingParams

TOK = TokenizerConfig()
SMALL = ModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64)
MAX_NEW = 12


class RecordingEngine:
    """A `RolloutEngine` that keeps every (params, samples) it returns."""

    def __init__(self, inner: LocalEngine) -> None:
        self.inner = inner
        self.calls: list[tuple[SamplingParams, list[Sample]]] = []

    @property
    def weight_version(self) -> int:
        return self.inner.weight_version

    def generate(self, requests: Sequence[RolloutRequest], params: SamplingParams) -> list[Sample]:
        samples = self.inner.generate(requests, params)
        self.calls.append((params, samples))
        return samples

    def sync_weights(self, backend_or_state: object) -> int:
        return self.inner.sync_weights(backend_or_state)  # type: ignore[arg-type]


def _backend(bundle: TokenizerBundle, bias: dict[int, float]) -> HFBackend:
    """A tiny random model whose lm_head adds `bias` (token id -> logit offset) at every position."""
    backend = build_hf_backend(SMALL, bundle, device="cpu", seed=0)
    head = backend.model.lm_head
    biased = torch.nn.Linear(head.in_features, head.out_features, bias=True)
    biased.weight = head.weight  # keeps the tie with the input embeddings
    with torch.no_grad():
        biased.bias.zero_()
        for token, value in bias.items():
            biased.bias[token] = value
    backend.model.lm_head = biased
    return backend


@pytest.fixture(scope="module")
def bundle() -> TokenizerBundle:
    return load_tokenizer(TOK)


@pytest.fixture(scope="module")
def toy_records() -> list:
    return build_toy_datasets(DataConfig(levels=[1, 2], toy_train_size=4, toy_eval_per_level=4))[1]


def _params() -> SamplingParams:
    return SamplingParams(temperature=1.0, max_new_tokens=MAX_NEW, stop_token_ids=(load_tokenizer(TOK).eos_id,))


def _short_is_right(calls: list[list[str]]):
    def grade(texts: Sequence[str], modes: Sequence[str], refs: Sequence[str]) -> list[bool]:
        assert len(texts) == len(modes) == len(refs)
        calls.append(list(modes))
        return [mode == "short" for mode in modes]

    return grade


def test_report_matches_the_samples(bundle, toy_records) -> None:
    # Both control tokens get a push, so the policy picks short, think and neither.
    backend = _backend(bundle, {bundle.control.short: 4.0, bundle.control.think: 4.0})
    engine = RecordingEngine(LocalEngine(backend, pad_id=bundle.pad_id, batch_size=5))
    graded_modes: list[list[str]] = []
    report = evaluate_policy(
        engine, bundle, TOK, {"toy": toy_records}, _params(), _short_is_right(graded_modes), seeds=[0, 1, 2]
    )
    assert [(r.dataset, r.level) for r in report.rows] == [("toy", "1"), ("toy", "2"), ("toy", "all")]
    assert report.seeds == [0, 1, 2] and report.sampling["temperature"] == 1.0
    assert [params.seed for params, _ in engine.calls] == [0, 1, 2]
    per_seed = [[tuple(s.response_ids) for s in samples] for _, samples in engine.calls]
    assert per_seed[0] != per_seed[1] and per_seed[1] != per_seed[2]

    samples = [s for _, batch in engine.calls for s in batch]
    firsts = [s.response_ids[0] for s in samples]
    think = sum(f == bundle.control.think for f in firsts) / len(samples)
    short = sum(f == bundle.control.short for f in firsts) / len(samples)
    assert 0 < think < 1 and 0 < short < 1 and think + short < 1  # all three cases occur
    total = report.row("toy").metrics
    assert total.n == len(samples) == 3 * len(toy_records) and total.prompts == len(toy_records)
    assert total.think_ratio == pytest.approx(think) and total.short_ratio == pytest.approx(short)
    assert total.mean_tokens == pytest.approx(sum(s.num_generated for s in samples) / len(samples))
    assert total.truncated == pytest.approx(sum(s.finish_reason == "length" for s in samples) / len(samples))
    # Only responses with a control token are graded; "none" counts as wrong.
    assert sum(len(modes) for modes in graded_modes) == round((think + short) * len(samples))
    assert all("none" not in modes for modes in graded_modes)
    assert total.accuracy == pytest.approx(short)
    assert total.short_accuracy == 1.0 and total.think_accuracy == 0.0

    levels = {str(r.level) for r in toy_records}
    for row in report.rows:
        m = row.metrics
        for value in (m.accuracy, m.think_ratio, m.short_ratio, m.truncated):
            assert 0.0 <= value <= 1.0
        assert 1.0 <= m.mean_tokens <= MAX_NEW
        if row.level != "all":
            assert row.level in levels and m.n == 3 * sum(str(r.level) == row.level for r in toy_records)
            picked = [
                s.response_ids[0] == bundle.control.think
                for s in samples if str(toy_records[s.group_id].level) == row.level
            ]
            assert m.think_ratio == pytest.approx(sum(picked) / len(picked))


def test_forced_short_choice_gives_think_ratio_zero(bundle, toy_records) -> None:
    backend = _backend(bundle, {bundle.control.short: 100.0})
    engine = LocalEngine(backend, pad_id=bundle.pad_id)
    grade = grade_with_verifier(ArithmeticTask.verify, TOK)
    report = evaluate_policy(engine, bundle, TOK, {"toy": toy_records}, _params(), grade, seeds=[0, 1])
    for row in report.rows:
        m = row.metrics
        assert m.think_ratio == 0.0 and m.short_ratio == 1.0 and m.think_accuracy is None
        # `<short>` forever: malformed (a repeated control token) and never stopped
        assert m.accuracy == 0.0 and m.truncated == 1.0 and m.mean_tokens == MAX_NEW


def test_forced_think_choice_gives_think_ratio_one(bundle, toy_records) -> None:
    backend = _backend(bundle, {bundle.control.think: 100.0})
    report = evaluate_policy(
        LocalEngine(backend, pad_id=bundle.pad_id), bundle, TOK, {"toy": toy_records}, _params(),
        grade_with_verifier(ArithmeticTask.verify, TOK), seeds=[3],
    )
    assert all(r.metrics.think_ratio == 1.0 and r.metrics.short_accuracy is None for r in report.rows)


def test_records_without_level_get_only_an_all_row(bundle, toy_records) -> None:
    backend = _backend(bundle, {})
    plain = [PromptRecord(problem="12+34=", answer="46"), PromptRecord(problem="5+6=", answer="11")]
    report = evaluate_policy(
        LocalEngine(backend, pad_id=bundle.pad_id), bundle, TOK, {"toy": toy_records, "plain": plain, "empty": []},
        _params(), _short_is_right([]), seeds=[0],
    )
    assert [(r.dataset, r.level) for r in report.rows] == [("toy", "1"), ("toy", "2"), ("toy", "all"), ("plain", "all")]
    assert report.row("plain").metrics.n == 2
    with pytest.raises(KeyError):
        report.row("empty")
    with pytest.raises(ConfigError, match="seeds"):
        engine = LocalEngine(backend, pad_id=bundle.pad_id)
        evaluate_policy(engine, bundle, TOK, {"plain": plain}, _params(), _short_is_right([]), seeds=[])


def test_table_json_and_atomic_save(bundle, toy_records, tmp_path: Path) -> None:
    backend = _backend(bundle, {bundle.control.short: 3.0, bundle.control.think: 3.0})
    report = evaluate_policy(
        LocalEngine(backend, pad_id=bundle.pad_id), bundle, TOK, {"toy": toy_records}, _params(),
        _short_is_right([]), seeds=[0],
    )
    report.source = "some/model"
    lines = report.format_table().splitlines()
    assert len(lines) == 1 + len(report.rows)
    assert lines[0].split()[:4] == ["dataset", "level", "n", "acc"] and "think" in lines[0]
    assert len({len(line) for line in lines}) == 1  # aligned columns
    assert [line.split()[:2] for line in lines[1:]] == [["toy", "1"], ["toy", "2"], ["toy", "all"]]

    path = report.save(tmp_path / "out" / "eval.json")
    assert sorted(p.name for p in path.parent.iterdir()) == ["eval.json"]  # no temporary file left
    data = json.loads(path.read_text())
    assert data == json.loads(json.dumps(report.to_json()))
    assert data["source"] == "some/model" and data["seeds"] == [0]
    assert [(r["dataset"], r["level"]) for r in data["rows"]] == [("toy", "1"), ("toy", "2"), ("toy", "all")]
    assert {"n", "prompts", "accuracy", "mean_tokens", "think_ratio", "short_ratio", "think_accuracy",
            "short_accuracy", "truncated"} <= set(data["rows"][0])
    flat = report.flat_metrics()
    assert flat["eval/toy/think_ratio"] == report.row("toy").metrics.think_ratio
    assert flat["eval/toy/think_ratio_L2"] == report.row("toy", "2").metrics.think_ratio
    assert isinstance(PolicyEvalReport(rows=[], seeds=[0]).format_table(), str)


def test_response_text_drops_the_control_and_stop_tokens_only(bundle) -> None:
    tok = bundle.tokenizer
    body = tok.encode("1;</think>\\boxed{5}", add_special_tokens=False)
    stopped = Sample(0, [1], [bundle.control.think, *body, bundle.eos_id], [0.0] * (len(body) + 2), 0, "stop", 0, 0)
    assert response_text(stopped, bundle) == "1;</think>\\boxed{5}"
    cut = Sample(0, [1], [bundle.control.short, *body], [0.0] * (len(body) + 1), 0, "length", 0, 0)
    assert response_text(cut, bundle) == "1;</think>\\boxed{5}"


class _FakePool:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def grade_many(self, items: Sequence[tuple[str, str]]) -> list[bool]:
        self.items += list(items)
        return [pred == ref for pred, ref in items]


def test_grade_adapters() -> None:
    texts = ["\\boxed{5}", "3;</think>\\boxed{5}", "\\boxed{5}</think>", "x;</think>\\boxed{6}"]
    modes = ["short", "think", "short", "think"]
    refs = ["5", "5", "5", "5"]
    assert grade_with_verifier(ArithmeticTask.verify, TOK)(texts, modes, refs) == [True, True, False, False]
    pool = _FakePool()
    assert grade_with_pool(pool, TOK)(texts, modes, refs) == [True, True, False, False]
    assert pool.items == [("5", "5"), ("5", "5"), ("6", "5")]  # the malformed one never reaches the pool
    custom = TokenizerConfig(short_token="<s>", think_token="<t>", end_think_token="</t>")
    assert grade_with_verifier(ArithmeticTask.verify, custom)(["1</t>\\boxed{2}"], ["think"], ["2"]) == [True]


def test_adaptthink_template_reads_nothinking_from_a_leading_end_think(toy_records) -> None:
    tok = TokenizerConfig(template="adaptthink")
    bundle = load_tokenizer(tok)
    ending = LocalEngine(_backend(bundle, {bundle.control.end_think: 100.0}), pad_id=bundle.pad_id)
    report = evaluate_policy(ending, bundle, tok, {"toy": toy_records}, _params(), _short_is_right([]), seeds=[0])
    assert all(r.metrics.short_ratio == 1.0 and r.metrics.think_ratio == 0.0 for r in report.rows)

    free = RecordingEngine(LocalEngine(_backend(bundle, {bundle.control.end_think: 3.0}), pad_id=bundle.pad_id))
    texts: list[str] = []

    def grade(batch: Sequence[str], modes: Sequence[str], refs: Sequence[str]) -> list[bool]:
        texts.extend(batch)
        return [False] * len(batch)

    report = evaluate_policy(free, bundle, tok, {"toy": toy_records}, _params(), grade, seeds=[0, 1])
    samples = [s for _, batch in free.calls for s in batch]
    nothinking = sum(s.response_ids[0] == bundle.control.end_think for s in samples) / len(samples)
    total = report.row("toy").metrics
    assert 0 < nothinking < 1 and total.short_ratio == pytest.approx(nothinking)
    assert total.think_ratio == pytest.approx(1 - nothinking) and len(texts) == len(samples)  # no "none" mode


def test_saved_report_loads_back(bundle, toy_records, tmp_path: Path) -> None:
    from megathink.evaluation.policy_report import Judged, PolicyEvalReport, dataset_rows

    judged = [Judged(prompt_index=i, level=r.level, mode="think", correct=i % 2 == 0, tokens=3 + i, truncated=False)
              for i, r in enumerate(toy_records)]
    report = PolicyEvalReport(rows=dataset_rows("eval", judged), seeds=[0, 1], sampling={"temperature": 0.0}, source="m")
    assert PolicyEvalReport.load(report.save(tmp_path / "r.json")) == report

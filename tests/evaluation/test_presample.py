"""`run_presample` on a tiny random reference model and the toy task: file format, resume, grading, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from megathink.config import (
    ConfigError,
    DataConfig,
    LoggerConfig,
    ModelConfig,
    RewardConfig,
    RolloutConfig,
    RunConfig,
    TokenizerConfig,
    TrainerConfig,
)
from megathink.data.tokenizer import load_tokenizer
from megathink.data.toy_task import ArithmeticTask
from megathink.data.types import PromptRecord, TokenizerBundle, prompt_id
from megathink.errors import DataError, MissingPathError
from megathink.evaluation.batch_graders import grade_with_pool, grade_with_verifier
from megathink.evaluation.presample import (
    grade_thinking,
    presample_prompt,
    prompt_seed,
    run_presample,
    training_prompts,
)
from megathink.evaluation.reference_accuracy import load_reference_accuracy, read_rows
from megathink.methods.adaptthink import AdaptThinkConfig
from megathink.models.hf_backend import build_hf_backend
from megathink.rewards.grader_pool import GraderPool
from megathink.rollout.local_engine import LocalEngine
from megathink.rollout.types import RolloutRequest, Sample, SamplingParams

SMALL = ModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64)
TOK = TokenizerConfig(kind="pretrained", template="adaptthink")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny model with the toy tokenizer, saved as a HF directory."""
    bundle = load_tokenizer(TokenizerConfig())
    backend = build_hf_backend(SMALL, bundle, device="cpu", seed=0)
    return backend.save_hf(tmp_path_factory.mktemp("ref") / "hf", bundle.tokenizer)


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _cfg(out: Path, model_path: object, **algorithm: object) -> RunConfig:
    fields: dict[str, object] = dict(presample_k=4)
    fields.update(algorithm)
    return RunConfig(
        output_dir=str(out),
        model=ModelConfig(path=None if model_path is None else str(model_path)),
        tokenizer=TokenizerConfig(template="adaptthink") if model_path is None else TOK,
        data=DataConfig(levels=[1, 2], toy_train_size=6, toy_eval_per_level=0),
        rollout=RolloutConfig(temperature=1.0, max_new_tokens=10, batch_size=8),
        algorithm=AdaptThinkConfig(**fields),  # type: ignore[arg-type]
        trainer=TrainerConfig(device="cpu", num_threads=1, seed=3),
        reward=RewardConfig(grade_workers=1),
        logger=LoggerConfig(console=False, progress_bar=False, tensorboard=False),
    )


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _count_generate(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the number of requests of every LocalEngine.generate call."""
    calls: list[int] = []
    original = LocalEngine.generate

    def counting(self, requests, params):  # type: ignore[no-untyped-def]
        calls.append(len(requests))
        return original(self, requests, params)

    monkeypatch.setattr(LocalEngine, "generate", counting)
    return calls


@pytest.fixture(scope="module")
def full(reference: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Rbar_ref file of one uninterrupted run."""
    out = tmp_path_factory.mktemp("full")
    run_presample(_cfg(out, reference))
    return out / "reference_accuracy.jsonl"


def test_one_line_per_prompt_deterministic(reference: Path, full: Path, tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, reference, reference_accuracy_path=str(tmp_path / "rbar" / "again.jsonl"))
    records, toy = training_prompts(cfg)
    assert toy and len(records) == 6
    lines = _lines(full)
    assert [line["prompt_id"] for line in lines] == [prompt_id(r.problem) for r in records]
    for line, record in zip(lines, records):
        assert set(line) == {"prompt_id", "k", "correct", "rbar", "level"}
        assert line["k"] == 4 and 0 <= line["correct"] <= 4 and line["level"] == record.level
        assert line["rbar"] == line["correct"] / 4 and 0.0 <= line["rbar"] <= 1.0
    again = run_presample(cfg)
    assert (tmp_path / "rbar" / "again.jsonl").read_text() == full.read_text()
    assert again.sampled == 6 and again.skipped == 0
    assert again.rbar == {line["prompt_id"]: line["rbar"] for line in lines}
    summary = json.loads((tmp_path / "presample_summary.json").read_text())
    assert summary["prompts"] == 6 and summary["k"] == 4 and summary["template"] == "adaptthink"
    assert summary["mean_rbar"] == pytest.approx(sum(line["rbar"] for line in lines) / 6)
    assert set(summary["mean_rbar_by_level"]) == {"1", "2"}
    assert prompt_seed(3, "a") == prompt_seed(3, "a") != prompt_seed(4, "a")


def test_resume_after_a_partial_run_redoes_nothing(
    reference: Path, full: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_generate(monkeypatch)
    first = run_presample(_cfg(tmp_path, reference, presample_limit=2))
    path = tmp_path / "reference_accuracy.jsonl"
    assert first.sampled == 2 and len(_lines(path)) == 2 and calls == [1, 1]
    calls.clear()
    rest = run_presample(_cfg(tmp_path, reference))
    assert rest.sampled == 4 and rest.skipped == 2 and calls == [1] * 4
    assert [line["prompt_id"] for line in _lines(path)][:2] == list(first.rbar)
    assert {r["prompt_id"]: r for r in _lines(path)} == {r["prompt_id"]: r for r in _lines(full)}
    calls.clear()
    done = run_presample(_cfg(tmp_path, reference))  # everything done: no sampling at all
    assert calls == [] and done.sampled == 0 and done.skipped == 6 and done.rbar == rest.rbar


def test_a_torn_last_line_is_cut_and_redone(
    reference: Path, full: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "reference_accuracy.jsonl"
    text = full.read_text()
    path.write_text(text[: len(text) - 20])  # a kill in the middle of the last line
    rows, _ = read_rows(path)
    assert len(rows) == 5
    calls = _count_generate(monkeypatch)
    result = run_presample(_cfg(tmp_path, reference))
    assert calls == [1] and result.sampled == 1 and result.skipped == 5
    assert path.read_text() == text  # the torn tail was cut, the prompt redone identically


def test_another_k_over_an_existing_file_is_refused(reference: Path, full: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="algorithm.presample_k = 2 is invalid .* written with k = 4"):
        run_presample(_cfg(tmp_path, reference, presample_k=2, reference_accuracy_path=str(full)))


def test_load_reference_accuracy(full: Path, reference: Path, tmp_path: Path) -> None:
    records, _ = training_prompts(_cfg(tmp_path, reference))
    rbar = load_reference_accuracy(full, records + records[:2])
    assert rbar == {line["prompt_id"]: line["rbar"] for line in _lines(full)}
    extra = [
        PromptRecord(problem="what is " + "very " * 20 + "long?", answer="1"), PromptRecord(problem="2+2=", answer="4")
    ]
    with pytest.raises(ConfigError) as err:
        load_reference_accuracy(str(full), records + extra)
    message = str(err.value)
    assert message.startswith("algorithm.reference_accuracy_path = ")
    assert "lacks Rbar_ref for 2 of 8 training prompts" in message
    assert "'what is very very" in message and "...'" in message and "'2+2='" in message
    assert "run megathink presample with the same data and model" in message
    with pytest.raises(ConfigError, match="does not exist, so Rbar_ref for 6 of 6"):
        load_reference_accuracy(tmp_path / "none.jsonl", records)


def test_a_corrupt_middle_line_is_a_data_error(full: Path, tmp_path: Path) -> None:
    lines = full.read_text().splitlines(keepends=True)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(lines[0] + '{"prompt_id": "x", "k": 4, "correct": 9}\n' + "".join(lines[1:]))
    with pytest.raises(DataError, match="bad.jsonl line 2: correct = 9"):
        read_rows(bad)


def _samples(texts: list[str]) -> tuple[list[Sample], TokenizerBundle]:
    bundle = load_tokenizer(TokenizerConfig())
    samples = []
    for text in texts:
        ids = list(bundle.tokenizer.encode(text, add_special_tokens=False)) + [bundle.eos_id]
        samples.append(Sample(0, [1], ids, [0.0] * len(ids), 0, "stop", 0, 0))
    return samples, bundle


THINKING = [
    ("01;27;</think>\\boxed{12}", True),  # a thought, one </think>, the right box
    ("</think>\\boxed{12}", True),  # empty thought (NoThinking) is well formed too
    ("\\boxed{12}", False),  # no </think>
    ("1;</think>2;</think>\\boxed{12}", False),  # two </think>
    ("<think>1;</think>\\boxed{12}", False),  # a <think> in the response
    ("1;</think>\\boxed{13}", False),  # wrong answer
    ("\\boxed{12}</think>", False),  # the box is before </think>
]


def test_grade_thinking_with_the_toy_verifier() -> None:
    samples, bundle = _samples([text for text, _ in THINKING])
    grade = grade_with_verifier(ArithmeticTask([1], 0).verify, TOK)
    assert grade_thinking(samples, ["12"] * len(samples), bundle, grade) == [ok for _, ok in THINKING]


def test_presample_prompt_counts_correct_samples_with_the_prompts_own_seed() -> None:
    samples, bundle = _samples([text for text, _ in THINKING])
    seen: list[tuple[list[int], SamplingParams]] = []

    class FakeEngine:
        weight_version = 0

        def generate(self, requests: list[RolloutRequest], params: SamplingParams) -> list[Sample]:
            seen.append((requests[0].prompt_ids, params))
            return samples

        def sync_weights(self, backend_or_state: object) -> int:
            return 0

    record = PromptRecord(problem="05+07=", answer="12", level=2)
    grade = grade_with_verifier(ArithmeticTask([1], 0).verify, TOK)
    row = presample_prompt(FakeEngine(), bundle, TOK, record, SamplingParams(n=7), grade, seed=5)
    assert (row.prompt_id, row.k, row.correct, row.level) == (prompt_id("05+07="), 7, 2, 2) and row.rbar == 2 / 7
    (prompt_ids, params), = seen
    assert bundle.tokenizer.decode(prompt_ids).endswith("<think>\n")
    assert params.seed == prompt_seed(5, prompt_id("05+07=")) and params.n == 7


def test_prompt_files_are_graded_by_the_pool(reference: Path, tmp_path: Path) -> None:
    samples, bundle = _samples([text for text, _ in THINKING])
    with GraderPool.from_config(RewardConfig(grade_workers=1)) as pool:
        verdicts = grade_thinking(samples, ["12"] * len(samples), bundle, grade_with_pool(pool, TOK))
    assert verdicts == [ok for _, ok in THINKING]
    data = tmp_path / "train.jsonl"
    rows = [
        {"problem": "1+2=", "answer": "3", "level": 1}, {"problem": "4+4=", "answer": "8"},
        {"problem": "1+2=", "answer": "3"},  # a repeated prompt is sampled once
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = _cfg(tmp_path, reference, presample_k=2)
    cfg.data = DataConfig(source="files", train_path=str(data))
    result = run_presample(cfg)
    assert [line["prompt_id"] for line in _lines(result.path)] == [prompt_id("1+2="), prompt_id("4+4=")]
    assert [line["level"] for line in _lines(result.path)] == [1, None]


def test_bad_inputs_name_the_field(reference: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model.path = None is invalid for megathink presample"):
        run_presample(_cfg(tmp_path, None))
    with pytest.raises(MissingPathError, match="model.path = .* is not a directory"):
        run_presample(_cfg(tmp_path, tmp_path / "missing"))
    cfg = _cfg(tmp_path, reference)
    cfg.data = DataConfig(source="files", train_path=str(tmp_path / "none.jsonl"))
    with pytest.raises(MissingPathError, match="data.train_path = .* does not exist"):
        run_presample(cfg)
    cfg.data = DataConfig(source="files", sft_path="sft.jsonl")
    with pytest.raises(ConfigError, match="data.train_path = None is invalid for megathink presample"):
        run_presample(cfg)
    assert not (tmp_path / "reference_accuracy.jsonl").exists()

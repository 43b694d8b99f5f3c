"""Forced-mode evaluation on a tiny random model: rows, table, decoding, batching, grading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from megathink.config import DataConfig, EvalConfig, ModelConfig, TokenizerConfig
from megathink.data.chat_template import encode_prompt
from megathink.data.tokenizer import load_tokenizer
from megathink.data.toy_task import ArithmeticTask, build_toy_datasets
from megathink.data.types import PromptRecord
from megathink.evaluation import evaluate_forced_modes, format_mode_table, grade_boxed, save_eval_rows, summary_metrics
from megathink.evaluation.forced_mode import generate_responses
from megathink.models import build_hf_backend

TOK = TokenizerConfig()
SMALL = ModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64)


@pytest.fixture(scope="module")
def setup():
    bundle = load_tokenizer(TOK)
    backend = build_hf_backend(SMALL, bundle, device="cpu", seed=0)
    _, records = build_toy_datasets(DataConfig(levels=[1, 3], toy_train_size=4, toy_eval_per_level=3))
    return bundle, backend, records


def test_rows_table_and_json(setup, tmp_path: Path) -> None:
    bundle, backend, records = setup
    cfg = EvalConfig(max_new_tokens=10, batch_size=4)
    rows = evaluate_forced_modes(backend, bundle, TOK, records, cfg, ArithmeticTask.verify)
    assert [r.level for r in rows] == ["1", "3", "all"] and [r.n for r in rows] == [3, 3, 6]
    for r in rows:
        assert 0.0 <= r.short_acc <= 1.0 and 0.0 <= r.think_format_ok <= 1.0
        assert 2.0 <= r.short_tokens <= 11.0 and 2.0 <= r.think_tokens <= 11.0  # control token + up to 10
        assert r.short_truncated + r.short_format_ok <= 1.0 + 1e-9
    table = format_mode_table(rows)
    lines = table.splitlines()
    assert len(lines) == 4 and lines[0].split()[:4] == ["level", "n", "acc", "short"]
    assert lines[-1].startswith("all") and len({len(line) for line in lines}) == 1  # aligned
    assert "%" in lines[1]
    assert format_mode_table(rows[:-1]) == table  # the "all" row is rebuilt from the levels
    saved = json.loads(save_eval_rows(rows, tmp_path / "eval" / "final.json").read_text())
    assert saved[0].keys() == {
        "level", "n", "short_acc", "think_acc", "short_tokens", "think_tokens",
        "short_format_ok", "think_format_ok", "short_truncated", "think_truncated",
    }
    assert {"eval/short_acc", "eval/think_acc", "eval/short_acc_L1", "eval/think_tokens"} <= set(summary_metrics(rows))
    assert backend.model.training  # evaluation restores the training mode


def test_verifier_sees_decoded_response_after_control_token(setup) -> None:
    bundle, backend, records = setup
    seen: list[tuple[str, str, str]] = []

    def spy(text: str, mode: str, answer: str, **tokens: str) -> bool:
        seen.append((text, mode, answer))
        assert tokens == {"end_think_token": "</think>", "think_token": "<think>", "short_token": "<short>"}
        return mode == "short"

    rows = evaluate_forced_modes(backend, bundle, TOK, records[:2], EvalConfig(max_new_tokens=6), spy)
    assert rows[-1].short_acc == 1.0 and rows[-1].think_acc == 0.0
    assert [m for _, m, _ in seen] == ["short", "short", "think", "think"]
    assert [a for _, _, a in seen[:2]] == [r.answer for r in records[:2]]
    inputs = [encode_prompt(bundle, records[0].problem, TOK) + [bundle.control.short]]
    ids, truncated = generate_responses(backend, bundle, inputs, EvalConfig(max_new_tokens=6))[0]
    body = ids if truncated else ids[:-1]
    assert seen[0][0] == bundle.tokenizer.decode(body, skip_special_tokens=False)
    assert "<|endoftext|>" not in seen[0][0]


def test_left_padded_batches_match_single_generation(setup) -> None:
    bundle, backend, records = setup
    inputs = [encode_prompt(bundle, r.problem, TOK) + [bundle.control.think] for r in records]
    assert len({len(i) for i in inputs}) > 1  # different prompt lengths -> real padding
    cfg = EvalConfig(max_new_tokens=8, batch_size=6)
    batched = generate_responses(backend, bundle, inputs, cfg)
    assert batched == [generate_responses(backend, bundle, [i], cfg)[0] for i in inputs]


def test_sampling_is_seeded_and_leaves_the_global_rng_alone(setup) -> None:
    bundle, backend, records = setup
    cfg = EvalConfig(max_new_tokens=8, temperature=1.0)
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = evaluate_forced_modes(backend, bundle, TOK, records, cfg, ArithmeticTask.verify, seed=7)
    assert torch.equal(torch.rand(1), expected_next)
    b = evaluate_forced_modes(backend, bundle, TOK, records, cfg, ArithmeticTask.verify, seed=7)
    assert a == b


def test_records_without_level_and_empty_input(setup) -> None:
    bundle, backend, _ = setup
    prompts = [PromptRecord(problem="1+1=", answer="2"), PromptRecord(problem="2+3=", answer="5", level=2)]
    rows = evaluate_forced_modes(backend, bundle, TOK, prompts, EvalConfig(max_new_tokens=4), grade_boxed)
    assert [r.level for r in rows] == ["2", "none", "all"]
    assert evaluate_forced_modes(backend, bundle, TOK, [], EvalConfig(), grade_boxed) == []


@pytest.mark.parametrize(
    ("text", "mode", "answer", "ok"),
    [
        ("\\boxed{42}", "short", "42", True),
        ("\\boxed{ 4 2 }", "short", "42", True),
        ("\\boxed{\\frac{1}{2}}", "short", "\\frac {1}{2}", True),
        ("\\boxed{41}", "short", "42", False),
        ("no box", "short", "42", False),
        ("\\boxed{42}</think>", "short", "42", False),
        ("work \\boxed{1}</think>\\boxed{42}", "think", "42", True),
        ("work \\boxed{42}</think>done", "think", "42", False),
        ("a</think>b</think>\\boxed{42}", "think", "42", False),
        ("<think>\\boxed{42}", "short", "42", False),
    ],
)
def test_grade_boxed(text: str, mode: str, answer: str, ok: bool) -> None:
    assert grade_boxed(text, mode, answer) is ok


def test_grade_boxed_rejects_unknown_mode() -> None:
    with pytest.raises(ValueError, match="mode"):
        grade_boxed("\\boxed{1}", "medium", "1")


def test_adaptthink_forces_end_think_for_short_and_the_opener_for_think(setup) -> None:
    """Under the adaptthink template the prompt ends with <think>\\n: NoThinking is a forced
    `</think>`, Thinking the given opener (nothing by default); lengths count the forced tokens."""
    from megathink.evaluation.forced_mode import forced_tokens

    bundle, backend, records = setup
    cfg = TokenizerConfig(template="adaptthink")
    opener = bundle.tokenizer.encode("Alright", add_special_tokens=False)
    assert forced_tokens("short", bundle, "adaptthink", opener) == [bundle.control.end_think]
    assert forced_tokens("think", bundle, "adaptthink", opener) == opener
    assert forced_tokens("think", bundle, "adaptthink") == []
    assert forced_tokens("short", bundle, "thinkless") == [bundle.control.short]
    eval_cfg = EvalConfig(max_new_tokens=5)
    rows = evaluate_forced_modes(backend, bundle, cfg, records[:1], eval_cfg, lambda *a, **k: False, thinking_opener=opener)
    prompt = encode_prompt(bundle, records[0].problem, cfg)
    for mode, forced in (("short", [bundle.control.end_think]), ("think", opener)):
        ids, _ = generate_responses(backend, bundle, [prompt + forced], eval_cfg)[0]
        assert getattr(rows[-1], f"{mode}_tokens") == len(forced) + len(ids)

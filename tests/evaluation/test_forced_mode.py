"""Forced-mode evaluation on a tiny random model through the rollout engine: rows, table, decoding
(greedy equals HF `model.generate`, the path it replaced), batching, seeds, grading."""

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
from megathink.evaluation import (
    eval_params,
    evaluate_forced_modes,
    format_mode_table,
    grade_boxed,
    grade_with_verifier,
    save_eval_rows,
    summary_metrics,
)
from megathink.models import build_hf_backend
from megathink.rollout import LocalEngine, RolloutRequest

TOK = TokenizerConfig()
SMALL = ModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64)


@pytest.fixture(scope="module")
def setup():
    bundle = load_tokenizer(TOK)
    backend = build_hf_backend(SMALL, bundle, device="cpu", seed=0)
    _, records = build_toy_datasets(DataConfig(levels=[1, 3], toy_train_size=4, toy_eval_per_level=3))
    return bundle, backend, records


def _forced(backend, bundle, tok, records, cfg: EvalConfig, verify, *, batch_size: int = 256, **kwargs):
    """`evaluate_forced_modes` on the local engine, sampling as `cfg` says, grading with `verify`."""
    engine = LocalEngine(backend, pad_id=bundle.pad_id, batch_size=batch_size)
    grade = grade_with_verifier(verify, tok)
    return evaluate_forced_modes(engine, bundle, tok, records, eval_params(cfg, bundle.eos_id), grade, **kwargs)


@torch.no_grad()
def _hf_greedy(backend, bundle, ids: list[int], max_new_tokens: int) -> tuple[list[int], bool]:
    """What the replaced path did: HF `model.generate`, greedy, cut after the first EOS."""
    from transformers import GenerationConfig

    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, repetition_penalty=1.0,
                              eos_token_id=bundle.eos_id, pad_token_id=bundle.pad_id)
    new = backend.model.generate(input_ids=torch.tensor([ids]), generation_config=config)[0, len(ids):].tolist()
    return (new[: new.index(bundle.eos_id) + 1], False) if bundle.eos_id in new else (new, True)


def test_rows_table_and_json(setup, tmp_path: Path) -> None:
    bundle, backend, records = setup
    cfg = EvalConfig(max_new_tokens=10, batch_size=4)
    rows = _forced(backend, bundle, TOK, records, cfg, ArithmeticTask.verify, batch_size=4)
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
        "k", "short_pass_at_k", "think_pass_at_k", "short_mode_rate", "think_mode_rate",
    }
    assert all(r.k == 1 and r.short_mode_rate == r.think_mode_rate == 1.0 for r in rows)  # a forced control token
    assert {"eval/short_acc", "eval/think_acc", "eval/short_acc_L1", "eval/think_tokens"} <= set(summary_metrics(rows))
    assert backend.model.training  # evaluation restores the training mode


def test_verifier_sees_decoded_response_after_control_token(setup) -> None:
    bundle, backend, records = setup
    seen: list[tuple[str, str, str]] = []

    def spy(text: str, mode: str, answer: str, **tokens: str) -> bool:
        seen.append((text, mode, answer))
        assert tokens == {"end_think_token": "</think>", "think_token": "<think>", "short_token": "<short>"}
        return mode == "short"

    rows = _forced(backend, bundle, TOK, records[:2], EvalConfig(max_new_tokens=6), spy)
    assert rows[-1].short_acc == 1.0 and rows[-1].think_acc == 0.0
    assert [m for _, m, _ in seen] == ["short", "short", "think", "think"]
    assert [a for _, _, a in seen[:2]] == [r.answer for r in records[:2]]
    prompt = encode_prompt(bundle, records[0].problem, TOK)
    ids, truncated = _hf_greedy(backend, bundle, prompt + [bundle.control.short], 6)
    body = ids if truncated else ids[:-1]
    assert seen[0][0] == bundle.tokenizer.decode(body, skip_special_tokens=False)
    assert "<|endoftext|>" not in seen[0][0]


@pytest.fixture(scope="module")
def warmed_up(tmp_path_factory: pytest.TempPathFactory):
    """A 60-step SFT warm-up of a small model on toy levels 1-2 (a few seconds): its greedy answers
    end on EOS at different lengths, or run into the cap (a random model repeats one token)."""
    from megathink.config import CheckpointConfig, LoggerConfig, OptimizerConfig, RunConfig, SFTConfig, TrainerConfig
    from megathink.trainer.sft import run_sft

    out = tmp_path_factory.mktemp("warm")
    threads = torch.get_num_threads()
    cfg = RunConfig(
        output_dir=str(out),
        model=ModelConfig(hidden_size=64, num_layers=1, num_heads=4, num_kv_heads=2, intermediate_size=128),
        data=DataConfig(levels=[1, 2], toy_train_size=96, toy_eval_per_level=0, max_seq_len=64),
        trainer=TrainerConfig(device="cpu", num_threads=1),
        sft=SFTConfig(max_steps=60, micro_batch_size=8, optimizer=OptimizerConfig(lr=3e-3, min_lr=3e-4, warmup_ratio=0.05)),
        checkpoint=CheckpointConfig(save_every=0, save_hf=True),
        logger=LoggerConfig(progress_bar=False, console=False, tensorboard=False),
    )
    try:
        run_sft(cfg, out)
    finally:
        torch.set_num_threads(threads)
    tok = TokenizerConfig(kind="pretrained", path=str(out / "hf"))
    bundle = load_tokenizer(tok)
    backend = build_hf_backend(ModelConfig(path=str(out / "hf")), bundle, device="cpu", seed=0)
    _, records = build_toy_datasets(DataConfig(levels=[1, 2], toy_train_size=4, toy_eval_per_level=4))
    return bundle, backend, records, tok


def test_greedy_rows_equal_hf_generate_at_any_batch_size(warmed_up) -> None:
    """The engine's greedy continuation of prompt + forced token is `model.generate`'s (the path this
    evaluation used before), with left padding, in batches of any size."""
    bundle, backend, records, tok = warmed_up
    engine = LocalEngine(backend, pad_id=bundle.pad_id, batch_size=3)
    prompts = [encode_prompt(bundle, r.problem, tok) for r in records]
    assert len({len(p) for p in prompts}) > 1  # different prompt lengths -> real padding
    params = eval_params(EvalConfig(max_new_tokens=14), bundle.eos_id)
    finished = []
    for forced in ([bundle.control.short], [bundle.control.think]):
        samples = engine.generate([RolloutRequest(p, group_id=i, forced_prefix=forced) for i, p in enumerate(prompts)], params)
        for sample, prompt in zip(samples, prompts):
            assert sample.response_ids[:1] == forced
            assert (sample.response_ids[1:], sample.finish_reason == "length") == _hf_greedy(backend, bundle, prompt + forced, 14)
            finished.append((sample.finish_reason, len(sample.response_ids)))
    assert len({reason for reason, _ in finished}) == 2 and len({n for _, n in finished}) > 2  # EOS at several lengths, and the cap
    cfg = EvalConfig(max_new_tokens=14)
    rows = _forced(backend, bundle, tok, records, cfg, ArithmeticTask.verify, batch_size=3)
    assert rows == _forced(backend, bundle, tok, records, cfg, ArithmeticTask.verify, batch_size=1)
    assert rows[-1].short_truncated < 1.0 and rows[-1].think_format_ok > 0.0


def test_sampling_is_seeded_and_leaves_the_global_rng_alone(setup) -> None:
    bundle, backend, records = setup
    cfg = EvalConfig(max_new_tokens=8, temperature=1.0)
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = _forced(backend, bundle, TOK, records, cfg, ArithmeticTask.verify, seeds=[7])
    assert torch.equal(torch.rand(1), expected_next)
    b = _forced(backend, bundle, TOK, records, cfg, ArithmeticTask.verify, seeds=[7], batch_size=2)
    assert a == b
    two = _forced(backend, bundle, TOK, records, cfg, ArithmeticTask.verify, seeds=[7, 8])
    assert [r.k for r in two] == [2, 2, 2] and [r.n for r in two] == [3, 3, 6]  # k samples of each prompt per mode


def test_records_without_level_and_empty_input(setup) -> None:
    bundle, backend, _ = setup
    prompts = [PromptRecord(problem="1+1=", answer="2"), PromptRecord(problem="2+3=", answer="5", level=2)]
    rows = _forced(backend, bundle, TOK, prompts, EvalConfig(max_new_tokens=4), grade_boxed)
    assert [r.level for r in rows] == ["2", "none", "all"]
    assert _forced(backend, bundle, TOK, [], EvalConfig(), grade_boxed) == []


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
    rows = _forced(backend, bundle, cfg, records[:1], eval_cfg, lambda *a, **k: False, thinking_opener=opener)
    prompt = encode_prompt(bundle, records[0].problem, cfg)
    for mode, forced in (("short", [bundle.control.end_think]), ("think", opener)):
        ids, _ = _hf_greedy(backend, bundle, prompt + forced, 5)
        assert getattr(rows[-1], f"{mode}_tokens") == len(forced) + len(ids)
    assert rows[-1].short_mode_rate == rows[-1].think_mode_rate == 1.0  # `</think>` and a real opener

"""Token budgets and effort levels: rendered into prompts, read from files, assigned to prompts,
expanded for evaluation, taught by the toy SFT data, and handed to the L1 reward."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from types import SimpleNamespace

import pytest
import torch

from megathink_fixtures.r1_tokenizer import build_r1_style_tokenizer_dir
from megathink.config import DataConfig, RewardConfig, TokenizerConfig
from megathink.data.chat_template import encode_prompt, encode_record_prompt, render_prompt
from megathink.data.effort import assign_efforts, assigned_level, effort_splits, expand_by_effort, ordered_levels
from megathink.data.loaders import load_prompts, write_jsonl, write_parquet
from megathink.data.rl_prompts import rl_prompt_split
from megathink.data.sft_examples import encode_sft_pair, prepare_sft_pairs
from megathink.data.tokenizer import load_tokenizer
from megathink.data.toy_task import TOY_EFFORT_LEVELS, build_toy_datasets, record_for, response_tokens
from megathink.data.types import PromptRecord
from megathink.errors import ConfigError, DataError
from megathink.methods.base import Rollouts
from megathink.methods.rollout_step import shaping_inputs
from megathink.rewards.shaping import RewardShaping

BOS = "<｜begin▁of▁sentence｜>"
TOY_EFFORT = {"effort_levels": dict(TOY_EFFORT_LEVELS), "effort_assignment": "cycle"}


@pytest.fixture(scope="module")
def r1_dir(tmp_path_factory):
    return build_r1_style_tokenizer_dir(str(tmp_path_factory.mktemp("r1")))


# --- prompts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template, toy_text, r1_text",
    [
        (
            "thinkless",
            "<|user|>3+4= Think for 30 tokens.<|assistant|>",
            BOS + "<｜User｜>3+4= Think for 30 tokens.<｜Assistant｜>",
        ),
        (
            "adaptthink",
            "<|user|>3+4= Think for 30 tokens.<|assistant|><think>\n",
            BOS + "<｜User｜>3+4= Think for 30 tokens.<｜Assistant｜><think>\n",
        ),
    ],
)
def test_budget_is_rendered_for_both_templates(r1_dir, template, toy_text, r1_text):
    toy_cfg = TokenizerConfig(template=template)
    r1_cfg = TokenizerConfig(kind="pretrained", path=r1_dir, template=template)
    assert render_prompt(load_tokenizer(toy_cfg), "3+4=", toy_cfg, budget=30) == toy_text
    assert render_prompt(load_tokenizer(r1_cfg), "3+4=", r1_cfg, budget=30) == r1_text
    # no budget: the prompt of before
    assert render_prompt(load_tokenizer(toy_cfg), "3+4=", toy_cfg) == toy_text.replace(" Think for 30 tokens.", "")


def test_budget_follows_the_instruction_and_takes_a_custom_sentence():
    cfg = TokenizerConfig(instruction="Answer in \\boxed{}.", budget_instruction="Use at most {budget} tokens.")
    text = render_prompt(load_tokenizer(cfg), "3+4=", cfg, budget=512)
    assert text == "<|user|>3+4= Answer in \\boxed{}. Use at most 512 tokens.<|assistant|>"


def test_encode_record_prompt_reads_the_records_budget():
    cfg = TokenizerConfig()
    bundle = load_tokenizer(cfg)
    with_budget = PromptRecord(problem="12+34=", answer="46", budget=50)
    ids = encode_record_prompt(bundle, with_budget, cfg)
    assert ids == encode_prompt(bundle, "12+34=", cfg, budget=50)
    assert bundle.tokenizer.decode(ids) == "<|user|>12+34= Think for 50 tokens.<|assistant|>"
    assert encode_record_prompt(bundle, PromptRecord(problem="12+34=", answer="46"), cfg) == encode_prompt(
        bundle, "12+34=", cfg
    )
    for bad in (0, -3, True, 2.5):
        with pytest.raises(DataError, match="token budget"):
            render_prompt(bundle, "1+1=", cfg, budget=bad)


# --- loaders ---------------------------------------------------------------------------------


@pytest.mark.parametrize("writer, ext", [(write_jsonl, "jsonl"), (write_parquet, "parquet")])
def test_loaders_read_the_budget_column(tmp_path, writer, ext):
    path = str(tmp_path / f"p.{ext}")
    writer(path, [{"problem": "a", "answer": 1, "budget": 512}, {"problem": "b", "answer": 2, "budget": None}])
    records = load_prompts(path, DataConfig())
    assert [(r.problem, r.budget, r.effort) for r in records] == [("a", 512, None), ("b", None, None)]


def test_loaders_budget_key_absent_column_and_errors(tmp_path):
    path = str(tmp_path / "k.jsonl")
    write_jsonl(path, [{"problem": "a", "answer": "1", "n_tokens": 2048.0}])
    assert load_prompts(path, DataConfig(budget_key="n_tokens"))[0].budget == 2048
    assert load_prompts(path, DataConfig())[0].budget is None  # no 'budget' column: no budget
    for bad in ("0", "-5", '"ten"', "2.5", "true"):
        (tmp_path / "bad.jsonl").write_text('{"problem": "a", "answer": "1", "budget": ' + bad + "}\n")
        with pytest.raises(DataError, match=r"bad.jsonl line 1: field 'budget' = .* positive integer.*data.budget_key"):
            load_prompts(str(tmp_path / "bad.jsonl"), DataConfig())


# --- assignment and expansion ----------------------------------------------------------------


LEVELS = {"effort_levels": {"low": 10, "medium": 30, "high": 50}}


def _prompts(n):
    return [PromptRecord(problem=f"q{i}", answer=str(i)) for i in range(n)]


def test_cycle_assignment_goes_through_the_levels_in_budget_order():
    cfg = DataConfig(effort_levels={"high": 50, "low": 10, "medium": 30}, effort_assignment="cycle")
    assert ordered_levels(cfg) == [("low", 10), ("medium", 30), ("high", 50)]
    records = assign_efforts(_prompts(7), cfg, "train")
    assert [r.effort for r in records] == ["low", "medium", "high"] * 2 + ["low"]
    assert [r.budget for r in records] == [10, 30, 50] * 2 + [10]
    assert [r.problem for r in records] == [f"q{i}" for i in range(7)]


def test_random_assignment_is_deterministic_and_covers_the_levels():
    cfg = DataConfig(**LEVELS, effort_assignment="random", seed=3)
    first = assign_efforts(_prompts(300), cfg, "train")
    assert first == assign_efforts(_prompts(300), cfg, "train")
    counts = Counter(r.effort for r in first)
    assert set(counts) == {"low", "medium", "high"} and min(counts.values()) > 60
    assert all(TOY_EFFORT_LEVELS[r.effort] == r.budget for r in first)
    other_seed = assign_efforts(_prompts(300), DataConfig(**LEVELS, effort_assignment="random", seed=4), "train")
    assert [r.effort for r in other_seed] != [r.effort for r in first]
    assert [r.effort for r in assign_efforts(_prompts(300), cfg, "eval")] != [r.effort for r in first]
    assert assigned_level(cfg, "train", 17) == (first[17].effort, first[17].budget)


def test_assignment_keeps_the_datas_budget_and_none_changes_nothing():
    records = [PromptRecord(problem="a", answer="1", budget=999), PromptRecord(problem="b", answer="2")]
    cfg = DataConfig(effort_levels={"low": 10, "high": 50}, effort_assignment="cycle")
    assert [(r.budget, r.effort) for r in assign_efforts(records, cfg, "train")] == [(999, None), (50, "high")]
    assert assign_efforts(records, DataConfig(effort_levels={"low": 10}), "train") == records


def test_expand_by_effort_renders_every_record_at_every_level():
    records = [PromptRecord(problem="a", answer="1", level=1, budget=999), record_for(12, 34, 2)]
    cfg = DataConfig(effort_levels={"high": 50, "low": 10})
    expanded = expand_by_effort(records, cfg)
    assert [(r.problem, r.effort, r.budget) for r in expanded] == [
        ("a", "low", 10), ("12+34=", "low", 10), ("a", "high", 50), ("12+34=", "high", 50),
    ]
    assert type(expanded[1]) is type(records[1]) and expanded[1].long == records[1].long
    assert expanded[0].level == 1 and expanded[0].answer == "1"
    splits = effort_splits(records, cfg)
    assert list(splits) == ["low", "high"] and splits["high"] == expanded[2:]
    with pytest.raises(ConfigError, match="data.effort_levels"):
        expand_by_effort(records, DataConfig())


# --- RL prompts and the L1 reward ------------------------------------------------------------


def test_rl_prompt_split_carries_budgets(tmp_path):
    train_path, eval_path = str(tmp_path / "train.jsonl"), str(tmp_path / "eval.jsonl")
    write_jsonl(train_path, [{"problem": "a", "answer": 1, "budget": 7}, {"problem": "b", "answer": 2}])
    write_jsonl(eval_path, [{"problem": "c", "answer": 3}])
    cfg = DataConfig(source="files", train_path=train_path, eval_path=eval_path, effort_levels={"low": 10, "high": 50},
                     effort_assignment="cycle")
    train, evaluation = rl_prompt_split(cfg)
    assert [(r.budget, r.effort) for r in train] == [(7, None), (50, "high")]
    assert [(r.budget, r.effort) for r in evaluation] == [(10, "low")]
    toy_cfg = DataConfig(toy_train_size=60, toy_eval_per_level=4, toy_rl_prompts=9, **TOY_EFFORT)
    toy_train, toy_eval = rl_prompt_split(toy_cfg)
    assert len(toy_train) == 9 and [r.effort for r in toy_train] == ["low", "medium", "high"] * 3
    assert all(r.budget == TOY_EFFORT_LEVELS[r.effort] for r in toy_train + toy_eval)


def test_l1_shaping_receives_the_budgets_of_rl_records():
    train, _ = rl_prompt_split(DataConfig(toy_train_size=30, toy_eval_per_level=2, toy_rl_prompts=3, **TOY_EFFORT))
    lengths = [[8, 12], [25, 40], [47, 5]]  # two samples per prompt
    samples = [
        SimpleNamespace(group_id=g, response_ids=[0] * n) for g, pair in enumerate(lengths) for n in pair
    ]
    judged = [SimpleNamespace(correct=True, mode="think") for _ in samples]
    rollouts = Rollouts(samples, judged, train, torch.zeros(6, dtype=torch.long), torch.ones(6))
    inputs = shaping_inputs(rollouts)
    assert list(inputs.budgets) == [10, 10, 30, 30, 50, 50]
    shaped, metrics = RewardShaping(RewardConfig(l1_mode="exact", l1_alpha=0.01)).apply([1.0] * 6, inputs, 0.0)
    expected = [1 - 0.01 * abs(b - n) for b, n in zip([10, 10, 30, 30, 50, 50], [8, 12, 25, 40, 47, 5])]
    assert shaped == pytest.approx(expected)
    assert "shaping/l1_exact" in metrics


# --- the toy task ----------------------------------------------------------------------------

DEFAULT_TOY_RECORDS_SHA = "a471b5bd73d91388bdaebd36c934137d4a4ed81de0713c4372bc04fd6b5dfde8"
DEFAULT_TOY_SFT_SHA = {  # token ids, masks and modes of the first 2000 questions' examples, before effort levels
    "thinkless": "9b8fa259776b850669dda73e2763dbaddeaa57dad2aaf2605f9f80d3900bb696",
    "adaptthink": "3d4d3559a69ae25981b664b8521aa1ec05830476b967e49d7d1440b440639bc2",
}


def test_default_toy_data_is_unchanged_byte_for_byte():
    cfg = DataConfig()
    train, evaluation = build_toy_datasets(cfg)
    rows = [[r.problem, r.answer, r.long, r.short, r.level] for r in train + evaluation]
    assert all(r.budget is None and r.effort is None for r in train + evaluation)
    assert hashlib.sha256(json.dumps(rows).encode()).hexdigest() == DEFAULT_TOY_RECORDS_SHA
    for template, prefix in (("thinkless", ""), ("adaptthink", "Alright")):
        tok = TokenizerConfig(template=template)
        bundle = load_tokenizer(tok)
        assert render_prompt(bundle, train[0].problem, tok).startswith("<|user|>164+506=<|assistant|>")
        pairs, dropped = prepare_sft_pairs(train[:2000], bundle, tok, cfg.max_seq_len, long_prefix=prefix)
        ids = [[e.input_ids, e.loss_mask, e.mode] for p in pairs for e in p]
        assert dropped == 0
        assert hashlib.sha256(json.dumps(ids).encode()).hexdigest() == DEFAULT_TOY_SFT_SHA[template]


def test_toy_effort_levels_split_the_answers_as_documented():
    tok = TokenizerConfig()
    bundle = load_tokenizer(tok)
    for a, b, n, short, think in [(3, 4, 1, 5, 12), (9, 9, 1, 6, 19), (99, 99, 2, 7, 26), (347, 258, 3, 7, 26),
                                  (957, 858, 3, 8, 33), (12345, 12345, 5, 9, 40), (99999, 99999, 5, 10, 47)]:
        record = record_for(a, b, n)
        assert (response_tokens(record.short), response_tokens(record.long)) == (short, think)
        think_ex, short_ex = encode_sft_pair(record, bundle, tok)
        prompt = len(encode_record_prompt(bundle, record, tok))
        assert (len(short_ex) - prompt, len(think_ex) - prompt) == (short, think)
    low, medium, high = TOY_EFFORT_LEVELS["low"], TOY_EFFORT_LEVELS["medium"], TOY_EFFORT_LEVELS["high"]
    assert 10 <= low < 12 and 26 <= medium < 33 and high >= 47


@pytest.mark.parametrize("template, prefix", [("thinkless", ""), ("adaptthink", "Alright")])
def test_toy_sft_teaches_the_budget(template, prefix):
    cfg = DataConfig(toy_train_size=600, toy_eval_per_level=5, **TOY_EFFORT)
    train, evaluation = build_toy_datasets(cfg)
    assert Counter(r.effort for r in train) == {"low": 200, "medium": 200, "high": 200}
    assert {r.effort for r in evaluation} == {"low", "medium", "high"}
    tok = TokenizerConfig(template=template)
    bundle = load_tokenizer(tok)
    pairs, dropped = prepare_sft_pairs(train, bundle, tok, cfg.max_seq_len, long_prefix=prefix)
    assert dropped == 0  # budget sentence and longest answer stay within data.max_seq_len = 128
    assert max(len(e) for p in pairs for e in p) <= cfg.max_seq_len
    shapes = Counter()
    for record, pair in zip(train, pairs):
        text = bundle.tokenizer.decode(pair[0].input_ids)
        assert f"{record.problem} Think for {record.budget} tokens.<|assistant|>" in text
        think_fits = response_tokens(prefix + record.long) <= record.budget
        modes = tuple(e.mode for e in pair)
        if template == "thinkless":
            assert modes == (("think", "short") if think_fits else ("short",))
        else:
            assert modes == ("think", "short")
        shapes[(record.effort, modes)] += 1
    if template == "thinkless":
        assert shapes[("low", ("short",))] == 200  # no thought fits 10 tokens
        assert shapes[("high", ("think", "short"))] == 200  # every thought fits 50
        assert shapes[("medium", ("short",))] > 0 and shapes[("medium", ("think", "short"))] > 0


# --- the Hydra option ------------------------------------------------------------------------


def test_toy_effort_option_composes_typed():
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from megathink.launch.schema import register_schema, to_run_config

    GlobalHydra.instance().clear()
    register_schema()
    try:
        with initialize_config_module(config_module="megathink.hydra_conf", version_base=None):
            cfg = to_run_config(compose(config_name="train", overrides=["output_dir=out", "data=toy_effort"]))
            assert cfg.data.effort_levels == TOY_EFFORT_LEVELS and cfg.data.effort_assignment == "cycle"
            # a mapping override adds keys, which Hydra allows with ++ (docs/DATA.md, "Effort levels")
            over = ["output_dir=out", "++data.effort_levels={low:8,high:40}", "data.effort_assignment=random",
                    "++tokenizer.chat_template_kwargs={enable_thinking:false}", "tokenizer.mode_switch=/no_think"]
            cfg = to_run_config(compose(config_name="train", overrides=over))
            assert cfg.data.effort_levels == {"low": 8, "high": 40}
            assert cfg.tokenizer.chat_template_kwargs == {"enable_thinking": False}
            assert cfg.tokenizer.mode_switch == "/no_think"
            with pytest.raises(ConfigError, match="data.effort_levels.low = 0"):
                bad = ["output_dir=out", "++data.effort_levels={low:0}"]
                to_run_config(compose(config_name="train", overrides=bad))
    finally:
        GlobalHydra.instance().clear()

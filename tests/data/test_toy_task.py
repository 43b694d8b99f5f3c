"""The toy addition task: teacher records, verifier, and deterministic disjoint splits."""

import random
from collections import Counter

import pytest

from megathink.errors import ConfigError

from megathink.config import DataConfig
from megathink.data.toy_task import ArithmeticTask, build_toy_datasets, record_for, worked_sum

verify = ArithmeticTask.verify


def test_record_forms():
    record = record_for(347, 258, 3)
    assert record.problem == "347+258="
    assert record.answer == "605"
    assert record.short == "\\boxed{605}"
    assert record.long == worked_sum(347, 258, 3) + "</think>\\boxed{605}"
    assert record.long.count("</think>") == 1
    assert record.level == 3


def test_worked_form_is_fixed_width_least_significant_first():
    assert worked_sum(347, 258, 3) == "87015;54110;23106;"
    assert worked_sum(957, 858, 3) == "87015;55111;89118;00101;"  # final carry: its own step
    assert record_for(95, 17, 2).long == "75012;19111;00101;</think>\\boxed{112}"
    assert record_for(0, 0, 1).long == "00000;</think>\\boxed{0}"
    rng = random.Random(0)
    for level in range(1, 9):
        low, high = ArithmeticTask.operand_range(level)
        for _ in range(20):
            a, b = rng.randint(low, high), rng.randint(low, high)
            steps = worked_sum(a, b, level).split(";")[:-1]
            assert all(len(step) == 5 for step in steps)
            assert "".join(step[4] for step in reversed(steps)) == str(a + b)  # answer = result digits


@pytest.mark.parametrize("level", range(1, 9))
def test_teacher_is_correct_and_verified(level):
    task = ArithmeticTask(list(range(1, 9)), seed=0)
    rng = random.Random(level)
    for _ in range(50):
        record = task.make_record(level, rng)
        a, b = (int(x) for x in record.problem[:-1].split("+"))
        assert len(str(a)) == len(str(b)) == level
        assert record.answer == str(a + b)
        assert verify(record.long, "think", record.answer)
        assert verify(record.short, "short", record.answer)
        assert not verify(record.long, "short", record.answer)
        assert not verify(record.short, "think", record.answer)


def test_level_one_uses_all_digits():
    task = ArithmeticTask([1], seed=0)
    rng = random.Random(0)
    operands = {int(x) for _ in range(400) for x in task.make_record(1, rng).problem[:-1].split("+")}
    assert operands == set(range(10))


def test_verify_rejects_wrong_and_malformed():
    record = record_for(47, 38, 2)
    assert verify(record.long + "<|endoftext|>", "think", "85")  # trailing EOS text is fine
    assert not verify("\\boxed{84}", "short", "85")
    assert not verify("\\boxed{85", "short", "85")
    assert not verify("85", "short", "85")
    assert not verify("\\boxed{85}</think>\\boxed{85}", "short", "85")
    assert not verify("<think>\\boxed{85}", "short", "85")
    assert not verify("<short>\\boxed{85}", "short", "85")
    assert verify("\\boxed{1} \\boxed{85}", "short", "85")  # the last box counts
    assert not verify("\\boxed{85} \\boxed{1}", "short", "85")
    assert not verify(record.long.replace("</think>", ""), "think", "85")
    assert not verify(record.long + "</think>", "think", "85")
    assert not verify("<think>" + record.long, "think", "85")
    assert not verify("\\boxed{85}</think>", "think", "85")  # answer must follow </think>
    assert not verify("x</think>\\boxed{86}", "think", "85")
    assert verify("x</reason>\\boxed{85}", "think", "85", end_think_token="</reason>", think_token="<reason>")
    with pytest.raises(ValueError, match="mode"):
        verify("\\boxed{85}", "nothink", "85")


def test_datasets_deterministic_sizes_levels_and_disjoint():
    cfg = DataConfig(levels=[1, 2, 3, 4, 5], toy_train_size=1003, toy_eval_per_level=20, seed=7)
    train, evaluation = build_toy_datasets(cfg)
    again_train, again_eval = build_toy_datasets(cfg)
    assert train == again_train and evaluation == again_eval
    assert len(train) == 1003 and len(evaluation) == 5 * 20
    counts = Counter(r.level for r in train)
    assert sorted(counts.values()) == [200, 200, 201, 201, 201]
    assert Counter(r.level for r in evaluation) == {level: 20 for level in range(1, 6)}
    eval_problems = {r.problem for r in evaluation}
    assert len(eval_problems) == len(evaluation)
    assert not eval_problems & {r.problem for r in train}
    assert all(r.level is not None for r in train + evaluation)
    for record in train[:50] + evaluation[:50]:
        assert verify(record.long, "think", record.answer)
    other_cfg = DataConfig(levels=[1, 2, 3, 4, 5], toy_train_size=1003, toy_eval_per_level=20, seed=8)
    other_train, _ = build_toy_datasets(other_cfg)
    assert [r.problem for r in other_train] != [r.problem for r in train]


def test_level_one_train_repeats_but_never_eval():
    cfg = DataConfig(levels=[1], toy_train_size=500, toy_eval_per_level=15, seed=0)
    train, evaluation = build_toy_datasets(cfg)
    assert len(train) == 500 and len(evaluation) == 15
    assert len({r.problem for r in train}) == 85
    assert not {r.problem for r in train} & {r.problem for r in evaluation}


def test_larger_levels_train_is_distinct():
    train, _ = build_toy_datasets(DataConfig(levels=[2, 6], toy_train_size=600, toy_eval_per_level=10, seed=1))
    assert len({r.problem for r in train}) == 600


def test_level_one_holds_out_at_most_a_fifth_of_its_problems():
    train, evaluation = build_toy_datasets(DataConfig(levels=[1], toy_train_size=200, toy_eval_per_level=100))
    assert len(evaluation) == 20
    held_out = {r.problem for r in evaluation}
    assert len({r.problem for r in train}) == 80 and not held_out & {r.problem for r in train}


def test_errors_name_the_field():
    with pytest.raises(ConfigError, match="data.toy_train_size"):
        build_toy_datasets(DataConfig(levels=[3], toy_train_size=900_000, toy_eval_per_level=10))
    with pytest.raises(ConfigError, match="data.levels"):
        ArithmeticTask([0, 3], seed=0)

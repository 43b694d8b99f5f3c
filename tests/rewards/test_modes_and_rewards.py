"""Mode detection, answer-region format rules, response grading and the Thinkless reward table."""

import pytest
import torch

from megathink.config.reward import RewardConfig
from megathink.data.types import ControlTokenIds
from megathink.errors import DataError
from megathink.rewards import (
    answer_region,
    detect_mode,
    extract_answer,
    grade_response,
    grade_responses,
    is_equivalent,
    thinkless_reward,
    thinkless_rewards,
)

CONTROL = ControlTokenIds(short=151650, think=151648, end_think=151649)


def test_detect_mode_reads_only_the_first_response_token():
    assert detect_mode([151650, 5, 6], CONTROL) == "short"
    assert detect_mode([151648, 151649, 7], CONTROL) == "think"
    assert detect_mode([151649, 151648], CONTROL) == "none"
    assert detect_mode([5, 151650], CONTROL) == "none"
    assert detect_mode([], CONTROL) == "none"
    assert detect_mode(torch.tensor([151648, 3]), CONTROL) == "think"
    assert detect_mode((151650,), CONTROL) == "short"


def test_answer_region_format_rules():
    assert answer_region("The answer is \\boxed{4}.", "short") == "The answer is \\boxed{4}."
    assert answer_region("hmm \\boxed{3}</think>So \\boxed{4}", "think") == "So \\boxed{4}"
    assert answer_region("no end of thinking \\boxed{4}", "think") is None
    assert answer_region("a</think>b</think>\\boxed{4}", "think") is None
    assert answer_region("a<think>b</think>\\boxed{4}", "think") is None
    assert answer_region("</think>\\boxed{4}", "short") is None
    assert answer_region("x<short>\\boxed{4}", "short") is None
    assert answer_region("\\boxed{4}", "none") is None
    assert answer_region("a[/T]\\boxed{4}", "think", end_think_token="[/T]") == "\\boxed{4}"
    with pytest.raises(DataError):
        answer_region("\\boxed{4}", "long")


def test_extract_answer_takes_the_last_box_of_the_region():
    assert extract_answer("\\boxed{1}</think>first \\boxed{2} then \\boxed{3}", "think") == "3"
    assert extract_answer("thinking \\boxed{1}</think>no box", "think") is None
    assert extract_answer("\\boxed{5", "short") is None


@pytest.mark.parametrize(
    ("text", "mode", "expected"),
    [
        ("So \\boxed{\\frac12}.", "short", True),
        ("So \\boxed{0.4}.", "short", False),
        ("x=1/2 ... \\boxed{3}</think>The answer is \\boxed{0.5}", "think", True),
        ("\\boxed{0.5}</think>The answer is \\boxed{3}", "think", False),
        ("\\boxed{0.5}", "think", False),
        ("\\boxed{0.5}", "none", False),
        ("<think>\\boxed{0.5}</think>\\boxed{0.5}", "think", False),
    ],
)
def test_grade_response_with_a_function(text, mode, expected):
    assert grade_response(text, mode, "\\frac{1}{2}", is_equivalent) is expected


def test_grade_responses_batches_and_checks_lengths():
    calls = []

    class Recorder:
        def grade_many(self, items):
            calls.append(list(items))
            return [pred == ref for pred, ref in items]

    texts = ["\\boxed{4}", "t</think>\\boxed{5}", "no box", "\\boxed{4}"]
    modes = ["short", "think", "short", "none"]
    assert grade_responses(texts, modes, ["4", "5", "4", "4"], Recorder()) == [True, True, False, False]
    assert calls == [[("4", "4"), ("5", "5")]]
    with pytest.raises(DataError):
        grade_responses(texts, modes[:2], ["4"] * 4, Recorder())
    with pytest.raises(DataError):
        grade_responses(texts, modes, ["4"] * 4, grader="not a grader")


def test_eval_payload_answer_is_just_wrong(tmp_path):
    marker = tmp_path / "pwned"
    text = f"\\boxed{{__import__('os').system('touch {marker}')}}"
    assert grade_response(text, "short", "0", is_equivalent) is False
    assert not marker.exists()


@pytest.mark.parametrize(("gamma", "think_reward"), [(0.5, 0.5), (0.8, 0.2), (0.0, 1.0)])
def test_thinkless_reward_table(gamma, think_reward):
    cfg = RewardConfig(gamma=gamma)
    assert thinkless_reward("short", True, cfg) == 1.0
    assert thinkless_reward("think", True, cfg) == pytest.approx(think_reward)
    assert thinkless_reward("short", False, cfg) == -1.0
    assert thinkless_reward("think", False, cfg) == -1.0
    assert thinkless_reward("none", True, cfg) == -1.0
    assert thinkless_reward("none", False, cfg) == -1.0


def test_thinkless_reward_uses_the_config_values():
    cfg = RewardConfig(correct_short=2.0, gamma=0.5, wrong=-0.5)
    assert thinkless_rewards(["short", "think", "none", "think"], [True, True, True, False], cfg) == [
        2.0,
        1.5,
        -0.5,
        -0.5,
    ]
    rewards = torch.tensor(thinkless_rewards(["short", "think"], [True, False], cfg))
    assert rewards.shape == (2,) and rewards.dtype == torch.float32
    with pytest.raises(DataError):
        thinkless_rewards(["short"], [True, False], cfg)
    with pytest.raises(DataError):
        thinkless_reward("long", True, cfg)


def test_rewards_package_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, megathink.rewards; assert 'torch' not in sys.modules and 'sympy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)

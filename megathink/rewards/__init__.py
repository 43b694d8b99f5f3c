"""Answer extraction and grading of responses (rewards for RL, accuracy for evaluation).

* `boxed.py`: the last `\\boxed{}` of a text.
* `normalize.py`: MATH-style string normalisation and number/list parsing.
* `equivalence.py`: the grading rules: pre-checks, rules, then math-verify, all in-process
  (`is_equivalent_trusted`: no time bound, trusted input only).
* `grader_pool.py`: `GraderPool`, time-bounded and memory-capped grading in worker processes
  (`grader_worker.py`: one worker).
* `bounded_grading.py`: `is_equivalent(pred, ref)`, the public grading function: rules here,
  symbolic algebra in a shared pool, bounded time on any input from any thread.
* `modes.py`: the mode from the first response token and the answer region of a response.
* `grading.py`: correctness of whole responses (region, last box, grader).
* `thinkless_reward.py`: the Thinkless reward table.
* `adaptthink_reward.py`: AdaptThink's advantage `delta * 1[NoThinking] + R - Rbar_ref`.

Nothing here imports torch (grading workers import this package and must start fast).
"""

from megathink.rewards.adaptthink_reward import adaptthink_advantages
from megathink.rewards.boxed import extract_last_boxed
from megathink.rewards.bounded_grading import is_equivalent
from megathink.rewards.equivalence import MAX_ANSWER_CHARS, is_equivalent_trusted, precheck
from megathink.rewards.grader_pool import GraderPool
from megathink.rewards.grading import extract_answer, grade_response, grade_responses
from megathink.rewards.modes import MODES, answer_region, detect_mode
from megathink.rewards.normalize import strip_string
from megathink.rewards.thinkless_reward import thinkless_reward, thinkless_rewards

__all__ = [
    "adaptthink_advantages",
    "MAX_ANSWER_CHARS",
    "MODES",
    "GraderPool",
    "answer_region",
    "detect_mode",
    "extract_answer",
    "extract_last_boxed",
    "grade_response",
    "grade_responses",
    "is_equivalent",
    "is_equivalent_trusted",
    "precheck",
    "strip_string",
    "thinkless_reward",
    "thinkless_rewards",
]

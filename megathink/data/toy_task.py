"""The toy task "when to think": addition of two n-digit numbers, level n = 1..8.

Each question (`347+258=`) comes with both answer forms from an exact teacher:

- short: `\\boxed{605}`, the answer alone. A 2-layer character model learns this for 1-2 digits
  and fails from 3 digits on, which is what makes thinking worth its tokens on hard levels;
- long: a worked sum, then `</think>`, then `\\boxed{605}` (see `worked_sum`).

This task replaces the papers' math datasets so the whole pipeline (SFT warm-up, RL, the
think ratio per difficulty level) can be shown on a laptop CPU in minutes. The task owns its
verifier (`ArithmeticTask.verify`), which applies the papers' format rules: the answer is the
last `\\boxed{}`; a think-mode answer has exactly one `</think>` and no `<think>`.

Effort levels (`data.effort_levels` with `data.effort_assignment` cycle/random, data/effort.py):
every train and eval question gets a token budget, stated in its prompt ("Think for 30 tokens.").
Response lengths, in tokens with the control token and EOS as the L1 reward counts them
(`response_tokens`): short n+4 (n+5 with a final carry), think 7n+5 (7n+12 with a final carry),
so 5-10 and 12-47 over levels 1-5. `TOY_EFFORT_LEVELS` = {low: 10, medium: 30, high: 50}: low fits
every short answer and no thought, medium the thoughts of levels 1-2 and of level 3 without a
final carry, high every thought. The SFT examples of a question whose thought does not fit its
budget are the short answer alone (`sft_examples.encode_sft_pair`), so SFT teaches "a budget
below the thought asks for the direct answer"; RL's L1 reward (`reward.l1_mode`) refines it.
Without effort levels the records are exactly those of before (no budget, same order).
"""

from __future__ import annotations

import random
from typing import Sequence

from megathink.errors import ConfigError
from megathink.config.data import DataConfig, TOY_MAX_LEVEL
from megathink.data.effort import assign_efforts
from megathink.data.types import HybridSFTRecord
from megathink.rewards.grading import extract_answer

END_THINK = "</think>"
BOXED_OPEN = "\\boxed{"
_ENUMERATE_BELOW = 10_000  # levels with at most this many distinct problems are enumerated
TOY_EFFORT_LEVELS = {"low": 10, "medium": 30, "high": 50}
"""Effort levels that split the toy task's answers (module doc; hydra_conf/data/toy_effort.yaml)."""


def worked_sum(a: int, b: int, n: int) -> str:
    """The worked (thinking) form of `a + b` for n-digit operands, ending just before `</think>`.

    One 6-character step per digit place, least significant place first: the digit of `b`,
    the digit of `a`, the incoming carry, the two-digit column sum (carry-out, then the result
    digit), and `;`. For 347+258 the steps are `87015;54110;23106;`: 8+7+0=15, 5+4+1=10,
    2+3+1=06. A final carry gets a step of its own, `00101;` (0+0+1=01), so 957+858 is
    `87015;55111;89118;00101;`. The answer is then always the steps' result digits (the 5th
    character of each step) read backwards.

    Why this shape (measured with a 2-layer, hidden-128 character model trained on 32
    questions x 2 forms per step, lr 2e-3): the fixed width puts every field at
    a constant distance from the same field of the previous step (the carry is read 4 tokens
    back), each step restates the two digits it adds, and the extra carry step makes the
    answer digit j always sit 4 + 7j tokens before it is copied, with or without a final carry
    (without it, level-5 answers with a final carry were mis-copied). The compact step (6
    tokens instead of 9 for a spelled-out `7+8+0=15;`) also gives shorter sequences and ~1.5x
    more steps per second. After 2000 steps (~4 minutes on 2 CPU threads, one run) think
    accuracy was 100% on levels 1-5; the spelled-out form reached 55-72% on levels 3-5 in
    4 minutes.
    """
    digits_a = [int(c) for c in reversed(str(a).zfill(n))]
    digits_b = [int(c) for c in reversed(str(b).zfill(n))]
    carry = 0
    steps = []
    for da, db in zip(digits_a, digits_b):
        total = da + db + carry
        steps.append(f"{db}{da}{carry}{total:02d};")
        carry = total // 10
    if carry:
        steps.append("00101;")
    return "".join(steps)


def problem_text(a: int, b: int) -> str:
    return f"{a}+{b}="


def record_for(a: int, b: int, level: int) -> HybridSFTRecord:
    """The teacher's record for `a + b` at `level` (both answer forms)."""
    answer = str(a + b)
    boxed = BOXED_OPEN + answer + "}"
    return HybridSFTRecord(
        problem=problem_text(a, b),
        answer=answer,
        long=worked_sum(a, b, level) + END_THINK + boxed,
        short=boxed,
        level=level,
    )


class ArithmeticTask:
    """Generator and verifier of the toy addition task over `levels`, deterministic by `seed`."""

    def __init__(self, levels: Sequence[int], seed: int) -> None:
        levels = list(levels)
        if not levels or any(not 1 <= lvl <= TOY_MAX_LEVEL for lvl in levels):
            raise ConfigError(f"data.levels = {levels!r} is invalid: give levels in [1, {TOY_MAX_LEVEL}].")
        self.levels = levels
        self.seed = seed

    @staticmethod
    def operand_range(level: int) -> tuple[int, int]:
        """Inclusive range of an operand: n digits with a non-zero leading digit (0-9 at level 1)."""
        return (0 if level == 1 else 10 ** (level - 1)), 10**level - 1

    def num_distinct(self, level: int) -> int:
        low, high = self.operand_range(level)
        return (high - low + 1) ** 2

    def make_record(self, level: int, rng: random.Random) -> HybridSFTRecord:
        """One random question of `level`, drawn with `rng`."""
        low, high = self.operand_range(level)
        return record_for(rng.randint(low, high), rng.randint(low, high), level)

    def split_level(
        self, level: int, train_count: int, eval_count: int
    ) -> tuple[list[HybridSFTRecord], list[HybridSFTRecord]]:
        """(train, eval) records of one level; eval problems are distinct and never in train.

        Train problems are distinct too while the level has enough of them; a small level
        (e.g. level 1 with 100 problems) repeats its non-eval problems instead. At most a fifth of
        a level's distinct problems are held out, so level 1 keeps 80 of its 100 for training
        (holding out half left too few to learn single-digit sums as short answers).
        """
        rng = random.Random(f"toy:{self.seed}:{level}")
        total = self.num_distinct(level)
        eval_count = min(eval_count, total // 5)  # level 1 has only 100 problems
        if total <= _ENUMERATE_BELOW:
            low, high = self.operand_range(level)
            pool = [record_for(a, b, level) for a in range(low, high + 1) for b in range(low, high + 1)]
            rng.shuffle(pool)
            eval_records, rest = pool[:eval_count], pool[eval_count:]
            train = rest[:train_count]
            train += [rng.choice(rest) for _ in range(train_count - len(train))]
            return train, eval_records
        if eval_count + train_count > total // 2:
            raise ConfigError(
                f"data.toy_train_size asks for {train_count} questions at level {level}, more than half of "
                f"its {total} distinct problems: lower data.toy_train_size or add levels."
            )
        seen: set[str] = set()
        drawn: list[HybridSFTRecord] = []
        while len(drawn) < eval_count + train_count:
            record = self.make_record(level, rng)
            if record.problem not in seen:
                seen.add(record.problem)
                drawn.append(record)
        return drawn[eval_count:], drawn[:eval_count]

    def build(self, train_size: int, eval_per_level: int) -> tuple[list[HybridSFTRecord], list[HybridSFTRecord]]:
        """(train, eval): `train_size` questions spread evenly over the levels (shuffled), and
        `eval_per_level` held-out questions per level (grouped by level)."""
        base, extra = divmod(train_size, len(self.levels))
        train: list[HybridSFTRecord] = []
        evaluation: list[HybridSFTRecord] = []
        for index, level in enumerate(self.levels):
            level_train, level_eval = self.split_level(level, base + (index < extra), eval_per_level)
            train += level_train
            evaluation += level_eval
        random.Random(f"toy:{self.seed}:train-order").shuffle(train)
        return train, evaluation

    @staticmethod
    def verify(
        response_text: str,
        mode: str,
        answer: str,
        end_think_token: str = END_THINK,
        think_token: str = "<think>",
        short_token: str = "<short>",
    ) -> bool:
        """Whether a response is correct and well formed in its mode.

        `response_text` is the decoded response after the control token, special tokens kept.
        short: no think/end-think token, and the last boxed answer equals `answer`.
        think: exactly one end-think token, no think token, and the last boxed answer after
        the end-think token equals `answer`. A repeated short token is malformed in both modes.
        """
        if mode not in ("short", "think"):
            raise ValueError(f"mode = {mode!r} is invalid: use 'short' or 'think'.")
        boxed = extract_answer(
            response_text, mode, end_think_token=end_think_token, think_token=think_token, short_token=short_token
        )
        return boxed is not None and boxed.strip() == answer.strip()


def response_tokens(text: str) -> int:
    """Toy response length in tokens of an answer text (`record.long` / `record.short`): one per
    character, `\\boxed{` and `</think>` one each, plus the control token and EOS."""
    multi_character = (len(BOXED_OPEN) - 1) * text.count(BOXED_OPEN) + (len(END_THINK) - 1) * text.count(END_THINK)
    return len(text) - multi_character + 2


def build_toy_datasets(cfg: DataConfig) -> tuple[list[HybridSFTRecord], list[HybridSFTRecord]]:
    """(train, eval) records of the toy task for `cfg.levels`, deterministic by `cfg.seed`; with
    `data.effort_assignment` each gets a budget (split 'train' / 'eval', by its index)."""
    train, evaluation = ArithmeticTask(cfg.levels, cfg.seed).build(cfg.toy_train_size, cfg.toy_eval_per_level)
    return assign_efforts(train, cfg, "train"), assign_efforts(evaluation, cfg, "eval")

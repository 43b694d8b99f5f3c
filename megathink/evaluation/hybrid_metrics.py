"""Per-prompt metrics of an adaptive-thinking evaluation: avg@k, pass@k, mode rates and HAcc.

Every prompt is sampled k times (k = len(eval.seeds) x samples per seed). Over a list of
`Judged` records (several prompts, k records each):

- avg@k: the mean over prompts of the share of a prompt's k samples that are correct (with the
  same k for every prompt this equals the pooled accuracy);
- pass@k: the share of prompts with at least one correct sample among their k (the unbiased
  estimator 1 - C(n-c, k) / C(n, k) of the Codex paper with n = k);
- mode rate: the share of responses in a mode, the mode being read from the FIRST response
  token (`rewards.detect_mode`: `<short>` / `<think>`; under AdaptThink's template the prompt
  ends with `<think>\\n` and a response that opens with `</think>` is NoThinking, "short",
  anything else Thinking, "think"). A forced response's first token is its forced prefix, so
  under forcing the rate says how often the response really is in the forced mode (1 by
  construction for a forced control token; below 1 only where the forced prefix is empty,
  AdaptThink's think mode without an opener);
- oracle think rate: the share of prompts where forced thinking is strictly more accurate than
  forced short answering (per-prompt avg@k of each forced mode): how often a policy that picks
  the better mode per prompt would need to think;
- HAcc (hybrid accuracy): the share of prompts where the mode the policy chose (its majority
  mode over the k natural samples) is the better one by forced-mode accuracy on that prompt.
  Ties in forced accuracy count as correct (either mode is "the better one"); a tied vote (k
  even, as many short as think samples) scores the mean of the two modes' verdicts (0.5 when
  only one of them is the better one); samples without a control token cast no vote, and a
  prompt whose samples all lack one scores 0 (no mode was chosen). Only prompts evaluated in
  all three passes (natural, forced short, forced think) count.

Departure from the papers: neither Thinkless nor AdaptThink reports HAcc (it follows the
hybrid-reasoning evaluations that came after them); their accuracies are avg@k over k seeds,
which these match.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Optional

from megathink.evaluation.judged import Judged
from megathink.rewards.modes import SHORT, THINK


def by_prompt(judged: Sequence[Judged]) -> dict[int, list[Judged]]:
    """prompt_index -> its records, in the order given."""
    groups: dict[int, list[Judged]] = defaultdict(list)
    for item in judged:
        groups[item.prompt_index].append(item)
    return dict(groups)


def samples_per_prompt(judged: Sequence[Judged]) -> int:
    """k: the most samples any one prompt has (every prompt has k in the evaluations); 0 if empty."""
    return max((len(group) for group in by_prompt(judged).values()), default=0)


def prompt_accuracy(judged: Sequence[Judged]) -> dict[int, float]:
    """prompt_index -> the share of its samples that are correct."""
    return {index: sum(j.correct for j in group) / len(group) for index, group in by_prompt(judged).items()}


def avg_at_k(judged: Sequence[Judged]) -> float:
    """Mean over prompts of each prompt's accuracy over its k samples (`judged` must not be empty)."""
    accuracy = prompt_accuracy(judged)
    return sum(accuracy.values()) / len(accuracy)


def pass_at_k(judged: Sequence[Judged]) -> float:
    """Share of prompts with at least one correct sample (`judged` must not be empty)."""
    groups = by_prompt(judged)
    return sum(any(j.correct for j in group) for group in groups.values()) / len(groups)


def mode_rate(judged: Sequence[Judged], mode: str) -> float:
    """Share of the responses whose first token puts them in `mode` (`judged` must not be empty)."""
    return sum(j.mode == mode for j in judged) / len(judged)


def oracle_think_rate(forced_short: Sequence[Judged], forced_think: Sequence[Judged]) -> Optional[float]:
    """Share of the prompts of both lists where forced think beats forced short (strictly); None if none."""
    short, think = prompt_accuracy(forced_short), prompt_accuracy(forced_think)
    common = sorted(short.keys() & think.keys())
    if not common:
        return None
    return sum(think[p] > short[p] for p in common) / len(common)


def hybrid_accuracy(
    natural: Sequence[Judged], forced_short: Sequence[Judged], forced_think: Sequence[Judged]
) -> Optional[float]:
    """HAcc over the prompts present in all three lists (see the module docstring); None if none."""
    short, think = prompt_accuracy(forced_short), prompt_accuracy(forced_think)
    chosen = by_prompt(natural)
    common = sorted(chosen.keys() & short.keys() & think.keys())
    if not common:
        return None
    return sum(_hacc_score(chosen[p], short[p], think[p]) for p in common) / len(common)


def _hacc_score(samples: Sequence[Judged], short_acc: float, think_acc: float) -> float:
    """1 / 0.5 / 0: whether the majority mode of `samples` is a best mode by forced accuracy."""
    best = {SHORT: short_acc >= think_acc, THINK: think_acc >= short_acc}  # a tie: both are best
    votes = {SHORT: sum(j.mode == SHORT for j in samples), THINK: sum(j.mode == THINK for j in samples)}
    if votes[SHORT] == votes[THINK]:
        return 0.0 if votes[SHORT] == 0 else (best[SHORT] + best[THINK]) / 2
    majority = SHORT if votes[SHORT] > votes[THINK] else THINK
    return float(best[majority])

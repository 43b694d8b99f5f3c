"""Per-step RL metrics from graded rollouts: reward, accuracy and think ratio, overall and per level.

Keys (the plot command reads them): reward, accuracy, think_ratio, mean_tokens,
accuracy_short / accuracy_think, tokens_short / tokens_think, think_ratio_L<level>,
accuracy_L<level>, accuracy_short_L<level> / accuracy_think_L<level>, truncated. Under the
AdaptThink template "short" is NoThinking (the response opens with `</think>`) and "think" is
Thinking. Each method adds its own (`RLMethod.rollout_metrics` / `update_metrics`; AdaptThink's
nothinking_prob and nothinking_rising).
"""

from __future__ import annotations

from statistics import mean
from typing import Sequence

from megathink.evaluation.policy_report import Judged, summarize
from megathink.rewards.modes import SHORT, THINK


def rollout_metrics(judged: Sequence[Judged], rewards: Sequence[float]) -> dict[str, float]:
    overall = summarize(judged)
    out = {
        "reward": mean(rewards),
        "accuracy": overall.accuracy,
        "think_ratio": overall.think_ratio,
        "mean_tokens": overall.mean_tokens,
        "truncated": overall.truncated,
    }
    for mode in (SHORT, THINK):
        chosen = [j for j in judged if j.mode == mode]
        if chosen:
            out[f"accuracy_{mode}"] = mean(j.correct for j in chosen)
            out[f"tokens_{mode}"] = mean(j.tokens for j in chosen)
    for level in sorted({j.level for j in judged if j.level is not None}):
        level_judged = [j for j in judged if j.level == level]
        at_level = summarize(level_judged)
        out[f"think_ratio_L{level}"] = at_level.think_ratio
        out[f"accuracy_L{level}"] = at_level.accuracy
        for mode in (SHORT, THINK):
            chosen = [j for j in level_judged if j.mode == mode]
            if chosen:
                out[f"accuracy_{mode}_L{level}"] = mean(j.correct for j in chosen)
    return out

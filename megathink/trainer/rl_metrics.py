"""Per-step RL metrics from graded rollouts: reward, accuracy and think ratio, overall and per level.

Keys (the plot command reads them): reward, accuracy, think_ratio, mean_tokens,
accuracy_short / accuracy_think, tokens_short / tokens_think, think_ratio_L<level>,
accuracy_L<level>, accuracy_short_L<level> / accuracy_think_L<level>, truncated. Under the
AdaptThink template "short" is NoThinking (the response opens with `</think>`) and "think" is
Thinking. `nothinking_progress` adds AdaptThink's cold-start signals: nothinking_prob (the
policy's mean probability of opening with `</think>`, read from the forced NoThinking samples)
and nothinking_rising (the share of NoThinking responses whose probability under the policy
went up with this step's update).
"""

from __future__ import annotations

from statistics import mean
from typing import Sequence

import torch

from megathink.evaluation.policy_report import Judged, summarize
from megathink.config.rl import RLConfig
from megathink.models.protocol import PolicyBackend
from megathink.rewards.modes import SHORT, THINK
from megathink.trainer.rl_batch import RLBatch
from megathink.trainer.rl_update import score_batch


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


def nothinking_progress(
    backend: PolicyBackend, batch: RLBatch, *, end_think: int, temperature: float, rl: RLConfig
) -> dict[str, float]:
    """nothinking_prob and nothinking_rising of the NoThinking rows of `batch`, the update done.

    Before: the rollout engine's log-probs (the policy that sampled, forced tokens included).
    After: the same rows scored under `backend` now. {} when the batch has no NoThinking row.
    """
    rows = torch.nonzero(batch.input_ids[:, batch.prompt_len] == end_think).flatten()  # [k]
    if len(rows) == 0:
        return {}
    mask = batch.response_mask[rows]  # [k, T]
    before = (batch.rollout_logp[rows] * mask).sum(dim=1)  # [k]
    after = score_batch(backend, batch.select(rows), temperature=temperature, rl=rl)
    return {
        "nothinking_prob": float(batch.rollout_logp[rows, 0].exp().mean()),
        "nothinking_rising": float((after.sum(dim=1) > before).float().mean()),
    }

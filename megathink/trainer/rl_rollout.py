"""One RL step's rollouts, graded, with their advantages: Thinkless (GRPO / DeGRPO) or AdaptThink.

`thinkless_rollout`: `params.n` responses per prompt sampled from the policy; the mode is the
first response token, the reward the Thinkless table, the advantage group-relative.

`adaptthink_rollout` (ALGORITHMS.md section 2), with `algorithm.importance_sampling` on: per
prompt, two requests in one group. `n_no = round(n * nothinking_share)` samples (at least one,
at most n - 1) are forced to open with `</think>` and capped at `nothinking_max_new_tokens`;
the other `n - n_no` are forced to open with `thinking_opener` (all of its tokens) and capped
at `thinking_max_new_tokens`. The forced tokens are the first `Sample.forced` response tokens.
The proposal probability of each opener is the share of samples it got (`n_no / n`, or
`1 - n_no / n`): that, not the configured share, is what the batch was drawn from when n does
not split evenly. Off (the naive baseline), every response is sampled from the policy with
no forcing, capped at the larger of the two caps, and no opener probability is used.
Either way R is correctness under AdaptThink's format rules and
`A = delta * 1[NoThinking] + R - Rbar_ref(x)` (`rewards.adaptthink_advantages`).

The two forced halves are two `generate` calls whose seeds are derived from the step's seed, so
the samples are the same however the engine batches them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import torch

from megathink.algorithms import group_advantages
from megathink.config.algorithm import AlgorithmConfig
from megathink.config.reward import RewardConfig
from megathink.data.rl_prompts import RLRecord
from megathink.data.types import TokenizerBundle, prompt_id
from megathink.errors import ConfigError
from megathink.evaluation.batch_graders import GradeFn
from megathink.evaluation.policy_eval import judge_samples
from megathink.evaluation.policy_report import Judged
from megathink.rewards import adaptthink_advantages, thinkless_rewards
from megathink.rewards.modes import SHORT
from megathink.rollout.protocol import RolloutEngine
from megathink.rollout.rng import sequence_seed
from megathink.rollout.types import RolloutRequest, Sample, SamplingParams


@dataclass
class GradedRollout:
    """The samples of one step in batch order, with what the update and the metrics need."""

    samples: list[Sample]
    judged: list[Judged]
    rewards: list[float]
    """[B] Thinkless: the reward table's value; AdaptThink: R in {0, 1}."""
    advantages: torch.Tensor
    """[B] float32."""
    opener_prob: torch.Tensor
    """[B] float32: pi_IS of each sample's forced opener; 1 where nothing was forced."""


def thinkless_rollout(
    engine: RolloutEngine,
    prompts: Sequence[list[int]],
    records: Sequence[RLRecord],
    params: SamplingParams,
    bundle: TokenizerBundle,
    grade: GradeFn,
    *,
    template: str,
    reward: RewardConfig,
    std_normalize: bool,
) -> GradedRollout:
    """`params.n` policy samples per prompt (group id = index into `records`), Thinkless rewards."""
    requests = [RolloutRequest(prompt_ids=ids, group_id=g) for g, ids in enumerate(prompts)]
    samples = engine.generate(requests, params)
    judged = judge_samples(samples, records, bundle, grade, template=template)
    rewards = thinkless_rewards([j.mode for j in judged], [j.correct for j in judged], reward)
    group_ids = torch.tensor([s.group_id for s in samples])
    advantages = group_advantages(torch.tensor(rewards, dtype=torch.float32), group_ids, std_normalize=std_normalize)
    return GradedRollout(samples, judged, rewards, advantages, torch.ones(len(samples)))


def nothinking_count(n: int, share: float) -> int:
    """Samples per prompt forced to NoThinking: round(n * share), kept in [1, n - 1]."""
    if n < 2:
        raise ConfigError(
            f"rollout.n_samples = {n} is invalid with AdaptThink's importance sampling: each prompt needs at "
            "least one forced NoThinking and one forced Thinking sample (the authors use 16)."
        )
    return min(max(round(n * share), 1), n - 1)


def opener_ids(bundle: TokenizerBundle, algorithm: AlgorithmConfig) -> list[int]:
    """Token ids of `algorithm.thinking_opener` (no special tokens); refused if empty or NoThinking."""
    ids = list(bundle.tokenizer.encode(algorithm.thinking_opener, add_special_tokens=False))
    if not ids or ids[0] == bundle.control.end_think:
        raise ConfigError(
            f"algorithm.thinking_opener = {algorithm.thinking_opener!r} is invalid: it must encode to at least one "
            "token and not start with the end-of-thinking token; use a word that opens a thought, e.g. Alright."
        )
    return ids


def reference_accuracies(records: Sequence[RLRecord], rbar: Mapping[str, float]) -> list[float]:
    """Rbar_ref of each record, looked up by `prompt_id` of its problem."""
    return [rbar[prompt_id(record.problem)] for record in records]


def adaptthink_rollout(
    engine: RolloutEngine,
    prompts: Sequence[list[int]],
    records: Sequence[RLRecord],
    params: SamplingParams,
    bundle: TokenizerBundle,
    grade: GradeFn,
    *,
    algorithm: AlgorithmConfig,
    rbar: Sequence[float],
    opener: Sequence[int],
    default_cap: int,
) -> GradedRollout:
    """AdaptThink's rollouts (see the module docstring); `rbar[g]` is Rbar_ref of `records[g]`."""
    cap_no = algorithm.nothinking_max_new_tokens or default_cap
    cap_think = algorithm.thinking_max_new_tokens or default_cap
    n = params.n
    if algorithm.importance_sampling:
        n_no = nothinking_count(n, algorithm.nothinking_share)
        forced_no = [
            RolloutRequest(ids, group_id=g, forced_prefix=[bundle.control.end_think], max_new_tokens=cap_no)
            for g, ids in enumerate(prompts)
        ]
        forced_think = [
            RolloutRequest(ids, group_id=g, forced_prefix=list(opener), max_new_tokens=cap_think)
            for g, ids in enumerate(prompts)
        ]
        no_samples = engine.generate(forced_no, replace(params, n=n_no, seed=sequence_seed(params.seed, 0, 1)))
        think_samples = engine.generate(
            forced_think, replace(params, n=n - n_no, seed=sequence_seed(params.seed, 1, 1))
        )
        samples = no_samples + think_samples
        opener_prob = torch.tensor([n_no / n] * len(no_samples) + [1 - n_no / n] * len(think_samples))
    else:
        requests = [RolloutRequest(ids, group_id=g, max_new_tokens=max(cap_no, cap_think)) for g, ids in enumerate(prompts)]
        samples = engine.generate(requests, params)
        opener_prob = torch.ones(len(samples))
    judged = judge_samples(samples, records, bundle, grade, template="adaptthink")
    correct = [j.correct for j in judged]
    advantages = adaptthink_advantages(
        [j.mode == SHORT for j in judged], correct, [rbar[s.group_id] for s in samples], delta=algorithm.delta
    )
    rewards = [float(flag) for flag in correct]
    return GradedRollout(samples, judged, rewards, torch.tensor(advantages, dtype=torch.float32), opener_prob)

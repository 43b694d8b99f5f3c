"""AdaptThink (arXiv 2505.13417): constrained RL with importance-sampled openers.

Config: delta (the NoThinking bonus), the importance-sampling cold start (`importance_sampling`,
`nothinking_share`, `thinking_opener`, the two caps), the loss form, and the reference pass
(`presample_k`, `presample_limit`, `reference_accuracy_path`). No KL, no entropy term.

Rollout plan (ALGORITHMS.md section 2), with importance sampling: per prompt two arms, `n_no =
round(n * nothinking_share)` samples (at least one, at most n - 1) forced to open with
`</think>` and capped at `nothinking_max_new_tokens`, the other `n - n_no` forced to open with
`thinking_opener` (all of its tokens) and capped at `thinking_max_new_tokens`; each opener's
proposal probability is the share of samples it got (`n_no / n`, `1 - n_no / n`), which is
what the batch was drawn from when n does not split evenly. Without it (the naive baseline):
one free arm capped at the larger cap, no importance weights.

Reward R: correct under AdaptThink's format rules (the "adaptthink" reading of a response).
Advantage: `A = delta * 1[NoThinking] + R - Rbar_ref(x)`, Rbar_ref from the presample file,
loaded when the method is built (before the model): a prompt without one fails fast. Loss:
`algorithms.adaptthink_loss` with each row's opener probability at column 0 and log 1 on the
rest of a multi-token opener ('code' or 'paper' form). Metrics after the update:
nothinking_prob and nothinking_rising (`update_metrics`). The final forced 'think' evaluation
opens with the thinking opener.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Optional

import torch

from megathink.algorithms import adaptthink_loss
from megathink.config.algorithm import (
    ADAPTTHINK_FORMS,
    AlgorithmConfig,
    register_algorithm_config,
)
from megathink.config.validation import (
    ConfigError,
    check_choice,
    check_float,
    check_int,
    check_nonempty_str,
    fail,
)
from megathink.data.types import TokenizerBundle, prompt_id
from megathink.evaluation.reference_accuracy import (
    load_reference_accuracy,
    reference_accuracy_file,
)
from megathink.methods.base import (
    LossFn,
    MethodContext,
    Rescore,
    RLMethod,
    Rollouts,
    register_method,
)
from megathink.methods.loss_binding import check_loss_impl
from megathink.methods.rollout_plan import RolloutArm, split_group
from megathink.rewards import adaptthink_advantages
from megathink.rewards.modes import SHORT
from megathink.rollout.types import SamplingParams

if TYPE_CHECKING:
    from megathink.config.run import RunConfig
    from megathink.trainer.rl_batch import RLBatch


@register_algorithm_config
@dataclass(kw_only=True)
class AdaptThinkConfig(AlgorithmConfig):
    uses_presample: ClassVar[bool] = True

    name: str = "adaptthink"
    """'adaptthink': AdaptThink's constrained RL."""

    kl_coef: float = 0.0
    """Must be 0: the AdaptThink loss has no KL term."""

    entropy_coef: float = 0.0
    """Must be 0: the AdaptThink loss has no entropy term."""

    delta: float = 0.05
    """Bonus for NoThinking responses (1/lambda of the constrained objective)."""

    importance_sampling: bool = True
    """The cold start: force `nothinking_share` of each prompt's samples to open with the
    end-of-thinking token and the rest with `thinking_opener` (pi_IS of the opener is that
    share). False is the naive baseline: every response sampled from the policy, no forcing,
    the plain sequence ratio against the old policy."""

    nothinking_share: float = 0.5
    """Share of each prompt's `rollout.n_samples` forced to NoThinking (rounded; at least one of
    each kind). It is pi_IS of the NoThinking opener, 1 - it of the Thinking one."""

    thinking_opener: str = "Alright"
    """The text forced at the start of Thinking samples (a word that opens the reference model's
    thoughts; tokenised without special tokens, every token forced)."""

    nothinking_max_new_tokens: Optional[int] = None
    """Generated-token cap of NoThinking samples; None: rollout.max_new_tokens (the authors: 4096)."""

    thinking_max_new_tokens: Optional[int] = None
    """Generated-token cap of Thinking samples; None: rollout.max_new_tokens (the authors: 16384)."""

    form: str = "code"
    """Loss: 'code' (length-normalised sequence ratio, the released models) or 'paper'
    (full-sequence ratio, Eq. 9)."""

    presample_k: int = 16
    """Samples of the reference model per training prompt whose mean accuracy is Rbar_ref
    (`megathink presample`; the paper's K = 16)."""

    presample_limit: int = 0
    """`megathink presample`: only the first N distinct training prompts (smoke runs); 0 = all."""

    reference_accuracy_path: Optional[str] = None
    """The per-prompt Rbar_ref file (.jsonl) that `megathink presample` writes and AdaptThink
    training reads; None: `<output_dir>/reference_accuracy.jsonl`."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("kl_coef", "entropy_coef"):
            if getattr(self, key) != 0:
                raise ConfigError(
                    f"algorithm.{key} = {getattr(self, key)!r} is invalid with algorithm.name='adaptthink': "
                    f"the AdaptThink loss has no such term; set algorithm.{key}=0 (algorithm=adaptthink does)."
                )
        check_float("algorithm.delta", self.delta, low=0.0)
        if not isinstance(self.importance_sampling, bool):
            fail("algorithm.importance_sampling", self.importance_sampling, "must be true or false")
        check_float(
            "algorithm.nothinking_share", self.nothinking_share, low=0.0, high=1.0,
            low_inclusive=False, high_inclusive=False,
        )
        check_nonempty_str("algorithm.thinking_opener", self.thinking_opener)
        for key in ("nothinking_max_new_tokens", "thinking_max_new_tokens"):
            if getattr(self, key) is not None:
                check_int(f"algorithm.{key}", getattr(self, key), low=1)
        check_choice("algorithm.form", self.form, ADAPTTHINK_FORMS)
        check_int("algorithm.presample_k", self.presample_k, low=1)
        check_int("algorithm.presample_limit", self.presample_limit, low=0)
        path = self.reference_accuracy_path
        if path is not None and (not isinstance(path, str) or not path.endswith(".jsonl")):
            fail("algorithm.reference_accuracy_path", path, "must be a .jsonl file path or null")

    def check_run(self, run: "RunConfig") -> None:
        if "rl" not in run.stages:
            return
        if run.tokenizer.template != "adaptthink":
            raise ConfigError(
                f"tokenizer.template = {run.tokenizer.template!r} is invalid with algorithm.name='adaptthink': "
                "AdaptThink's prompt ends with the think token; set tokenizer.template=adaptthink."
            )
        if self.importance_sampling and run.rollout.n_samples < 2:
            raise ConfigError(
                f"rollout.n_samples = {run.rollout.n_samples} is invalid with AdaptThink's importance sampling: "
                "each prompt needs a forced NoThinking and a forced Thinking sample; use >= 2 (the authors: 16)."
            )


def nothinking_count(n: int, share: float) -> int:
    """Samples per prompt forced to NoThinking: round(n * share), kept in [1, n - 1]."""
    return split_group(n, share, what="AdaptThink's importance sampling (a forced NoThinking and a forced Thinking arm)")


def opener_ids(bundle: TokenizerBundle, cfg: AdaptThinkConfig) -> list[int]:
    """Token ids of `algorithm.thinking_opener` (no special tokens); refused if empty or NoThinking."""
    ids = list(bundle.tokenizer.encode(cfg.thinking_opener, add_special_tokens=False))
    if not ids or ids[0] == bundle.control.end_think:
        raise ConfigError(
            f"algorithm.thinking_opener = {cfg.thinking_opener!r} is invalid: it must encode to at least one "
            "token and not start with the end-of-thinking token; use a word that opens a thought, e.g. Alright."
        )
    return ids


@register_method
class AdaptThinkMethod(RLMethod):
    name = "adaptthink"
    config_class = AdaptThinkConfig
    cfg: AdaptThinkConfig

    def __init__(self, cfg: AdaptThinkConfig, ctx: MethodContext) -> None:
        super().__init__(cfg, ctx)
        # before the model loads: a prompt without Rbar_ref fails fast, naming the file
        self.rbar = load_reference_accuracy(reference_accuracy_file(ctx.run), ctx.train)  # prompt_id -> Rbar_ref
        self.opener = opener_ids(ctx.bundle, cfg)

    @property
    def judge_template(self) -> str:
        return "adaptthink"

    def arms(self, params: SamplingParams) -> list[RolloutArm]:
        default_cap = params.max_new_tokens
        cap_no = self.cfg.nothinking_max_new_tokens or default_cap
        cap_think = self.cfg.thinking_max_new_tokens or default_cap
        if not self.cfg.importance_sampling:
            return [RolloutArm(count=params.n, max_new_tokens=max(cap_no, cap_think))]
        n = params.n
        n_no = nothinking_count(n, self.cfg.nothinking_share)
        end_think = (self.ctx.bundle.control.end_think,)
        return [
            RolloutArm(count=n_no, forced_prefix=end_think, max_new_tokens=cap_no, proposal_prob=n_no / n, tag="nothinking"),
            RolloutArm(
                count=n - n_no, forced_prefix=tuple(self.opener), max_new_tokens=cap_think,
                proposal_prob=1 - n_no / n, tag="thinking",
            ),
        ]

    def rewards(self, rollouts: Rollouts) -> list[float]:
        return [float(j.correct) for j in rollouts.judged]

    def advantages(self, rollouts: Rollouts, rewards: torch.Tensor) -> torch.Tensor:
        # R is the (shaped) reward: 1[correct] unshaped
        rbar = [self.rbar[prompt_id(rollouts.records[s.group_id].problem)] for s in rollouts.samples]
        nothinking = [j.mode == SHORT for j in rollouts.judged]
        return torch.tensor(adaptthink_advantages(nothinking, rewards.tolist(), rbar, delta=self.cfg.delta))

    @classmethod
    def loss_fn(cls, cfg: AdaptThinkConfig, impl: str = "reference") -> LossFn:
        check_loss_impl(impl)  # AdaptThink has only its reference loss (kernels.policy_loss is for GRPO/DeGRPO)

        def loss(
            logp, old_logp, advantages, mask, *, ref_logp=None, entropy=None, forced=None, opener_prob=None,
            control_advantages=None, denominators=None,
        ):
            common = dict(clip_eps=cfg.clip_eps, form=cfg.form, denominators=denominators)
            if not cfg.importance_sampling or opener_prob is None:
                return adaptthink_loss(logp, old_logp, advantages, mask, first_token_is_prob=None, **common)
            if forced is not None:
                # pi_IS of a multi-token opener's later tokens is 1 (log 0): they were forced as a whole
                columns = torch.arange(old_logp.shape[1], device=old_logp.device)[None, :]  # [1, T]
                opener_tail = (columns >= 1) & (columns < forced.to(old_logp.device)[:, None])  # [b, T]
                old_logp = old_logp.masked_fill(opener_tail, 0.0)
            return adaptthink_loss(logp, old_logp, advantages, mask, first_token_is_prob=opener_prob, **common)

        return loss

    def update_metrics(self, batch: "RLBatch", rescore: Rescore) -> dict[str, float]:
        """nothinking_prob (the policy's mean probability of opening with `</think>`, read from the
        engine's log-probs of the forced NoThinking samples) and nothinking_rising (the share of
        NoThinking responses whose sequence probability went up with this step's update: the
        engine's log-probs before, the same rows rescored now after). {} without NoThinking rows."""
        end_think = self.ctx.bundle.control.end_think
        rows = torch.nonzero(batch.input_ids[:, batch.prompt_len] == end_think).flatten()  # [k]
        if len(rows) == 0:
            return {}
        mask = batch.response_mask[rows]  # [k, T]
        before = (batch.rollout_logp[rows] * mask).sum(dim=1)  # [k]
        after = rescore(rows)  # [k, T], 0 off the mask
        return {
            "nothinking_prob": float(batch.rollout_logp[rows, 0].exp().mean()),
            "nothinking_rising": float((after.sum(dim=1) > before).float().mean()),
        }

    def forced_openers(self) -> Optional[Sequence[int]]:
        return self.opener


__all__ = ["AdaptThinkConfig", "AdaptThinkMethod", "nothinking_count", "opener_ids"]

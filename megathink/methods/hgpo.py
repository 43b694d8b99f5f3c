"""Both-mode groups (HGPO / HiPO style): every prompt sampled in both modes, compared within and between.

Config: `short_share` (the part of each group forced to open with `<short>`; the rest opens with
`<think>`), `margin` (how much better think must be, in mean reward, before the mode choice
moves towards it), `alpha` (the control-token term's weight) and the common group-relative
settings (Thinkless rewards; `std_normalize` divides the within-mode advantages by the mode's
std in the group).

Rollout plan: two arms per prompt, `n_short = round(n * short_share)` (at least one, at most
n - 1) samples forced to open with the short control token and the rest with the think control
token, each arm's proposal probability its share of the group. So the policy never collapses
onto one mode in its samples: both are always seen, whatever it prefers.

Advantages: within a mode, `A_i = r_i - mean(r of i's mode in i's group)` for the response;
between the modes, for the control token, with `mu_s`, `mu_t` the group's mean rewards of the
two modes, `delta = (mu_s + margin) - mu_t`, `C_i = +delta / 2` for short rows and `-delta / 2`
for think rows. The loss (`algorithms.hgpo_loss`) takes the control token's ratio against the
proposal probability, so the policy's own first-token choice is trained from the between-mode
comparison (its probability of the better mode rises), and the responses from the within-mode
one.

Departures: the published hybrid methods (HGPO, HiPO) differ in how they combine the two
advantages and in their reward's form; this module implements the common core named above
(forced both-mode groups, within-mode and margin-shifted between-mode advantages, the mode
choice trained by importance-weighted comparison) on the Thinkless reward table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from megathink.algorithms.hgpo import hgpo_loss
from megathink.config.algorithm import register_algorithm_config
from megathink.config.validation import check_float
from megathink.errors import ConfigError
from megathink.methods.base import LossFn, Rollouts, register_method
from megathink.methods.group_relative import GroupRelativeConfig, GroupRelativeMethod
from megathink.methods.loss_binding import check_loss_impl
from megathink.methods.rollout_plan import RolloutArm, split_group
from megathink.rollout.types import SamplingParams

if TYPE_CHECKING:
    from megathink.config.run import RunConfig


@register_algorithm_config
@dataclass(kw_only=True)
class HGPOConfig(GroupRelativeConfig):
    name: str = "hgpo"
    """'hgpo': both-mode groups (forced short and think samples per prompt)."""

    short_share: float = 0.5
    """Share of each prompt's rollout.n_samples forced to open with the short control token
    (rounded; at least one of each mode)."""

    margin: float = 0.0
    """Added to the short mode's mean reward when the modes are compared: the mode choice only
    moves towards think when think's mean reward beats short's by more than this."""

    alpha: float = 1.0
    """Weight of the control-token (mode choice) term against the response term."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_float("algorithm.short_share", self.short_share, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False)
        check_float("algorithm.margin", self.margin)
        check_float("algorithm.alpha", self.alpha, low=0.0)

    def check_run(self, run: "RunConfig") -> None:
        if "rl" not in run.stages:
            return
        if run.tokenizer.template != "thinkless":
            raise ConfigError(
                f"tokenizer.template = {run.tokenizer.template!r} is invalid with algorithm.name='hgpo': both-mode "
                "groups force the <short> / <think> control tokens; use tokenizer.template=thinkless."
            )
        if run.rollout.n_samples < 2:
            raise ConfigError(
                f"rollout.n_samples = {run.rollout.n_samples} is invalid with algorithm.name='hgpo': each prompt "
                "needs a forced short and a forced think sample; use >= 2."
            )


def short_count(n: int, share: float) -> int:
    """Samples per prompt forced short: round(n * share), kept in [1, n - 1]."""
    return split_group(n, share, what="algorithm=hgpo (a forced short and a forced think arm)")


@register_method
class HGPOMethod(GroupRelativeMethod):
    name = "hgpo"
    config_class = HGPOConfig
    cfg: HGPOConfig

    def arms(self, params: SamplingParams) -> list[RolloutArm]:
        n = params.n
        n_short = short_count(n, self.cfg.short_share)
        control = self.ctx.bundle.control
        return [  # arm 0 is the short mode, arm 1 think (`_mode`)
            RolloutArm(count=n_short, forced_prefix=(control.short,), proposal_prob=n_short / n, tag="short"),
            RolloutArm(count=n - n_short, forced_prefix=(control.think,), proposal_prob=1 - n_short / n, tag="think"),
        ]

    def advantages(self, rollouts: Rollouts, rewards: torch.Tensor) -> torch.Tensor:
        """Within-mode: each response against the mean of its mode in its group."""
        out = torch.zeros_like(rewards)  # [B]
        for rows in self._mode_groups(rollouts).values():
            index = torch.tensor(rows)
            values = rewards[index]
            centred = values - values.mean()
            if self.cfg.std_normalize and len(rows) > 1:
                std = values.std()
                centred = centred / (std + 1e-6) if std > 0 else torch.zeros_like(centred)
            out[index] = centred
        return out

    def control_advantages(self, rollouts: Rollouts, rewards: torch.Tensor) -> torch.Tensor:
        """Between modes: +-((mu_short + margin) - mu_think) / 2 for short / think rows."""
        means = {key: float(rewards[torch.tensor(rows)].mean()) for key, rows in self._mode_groups(rollouts).items()}
        out = torch.zeros_like(rewards)
        for i, (sample, judged) in enumerate(zip(rollouts.samples, rollouts.judged)):
            short, think = means.get((sample.group_id, "short")), means.get((sample.group_id, "think"))
            if short is None or think is None:
                continue  # a group without both modes (a response with no mode): nothing to compare
            half = ((short + self.cfg.margin) - think) / 2
            out[i] = half if self._mode(rollouts, i) == "short" else -half
        return out

    def _mode(self, rollouts: Rollouts, i: int) -> str:
        """The forced mode of sample i (its arm), whatever the grader read."""
        return "short" if int(rollouts.arm[i]) == 0 else "think"

    def _mode_groups(self, rollouts: Rollouts) -> dict[tuple[int, str], list[int]]:
        groups: dict[tuple[int, str], list[int]] = {}
        for i, sample in enumerate(rollouts.samples):
            groups.setdefault((sample.group_id, self._mode(rollouts, i)), []).append(i)
        return groups

    def rollout_metrics(self, rollouts: Rollouts) -> dict[str, float]:
        """The share of groups whose short mode scored at least as well as think (by accuracy)."""
        correct = torch.tensor([float(j.correct) for j in rollouts.judged])
        means = {key: float(correct[torch.tensor(rows)].mean()) for key, rows in self._mode_groups(rollouts).items()}
        groups = {g for g, _ in means}
        both = [g for g in groups if (g, "short") in means and (g, "think") in means]
        if not both:
            return {}
        return {"hgpo/short_as_good": sum(means[g, "short"] >= means[g, "think"] for g in both) / len(both)}

    @classmethod
    def loss_fn(cls, cfg: HGPOConfig, impl: str = "reference") -> LossFn:
        check_loss_impl(impl)  # one implementation: the reference loss

        def loss(
            logp, old_logp, advantages, mask, *, ref_logp=None, entropy=None, forced=None, opener_prob=None,
            control_advantages=None, denominators=None,
        ):
            if control_advantages is None or opener_prob is None:
                raise ValueError("algorithm=hgpo: the batch has no control-token advantages or proposal probabilities.")
            return hgpo_loss(
                logp, old_logp, advantages, mask, control_advantages=control_advantages, proposal_prob=opener_prob,
                alpha=cfg.alpha, clip_eps=cfg.clip_eps, ref_logp=ref_logp, kl_coef=cfg.kl_coef,
                kl_estimator=cfg.kl_estimator, entropy=entropy, entropy_coef=cfg.entropy_coef,
                denominators=denominators,
            )

        return loss


__all__ = ["HGPOConfig", "HGPOMethod", "short_count"]

"""Vanilla GRPO on the Thinkless rewards: the baseline DeGRPO fixes.

One clipped-surrogate token mean over every response token, the control token included
(`algorithms.grpo_loss`, aggregation `algorithm.agg`), plus the KL and entropy terms. Its
control-token gradient shrinks with the response length, which is why the paper shows it
collapsing onto one mode (ALGORITHMS.md section 1). `kernels.policy_loss=fused` swaps in the
one-node kernel with the same loss and metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

from megathink.algorithms import grpo_loss
from megathink.config.algorithm import GRPO_AGGREGATIONS, register_algorithm_config
from megathink.config.validation import check_choice
from megathink.methods.base import LossFn, register_method
from megathink.methods.group_relative import GroupRelativeConfig, GroupRelativeMethod
from megathink.methods.loss_binding import reference_or_fused


@register_algorithm_config
@dataclass(kw_only=True)
class GRPOConfig(GroupRelativeConfig):
    name: str = "grpo"
    """'grpo': vanilla GRPO (one token mean over every response token)."""

    agg: str = "token_mean"
    """Loss aggregation: 'token_mean', 'seq_mean_token_mean' or 'seq_mean_token_sum_norm'."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("algorithm.agg", self.agg, GRPO_AGGREGATIONS)


@register_method
class GRPOMethod(GroupRelativeMethod):
    name = "grpo"
    config_class = GRPOConfig

    @classmethod
    def loss_fn(cls, cfg: GRPOConfig, impl: str = "reference") -> LossFn:
        return reference_or_fused(
            grpo_loss, "grpo", impl, agg=cfg.agg, clip_eps=cfg.clip_eps, kl_coef=cfg.kl_coef,
            kl_estimator=cfg.kl_estimator, entropy_coef=cfg.entropy_coef,
        )


__all__ = ["GRPOConfig", "GRPOMethod"]

"""Thinkless's DeGRPO (arXiv 2505.13379): the control token's loss decoupled from the response's.

Rewards and advantages as GRPO (group_relative.py); the loss (`algorithms.degrpo_loss`) is
`alpha * L_ctrl + L_resp + KL - H` with the control token normalised over sequences and the
response over its tokens ('batch_token', the authors' code) or per sequence ('sequence', the
paper). Defaults: the authors' 1.5B settings (alpha 1e-3, KL and entropy 1e-3).
"""

from __future__ import annotations

from dataclasses import dataclass

from megathink.algorithms import degrpo_loss
from megathink.config.algorithm import RESPONSE_NORMS, register_algorithm_config
from megathink.config.validation import check_choice, check_float
from megathink.methods.base import LossFn, register_method
from megathink.methods.group_relative import GroupRelativeConfig, GroupRelativeMethod
from megathink.methods.loss_binding import reference_or_fused


@register_algorithm_config
@dataclass(kw_only=True)
class DeGRPOConfig(GroupRelativeConfig):
    name: str = "degrpo"
    """'degrpo': Thinkless's decoupled GRPO."""

    alpha: float = 1e-3
    """Weight of the control-token term against the response term."""

    response_norm: str = "batch_token"
    """Response-term normalisation: 'batch_token' (authors' code) or 'sequence' (paper)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_float("algorithm.alpha", self.alpha, low=0.0)
        check_choice("algorithm.response_norm", self.response_norm, RESPONSE_NORMS)


@register_method
class DeGRPOMethod(GroupRelativeMethod):
    name = "degrpo"
    config_class = DeGRPOConfig

    @classmethod
    def loss_fn(cls, cfg: DeGRPOConfig, impl: str = "reference") -> LossFn:
        return reference_or_fused(
            degrpo_loss, "degrpo", impl, alpha=cfg.alpha, response_norm=cfg.response_norm, clip_eps=cfg.clip_eps, kl_coef=cfg.kl_coef,
            kl_estimator=cfg.kl_estimator, entropy_coef=cfg.entropy_coef,
        )


__all__ = ["DeGRPOConfig", "DeGRPOMethod"]

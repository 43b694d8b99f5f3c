"""Binding a `megathink.algorithms` loss to the RL update's call signature.

`trainer.rl_update` calls every method's loss as
`f(logp, old_logp, advantages, mask, *, ref_logp, entropy, forced, opener_prob,
control_advantages, denominators)` per micro-batch. Losses that know nothing of forced openers
or of a separate control-token advantage (GRPO, DeGRPO) are wrapped by `without_openers`,
which drops `forced`, `opener_prob` and `control_advantages`.
"""

from __future__ import annotations

import functools
from typing import Callable

from megathink.config.kernels import POLICY_LOSS_IMPLS
from megathink.kernels.policy_loss import policy_loss
from megathink.methods.base import LossFn


def reference_or_fused(reference: Callable, algorithm: str, impl: str, **coefficients: object) -> LossFn:
    """GRPO's / DeGRPO's loss with `coefficients` bound: the `megathink.algorithms` function
    `reference`, or with impl='fused' `megathink.kernels.policy_loss` for `algorithm` (the same
    loss and metrics in one autograd node), in the update's signature."""
    check_loss_impl(impl)
    if impl == "fused":
        return without_openers(functools.partial(policy_loss, algorithm=algorithm, impl="fused", **coefficients))
    return without_openers(functools.partial(reference, **coefficients))


def check_loss_impl(impl: str) -> None:
    if impl not in POLICY_LOSS_IMPLS:
        raise ValueError(f"kernels.policy_loss = {impl!r} is invalid: must be one of " + ", ".join(map(repr, POLICY_LOSS_IMPLS)))


def without_openers(loss: Callable) -> LossFn:
    """`loss(logp, old, adv, mask, *, ref_logp, entropy, denominators)` in the update's signature."""

    def bound(
        logp, old_logp, advantages, mask, *, ref_logp=None, entropy=None, forced=None, opener_prob=None,
        control_advantages=None, denominators=None,
    ):
        return loss(logp, old_logp, advantages, mask, ref_logp=ref_logp, entropy=entropy, denominators=denominators)

    return bound


__all__ = ["check_loss_impl", "reference_or_fused", "without_openers"]

"""Pure tensor functions of the RL objectives (ALGORITHMS.md section 1): group advantages,
KL estimators, the clipped surrogate, vanilla GRPO and Thinkless's DeGRPO losses.

Tensors are response-aligned `[B, T]`: column 0 is the first generated token (the control
token in Thinkless), `response_mask` marks real tokens (any non-zero value), advantages are
`[B]`. No model, no config objects: the trainer maps `AlgorithmConfig` onto the keywords.
Each loss divides its batch-level means by `LossDenominators`: its own mask's counts by
default, or a whole mini-batch's, so that micro-batch losses add up to the mini-batch's.
"""

from megathink.algorithms.adaptthink import adaptthink_loss
from megathink.algorithms.advantages import group_advantages
from megathink.algorithms.degrpo import degrpo_loss
from megathink.algorithms.denominators import LossDenominators
from megathink.algorithms.grpo import grpo_loss
from megathink.algorithms.kl import K3_CLAMP, kl_penalty
from megathink.algorithms.masked import masked_mean, masked_sum
from megathink.algorithms.surrogate import clipped_surrogate

__all__ = [
    "K3_CLAMP",
    "LossDenominators",
    "adaptthink_loss",
    "clipped_surrogate",
    "degrpo_loss",
    "group_advantages",
    "grpo_loss",
    "kl_penalty",
    "masked_mean",
    "masked_sum",
]

"""Vanilla GRPO loss: the clipped surrogate over all response tokens, control token included.

    L = agg(l, mask) + kl_coef * KL - entropy_coef * H

`agg` (l is the per-token surrogate of `surrogate.py`; n_i = masked tokens of sequence i;
n_seq = sequences with at least one masked token, fully padded rows are not counted):

* "token_mean": sum_{i,t} l[i,t] mask[i,t] / sum_{i,t} mask[i,t]  (verl's and Thinkless's
  default). Every token weighs 1/N, so the control token of sequence i gets gradient
  -A_i rho / N with N the total token count: tiny for long answers, the length bias that
  DeGRPO removes.
* "seq_mean_token_mean": (1/n_seq) sum_i (1/n_i) sum_t l[i,t] mask[i,t].
* "seq_mean_token_sum_norm": (1/n_seq) sum_i (1/T) sum_t l[i,t] mask[i,t] with the constant
  T = logp.shape[1], the padded width of the batch (Dr. GRPO-style). Pad the batch to the
  rollout's max response length to make that constant fixed across steps. verl's mode of the
  same name divides the sum over sequences by T without the 1/n_seq.

KL (estimator `kl_estimator`, see `kl.py`) and entropy H are token means over every masked
token. The counts (N, n_seq, T) are those of the tensors given, or `denominators` (a whole
mini-batch's `LossDenominators`, whose `width` is then the constant T): with them the losses of
a mini-batch's micro-batches add up to the mini-batch's loss (denominators.py). Empty
selections give 0, never nan.

metrics (python floats): loss, pg_loss, clip_frac (share of masked tokens whose clipped branch
is strictly the max), approx_kl (masked mean of old_logp - logp, verl's ppo_kl),
approx_kl_k3 (masked mean of k3 of the current vs old policy), and kl / entropy (unweighted
token means) when ref_logp / entropy are given.
"""

from __future__ import annotations

from typing import Optional

import torch

from megathink.algorithms._inputs import (
    check_choice,
    prepare_policy_inputs,
    ratio_metrics,
    regularisers,
    to_floats,
)
from megathink.algorithms.denominators import LossDenominators
from megathink.algorithms.masked import masked_count, masked_sum
from megathink.algorithms.surrogate import clipped_surrogate
from megathink.config.algorithm import GRPO_AGGREGATIONS


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    clip_eps: float = 0.2,
    agg: str = "token_mean",
    ref_logp: Optional[torch.Tensor] = None,
    kl_coef: float = 0.0,
    kl_estimator: str = "k3",
    entropy: Optional[torch.Tensor] = None,
    entropy_coef: float = 0.0,
    denominators: Optional[LossDenominators] = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """GRPO loss (0-dim, differentiable in logp and entropy) and its metrics.

    logp, old_logp, response_mask, ref_logp, entropy: [B, T] response-aligned; advantages: [B];
    denominators: the counts to divide by (default: those of response_mask).
    """
    check_choice("agg", agg, GRPO_AGGREGATIONS)
    x = prepare_policy_inputs(
        "grpo_loss",
        logp,
        old_logp,
        advantages,
        response_mask,
        clip_eps=clip_eps,
        ref_logp=ref_logp,
        kl_coef=kl_coef,
        kl_estimator=kl_estimator,
        entropy=entropy,
        entropy_coef=entropy_coef,
        denominators=denominators,
    )
    per_token, is_clipped, _ = clipped_surrogate(x.logp, x.old_logp, x.advantages, clip_eps)  # [B, T] each
    if agg == "token_mean":
        pg = x.token_mean(per_token)
    else:
        seq_sum = masked_sum(per_token, x.mask, dim=1)  # [B]
        if agg == "seq_mean_token_mean":
            n_tok = masked_count(x.mask, dim=1, like=per_token)  # [B]
            pg = x.denominators.divide((seq_sum / n_tok.clamp(min=1)).sum(), "sequences")
        else:  # seq_mean_token_sum_norm: the constant T is the padded width of the (mini-)batch
            pg = x.denominators.divide((seq_sum / max(x.denominators.width, 1)).sum(), "sequences")
    reg, values = regularisers(x, kl_coef=kl_coef, kl_estimator=kl_estimator, entropy_coef=entropy_coef)
    loss = pg + reg
    metrics = {"loss": loss, "pg_loss": pg, **ratio_metrics(x, is_clipped), **values}
    return loss, to_floats(metrics)

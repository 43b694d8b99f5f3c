"""DeGRPO loss (Thinkless, arXiv 2505.13379): the control token and the response decoupled.

Column 0 of the response-aligned tensors is the control token (`<short>` / `<think>`);
columns >= 1 are the response. With l the per-token clipped surrogate (`surrogate.py`):

    L_ctrl = sum_i l[i,0] mask[i,0] / sum_i mask[i,0]                     # mean over sequences
    L_resp = sum_i sum_{t>=1} l[i,t] mask[i,t] / sum_i sum_{t>=1} mask[i,t]  # "batch_token"
       or  = (1/G) sum_i (1/T_i) sum_{t>=1} l[i,t] mask[i,t]                # "sequence"
    L      = alpha * L_ctrl + L_resp + kl_coef * KL - entropy_coef * H

Paper vs code: the paper writes the "sequence" form (each response's tokens averaged, then
averaged over the group); the authors' released code token-means the response tokens over
the whole batch ("batch_token"), which is the default so published runs reproduce.

"sequence": T_i = masked response tokens (t >= 1) of sequence i; a sequence with T_i = 0
(only its control token is real) contributes 0 but **counts in G**, like the paper's 1/G over
the whole group. G = number of sequences with at least one masked token (any column); rows
that are entirely padding do not count.

The control-token gradient is `alpha * (-A_i rho[i,0]) / n_ctrl` with n_ctrl the number of
sequences whose control token is masked in: independent of the response lengths, unlike
vanilla GRPO's 1/(total tokens). KL and entropy are token means over *every* masked token,
control token included (as in the authors' code, which adds them to the whole sequence).
Empty denominators (no control token, or no response token beyond it) give 0, never nan.

The counts (the number of masked control tokens, of response tokens, G) are those of the
tensors given, or `denominators` (a whole mini-batch's `LossDenominators`): then the losses of
a mini-batch's micro-batches add up to the mini-batch's loss (denominators.py).

metrics (python floats): loss, pg_loss (= alpha * ctrl_loss + resp_loss), ctrl_loss and
resp_loss (unweighted L_ctrl and L_resp), clip_frac (over every masked token, control
included), ctrl_clip_frac (over masked control tokens), approx_kl (masked mean of
old_logp - logp), approx_kl_k3, and kl / entropy when ref_logp / entropy are given.
"""

from __future__ import annotations

from typing import Optional

import torch

from megathink.algorithms._inputs import (
    check_choice,
    check_coef,
    prepare_policy_inputs,
    ratio_metrics,
    regularisers,
    to_floats,
)
from megathink.algorithms.denominators import LossDenominators
from megathink.algorithms.masked import masked_mean, masked_sum
from megathink.algorithms.surrogate import clipped_surrogate
from megathink.config.algorithm import RESPONSE_NORMS


def degrpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    alpha: float,
    clip_eps: float = 0.2,
    response_norm: str = "batch_token",
    ref_logp: Optional[torch.Tensor] = None,
    kl_coef: float = 0.0,
    kl_estimator: str = "k3",
    entropy: Optional[torch.Tensor] = None,
    entropy_coef: float = 0.0,
    denominators: Optional[LossDenominators] = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """DeGRPO loss (0-dim, differentiable in logp and entropy) and its metrics.

    logp, old_logp, response_mask, ref_logp, entropy: [B, T] response-aligned, T >= 1, column 0
    the control token; advantages: [B]; denominators: the counts to divide by (default: those
    of response_mask).
    """
    check_choice("response_norm", response_norm, RESPONSE_NORMS)
    check_coef("alpha", alpha)
    x = prepare_policy_inputs(
        "degrpo_loss",
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
    if x.logp.shape[1] < 1:
        raise ValueError("degrpo_loss: logp must have T >= 1 columns (column 0 is the control token); got T = 0.")
    per_token, is_clipped, _ = clipped_surrogate(x.logp, x.old_logp, x.advantages, clip_eps)  # [B, T] each

    d = x.denominators
    ctrl_mask = x.mask[:, 0]  # [B]
    ctrl = d.divide(masked_sum(per_token[:, 0], ctrl_mask), "ctrl_tokens")

    resp_tok, resp_mask = per_token[:, 1:], x.mask[:, 1:]  # [B, T-1]
    if response_norm == "batch_token":
        resp = d.divide(masked_sum(resp_tok, resp_mask), "resp_tokens")
    else:  # sequence: each response's token mean, summed over the counted sequences / G
        seq_mean = masked_mean(resp_tok, resp_mask, dim=1)  # [B]; 0 where T_i = 0
        resp = d.divide(seq_mean.sum(), "sequences")

    pg = alpha * ctrl + resp
    reg, values = regularisers(x, kl_coef=kl_coef, kl_estimator=kl_estimator, entropy_coef=entropy_coef)
    loss = pg + reg
    metrics = {
        "loss": loss,
        "pg_loss": pg,
        "ctrl_loss": ctrl,
        "resp_loss": resp,
        **ratio_metrics(x, is_clipped),
        "ctrl_clip_frac": d.divide(masked_sum(is_clipped[:, 0].to(per_token.dtype), ctrl_mask), "ctrl_tokens"),
        **values,
    }
    return loss, to_floats(metrics)

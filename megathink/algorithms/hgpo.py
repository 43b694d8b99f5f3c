"""Both-mode group loss (HGPO / HiPO style): the mode choice and the response trained apart.

Every prompt's group holds responses of both modes, each forced to open with its control token
(`<short>` / `<think>`), so the group compares the modes directly. Column 0 of the
response-aligned tensors is that forced control token; columns >= 1 the response. Each row
carries two advantages:

* `advantages` A_i (responses, columns >= 1): within its mode, `r_i - mean(r of the same mode
  in the group)`, so a response competes only with responses of its own mode;
* `control_advantages` C_i (column 0): between the modes, from the group's mode means
  (methods/hgpo.py: `+-((mean_short + margin) - mean_think) / 2`, the margin favouring short).

The control token was forced, not sampled, so its ratio is taken against the proposal
probability q_i of the forced mode (the share of the group it got), as AdaptThink does for its
openers: `rho_0 = pi_theta(mode) / q`, and the summed clipped term over the group estimates the
gradient of `sum_m pi(m) Q(m)`: the policy's own first-token choice moves towards the better
mode. The response tokens use the usual ratio to the old policy.

    L = alpha * L_ctrl + L_resp + kl_coef * KL - entropy_coef * H
    L_ctrl = sum_i l0_i m_i0 / (masked control tokens)     (l0: the clipped surrogate at column 0)
    L_resp = sum_i sum_{t>=1} l_it m_it / (masked response tokens)

with the counts of the tensors given or `denominators` (a whole mini-batch's, so micro-batch
losses add up: denominators.py). KL and entropy are token means over every masked token.
metrics: loss, pg_loss, ctrl_loss, resp_loss, ctrl_ratio (mean pi(mode) / q over counted
sequences), clip_frac, approx_kl, approx_kl_k3, kl / entropy.
"""

from __future__ import annotations

from typing import Optional

import torch

from megathink.algorithms._inputs import check_coef, prepare_policy_inputs, ratio_metrics, regularisers, to_floats
from megathink.algorithms.denominators import LossDenominators
from megathink.algorithms.masked import masked_sum
from megathink.algorithms.surrogate import clipped_surrogate


def hgpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    control_advantages: torch.Tensor,
    proposal_prob: torch.Tensor,
    alpha: float = 1.0,
    clip_eps: float = 0.2,
    ref_logp: Optional[torch.Tensor] = None,
    kl_coef: float = 0.0,
    kl_estimator: str = "k3",
    entropy: Optional[torch.Tensor] = None,
    entropy_coef: float = 0.0,
    denominators: Optional[LossDenominators] = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Both-mode group loss (0-dim) and its metrics.

    logp, old_logp, response_mask, ref_logp, entropy: [B, T], T >= 1, column 0 the forced control
    token; advantages, control_advantages, proposal_prob: [B] (proposal_prob in (0, 1]).
    """
    check_coef("alpha", alpha)
    if control_advantages.shape != advantages.shape or proposal_prob.shape != advantages.shape:
        raise ValueError(
            f"hgpo_loss: control_advantages and proposal_prob must have shape {tuple(advantages.shape)}; got "
            f"{tuple(control_advantages.shape)} and {tuple(proposal_prob.shape)}."
        )
    if not bool(((proposal_prob > 0) & (proposal_prob <= 1)).all()):
        raise ValueError("hgpo_loss: proposal_prob must lie in (0, 1] (the share of the group each forced mode got).")
    x = prepare_policy_inputs(
        "hgpo_loss", logp, old_logp, advantages, response_mask, clip_eps=clip_eps, ref_logp=ref_logp,
        kl_coef=kl_coef, kl_estimator=kl_estimator, entropy=entropy, entropy_coef=entropy_coef,
        denominators=denominators,
    )
    if x.logp.shape[1] < 1:
        raise ValueError("hgpo_loss: logp must have T >= 1 columns (column 0 is the control token); got T = 0.")
    d, dtype = x.denominators, x.logp.dtype
    ctrl_mask = x.mask[:, 0]  # [B]
    ctrl_adv = torch.where(ctrl_mask, control_advantages.detach().to(dtype), torch.zeros((), dtype=dtype))  # [B]
    proposal = torch.log(proposal_prob.detach().to(dtype))[:, None]  # [B, 1]
    ctrl_term, ctrl_clipped, ctrl_ratio = clipped_surrogate(x.logp[:, :1], proposal, ctrl_adv, clip_eps)  # [B, 1]
    resp_term, resp_clipped, _ = clipped_surrogate(x.logp[:, 1:], x.old_logp[:, 1:], x.advantages, clip_eps)
    ctrl = d.divide(masked_sum(ctrl_term[:, 0], ctrl_mask), "ctrl_tokens")
    resp = d.divide(masked_sum(resp_term, x.mask[:, 1:]), "resp_tokens")
    pg = alpha * ctrl + resp
    reg, values = regularisers(x, kl_coef=kl_coef, kl_estimator=kl_estimator, entropy_coef=entropy_coef)
    loss = pg + reg
    is_clipped = torch.cat([ctrl_clipped, resp_clipped], dim=1)  # [B, T]
    metrics = {
        "loss": loss,
        "pg_loss": pg,
        "ctrl_loss": ctrl,
        "resp_loss": resp,
        "ctrl_ratio": d.divide(masked_sum(ctrl_ratio[:, 0].detach(), ctrl_mask), "ctrl_tokens"),
        **ratio_metrics(x, is_clipped),
        **values,
    }
    return loss, to_floats(metrics)


__all__ = ["hgpo_loss"]

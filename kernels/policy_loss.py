"""`policy_loss`: GRPO / DeGRPO's clipped surrogate and its normalisation as one autograd op.

    policy_loss(logp, old_logp, advantages, response_mask, *, algorithm="grpo"|"degrpo", ...)
        -> (loss, metrics)

takes exactly the arguments and returns exactly the values of `megathink.algorithms.grpo_loss`
/ `degrpo_loss` (impl='reference' calls them). impl='fused' computes the policy-gradient part
in one autograd node: per token the ratio `exp(logp - old_logp)`, the clip, the advantage and
the token's normalisation weight, which is fixed by the mask alone:

* GRPO 'token_mean': 1 / (masked tokens); 'seq_mean_token_mean': 1 / (n_i * n_seq);
  'seq_mean_token_sum_norm': 1 / (T * n_seq);
* DeGRPO: the control token (column 0) alpha / (masked control tokens); the response tokens
  1 / (masked response tokens) ('batch_token') or 1 / (T_i * G) ('sequence').

The counts behind those weights are `denominators` (a whole mini-batch's
`LossDenominators`, so micro-batch losses add up) or, by default, those of the mask.
The node saves one `[B, T]` tensor, `d pg / d logp = weight * (clipped ? 0 : -A rho)`, instead
of the ratio, clamp, branch and mask intermediates autograd keeps for the composed version.
Its forward reduces the same per-token losses with the same masked means as
`megathink.algorithms`, so the loss and metrics are bit-identical; the gradient is the
analytic one, equal to autograd's to rounding. The KL and entropy terms, when present, are
`algorithms._inputs.regularisers` unchanged.
"""

from __future__ import annotations

from typing import Optional

import torch

from megathink.algorithms import degrpo_loss, grpo_loss
from megathink.algorithms._inputs import (
    check_choice,
    check_coef,
    prepare_policy_inputs,
    ratio_metrics,
    regularisers,
    to_floats,
)
from megathink.algorithms.denominators import LossDenominators
from megathink.algorithms.masked import masked_count, masked_mean, masked_sum
from megathink.algorithms.surrogate import clipped_surrogate
from megathink.config.algorithm import GRPO_AGGREGATIONS, RESPONSE_NORMS
from megathink.config.kernels import POLICY_LOSS_IMPLS

ALGORITHMS = ("grpo", "degrpo")


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    algorithm: str,
    clip_eps: float = 0.2,
    alpha: Optional[float] = None,
    agg: str = "token_mean",
    response_norm: str = "batch_token",
    ref_logp: Optional[torch.Tensor] = None,
    kl_coef: float = 0.0,
    kl_estimator: str = "k3",
    entropy: Optional[torch.Tensor] = None,
    entropy_coef: float = 0.0,
    denominators: Optional[LossDenominators] = None,
    impl: str = "fused",
) -> tuple[torch.Tensor, dict[str, float]]:
    """GRPO (`agg`) or DeGRPO (`alpha`, `response_norm`) loss (0-dim) and metrics.

    logp, old_logp, response_mask, ref_logp, entropy: [B, T] response-aligned; advantages: [B].
    """
    check_choice("algorithm", algorithm, ALGORITHMS)
    check_choice("impl", impl, POLICY_LOSS_IMPLS)
    common = dict(
        clip_eps=clip_eps, ref_logp=ref_logp, kl_coef=kl_coef, kl_estimator=kl_estimator,
        entropy=entropy, entropy_coef=entropy_coef, denominators=denominators,
    )
    if algorithm == "degrpo":
        if alpha is None:
            raise ValueError("policy_loss: algorithm='degrpo' needs alpha (the control-token weight); got None.")
        check_choice("response_norm", response_norm, RESPONSE_NORMS)
        check_coef("alpha", alpha)
        if impl == "reference":
            return degrpo_loss(logp, old_logp, advantages, response_mask, alpha=alpha, response_norm=response_norm, **common)
    else:
        check_choice("agg", agg, GRPO_AGGREGATIONS)
        if impl == "reference":
            return grpo_loss(logp, old_logp, advantages, response_mask, agg=agg, **common)

    fn = f"policy_loss[{algorithm}]"
    x = prepare_policy_inputs(fn, logp, old_logp, advantages, response_mask, **common)
    if algorithm == "degrpo" and x.logp.shape[1] < 1:
        raise ValueError(f"{fn}: logp must have T >= 1 columns (column 0 is the control token); got T = 0.")
    mode = ("degrpo", response_norm, float(alpha)) if algorithm == "degrpo" else ("grpo", agg, 1.0)
    pg, parts, is_clipped = _FusedSurrogate.apply(
        x.logp, x.old_logp, x.advantages, x.mask, clip_eps, mode, x.denominators
    )
    reg, values = regularisers(x, kl_coef=kl_coef, kl_estimator=kl_estimator, entropy_coef=entropy_coef)
    loss = pg + reg
    metrics = {"loss": loss, "pg_loss": pg}
    if algorithm == "degrpo":
        metrics.update(ctrl_loss=parts[0], resp_loss=parts[1])
    metrics.update(ratio_metrics(x, is_clipped))
    if algorithm == "degrpo":
        ctrl_clipped = masked_sum(is_clipped[:, 0].to(x.logp.dtype), x.mask[:, 0])
        metrics["ctrl_clip_frac"] = x.denominators.divide(ctrl_clipped, "ctrl_tokens")
    metrics.update(values)
    return loss, to_floats(metrics)


def _reduce(
    per_token: torch.Tensor, mask: torch.Tensor, mode: tuple, d: LossDenominators
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """pg (0-dim), its parts `[2]` (DeGRPO's ctrl, resp; else zeros) and the per-token weights
    `[B, T]` with pg = sum(weights * per_token), reduced exactly as `megathink.algorithms` does
    with the counts `d`."""
    kind, norm, alpha = mode
    dtype = per_token.dtype
    maskf = mask.to(dtype)  # [B, T]
    if kind == "grpo":
        parts = torch.zeros(2, dtype=dtype, device=per_token.device)
        if norm == "token_mean":
            pg = d.divide(masked_sum(per_token, mask), "tokens")
            return pg, parts, d.divide(maskf, "tokens")
        seq_sum = masked_sum(per_token, mask, dim=1)  # [B]
        if norm == "seq_mean_token_mean":
            n_tok = masked_count(mask, dim=1, like=per_token).clamp(min=1)  # [B]
            pg = d.divide((seq_sum / n_tok).sum(), "sequences")
            return pg, parts, d.divide(maskf / n_tok[:, None], "sequences")
        width = max(d.width, 1)  # seq_mean_token_sum_norm
        pg = d.divide((seq_sum / width).sum(), "sequences")
        return pg, parts, d.divide(maskf / width, "sequences")

    ctrl_mask, resp_mask = mask[:, 0], mask[:, 1:]  # [B], [B, T-1]
    ctrl = d.divide(masked_sum(per_token[:, 0], ctrl_mask), "ctrl_tokens")
    ctrl_w = alpha * d.divide(maskf[:, :1], "ctrl_tokens")  # [B, 1]
    resp_tok = per_token[:, 1:]
    if norm == "batch_token":
        resp = d.divide(masked_sum(resp_tok, resp_mask), "resp_tokens")
        resp_w = d.divide(maskf[:, 1:], "resp_tokens")
    else:  # sequence
        n_tok = masked_count(resp_mask, dim=1, like=resp_tok).clamp(min=1)  # [B]
        resp = d.divide(masked_mean(resp_tok, resp_mask, dim=1).sum(), "sequences")
        resp_w = d.divide(maskf[:, 1:] / n_tok[:, None], "sequences")
    pg = alpha * ctrl + resp
    return pg, torch.stack([ctrl, resp]), torch.cat([ctrl_w, resp_w], dim=1)


class _FusedSurrogate(torch.autograd.Function):
    """pg = sum_t weight[t] * max(-A rho, -A clip(rho)); saves only d pg / d logp `[B, T]`."""

    @staticmethod
    def forward(ctx, logp, old_logp, advantages, mask, clip_eps: float, mode: tuple, denominators):  # type: ignore[override]
        per_token, is_clipped, ratio = clipped_surrogate(logp, old_logp, advantages, clip_eps)  # [B, T] each
        pg, parts, weight = _reduce(per_token, mask, mode, denominators)
        unclipped_grad = -advantages[:, None] * ratio  # d l / d logp on unclipped tokens
        coef = torch.where(is_clipped, torch.zeros_like(ratio), unclipped_grad) * weight  # [B, T]
        ctx.save_for_backward(coef)
        ctx.mark_non_differentiable(parts, is_clipped)
        return pg, parts, is_clipped

    @staticmethod
    def backward(ctx, grad_pg, grad_parts, grad_clipped):  # type: ignore[override]
        (coef,) = ctx.saved_tensors
        return coef * grad_pg, None, None, None, None, None, None


__all__ = ["ALGORITHMS", "POLICY_LOSS_IMPLS", "policy_loss"]

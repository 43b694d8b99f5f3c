"""AdaptThink loss (arXiv 2505.13417): one clipped importance-sampling term per sequence.

Column 0 of the response-aligned tensors is the first generated token, the forced opener
(`</think>` for NoThinking, a common thinking opener such as "Alright" for Thinking). The rest
of each response is sampled from the old policy, so the importance-sampling proposal is
pi_IS(y_0) = first_token_is_prob (0.5: half of each prompt's samples per opener) and
pi_IS(y_t) = pi_old(y_t) for t >= 1. The loss therefore replaces column 0 of `old_logp` with
`log(first_token_is_prob)` (on a copy: the caller's tensor is never modified); call the result
old'. With m the response mask, T_i = sum_t m[i,t] (column 0 included) and A_i the
sequence's advantage (`delta * 1[y_0 = </think>] + R - Rbar_ref`, computed elsewhere):

    "code"  (default, the authors' released code, reproduces the released models):
        s_i = (1/T_i) sum_t m[i,t] logp[i,t] - (1/T_i) sum_t m[i,t] old'[i,t]
            = masked_mean_t(logp[i] - old'[i])           # length-normalised sequence log-ratio
    "paper" (Eq. 9, ratio = pi_theta(y|x) / pi_IS(y|x), the full-sequence product):
        s_i = sum_t m[i,t] (logp[i,t] - old'[i,t])

    ratio_i = exp(s_i)
    l_i     = max(-A_i * ratio_i, -A_i * clip(ratio_i, 1 - eps, 1 + eps))
    L       = (1/n) sum_i l_i                             # n = rows with >= 1 masked token

One term per sequence: every token of sequence i gets the same gradient weight,
d L / d logp[i,t] = -A_i ratio_i / (n T_i) ("code") or -A_i ratio_i / n ("paper"), when the
clip is not active, and exactly 0 when it is (the clipped branch strictly larger: ratio
outside [1 - eps, 1 + eps] on the side the advantage favours; ties count as unclipped, as in
`surrogate.py`). The paper form's ratio multiplies thousands of token ratios and is extreme
(a forced `</think>` the policy never emits has ratio ~ pi_theta(</think>) / 0.5 ~ 0); the
code's length normalisation keeps it near 1, which is why the code form is the default.

Overflow guard (both forms): the value of s_i is clamped to [-LOG_RATIO_CLAMP,
LOG_RATIO_CLAMP] = [-20, 20] before `exp`, so ratio stays in [2e-9, 4.9e8] and finite in
float32 even for the paper form's long sums (or an old log-prob of -inf). Inside the range
(every realistic case) value and gradient are exact. Outside it the gradient is passed
straight through the clamp, i.e. it is still `-A_i * ratio_i` per unit of s_i with ratio_i the
saturated ratio: the unclipped branch keeps pushing in the right direction (a hard clamp would
silence exactly the rows the objective most wants to move, e.g. A < 0 with ratio >> 1 + eps),
with a bounded magnitude instead of inf / nan. Where the PPO clip is active the gradient is 0
either way, and the clipped value does not depend on the clamp.

`first_token_is_prob` may also be a [B] tensor (per-row proposal probabilities: with a
NoThinking share s of the samples, s for NoThinking rows and 1 - s for Thinking rows) or None
(nothing is replaced: the naive baseline, whose responses are all sampled from the old policy).
A multi-token opener ("Alright" in a character tokenizer) is forced as a whole, so its
later tokens have pi_IS = 1: the caller sets those columns of `old_logp` to 0 (log 1).

No KL penalty and no entropy bonus: the authors use neither, so the function takes none.
`advantages` and `old_logp` are detached (targets, never trained). Padding (mask 0) may hold
any value, inf / nan included: it is replaced by 0 before use. Rows with no masked token
contribute nothing and are not counted in n; an empty batch gives loss 0 and metrics 0,
never nan. n (and the token count of approx_kl) are those of the tensors given, or
`denominators` (a whole mini-batch's `LossDenominators`): with them the losses of a
mini-batch's micro-batches add up to the mini-batch's loss (denominators.py).

metrics (python floats): loss, pg_loss (= loss: no other term), clip_frac (share of counted
sequences whose clipped branch is strictly the max), ratio_mean and log_ratio_mean (means of
ratio_i and of the clamped s_i over counted sequences), approx_kl (masked mean of
old' - logp over every masked token, column 0 included, so at column 0 it measures the policy
against the importance-sampling proposal, not against pi_old; it is a token mean for both
forms, comparable with GRPO's approx_kl).
"""

from __future__ import annotations

import math
from typing import Optional, Union

import torch

from megathink.algorithms._inputs import check_choice, prepare_policy_inputs, to_floats
from megathink.algorithms.denominators import LossDenominators
from megathink.algorithms.masked import masked_mean, masked_sum
from megathink.algorithms.surrogate import clipped_surrogate
from megathink.config.algorithm import ADAPTTHINK_FORMS

LOG_RATIO_CLAMP = 20.0
"""The sequence log-ratio s_i is clamped to [-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP] before exp."""


def _check_first_token_prob(value: object, rows: int) -> None:
    if value is None:
        return
    if isinstance(value, torch.Tensor):
        if value.shape != (rows,):
            raise ValueError(f"adaptthink_loss: first_token_is_prob must have shape ({rows},); got {tuple(value.shape)}.")
        if not bool(((value > 0) & (value <= 1)).all()):
            raise ValueError("first_token_is_prob is invalid: every entry must be a finite number in (0, 1].")
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not (ok and 0 < value <= 1):
        raise ValueError(f"first_token_is_prob = {value!r} is invalid: must be a finite number in (0, 1].")


def adaptthink_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    first_token_is_prob: Union[float, torch.Tensor, None] = 0.5,
    clip_eps: float = 0.2,
    form: str = "code",
    denominators: Optional[LossDenominators] = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """AdaptThink loss (0-dim, differentiable in logp) and its metrics.

    logp, old_logp, response_mask: [B, T] response-aligned, T >= 1, column 0 the forced opener
    (column 0 of old_logp is ignored and replaced by log(first_token_is_prob)); advantages: [B].
    first_token_is_prob: one probability for every row, a [B] tensor of per-row ones (the
    opener shares differ when NoThinking is not half of the samples), or None to keep
    old_logp as given (the naive baseline, nothing forced: the plain ratio to the old policy).
    """
    check_choice("form", form, ADAPTTHINK_FORMS)
    _check_first_token_prob(first_token_is_prob, int(logp.shape[0]) if logp.dim() else 0)
    x = prepare_policy_inputs(
        "adaptthink_loss",
        logp,
        old_logp,
        advantages,
        response_mask,
        clip_eps=clip_eps,
        ref_logp=None,
        kl_coef=0.0,
        kl_estimator="k3",
        entropy=None,
        entropy_coef=0.0,
        denominators=denominators,
    )
    if x.logp.shape[1] < 1:
        raise ValueError("adaptthink_loss: logp must have T >= 1 columns (column 0 is the forced opener); got T = 0.")
    dtype, device = x.logp.dtype, x.logp.device

    # old': the importance-sampling proposal, on a new tensor (x.old_logp is already a copy).
    if first_token_is_prob is None:
        old_is = x.old_logp
    else:
        prob = torch.as_tensor(first_token_is_prob, dtype=dtype, device=device).expand(x.logp.shape[0])  # [B]
        opener = torch.log(prob)[:, None]  # [B, 1]
        opener = torch.where(x.mask[:, :1], opener, torch.zeros((), dtype=dtype, device=device))
        old_is = torch.cat([opener, x.old_logp[:, 1:]], dim=1)  # [B, T]

    if form == "code":
        new_part = masked_mean(x.logp, x.mask, dim=1)  # [B], grad
        old_part = masked_mean(old_is, x.mask, dim=1)  # [B]
    else:  # paper
        new_part = masked_sum(x.logp, x.mask, dim=1)
        old_part = masked_sum(old_is, x.mask, dim=1)
    raw = new_part.detach() - old_part  # [B], no grad
    # Value: the clamped log-ratio; gradient: that of new_part (straight through the clamp).
    log_ratio = raw.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP) + (new_part - new_part.detach())  # [B]

    zero_col = torch.zeros_like(log_ratio)[:, None]  # [B, 1]
    per_seq, is_clipped, ratio = clipped_surrogate(log_ratio[:, None], zero_col, x.advantages, clip_eps)
    per_seq, is_clipped, ratio = per_seq[:, 0], is_clipped[:, 0], ratio[:, 0]  # [B] each

    pg = x.sequence_mean(per_seq)  # over rows with a masked token
    metrics = {
        "loss": pg,
        "pg_loss": pg,
        "clip_frac": x.sequence_mean(is_clipped.to(dtype)),
        "ratio_mean": x.sequence_mean(ratio.detach()),
        "log_ratio_mean": x.sequence_mean(log_ratio.detach()),
        "approx_kl": x.token_mean(old_is - x.logp.detach()),
    }
    return pg, to_floats(metrics)

"""Validation and padding-neutralisation shared by the policy losses.

`prepare_policy_inputs` checks shapes, choices and coefficients (ValueError naming the
argument), then returns the per-token inputs in a common float dtype (at least float32) with
every position under a zero mask replaced by 0, so garbage in padding (huge values, inf)
cannot leak into the loss or, through `0 * inf`, into the gradient. `old_logp`,
`advantages` and `ref_logp` are detached (they are targets, never trained); `logp` and
`entropy` keep their graph. It also fixes the `LossDenominators` every batch-level mean
divides by: the ones given (a whole mini-batch's, for split-invariant updates) or, when none
are given, those of the mask at hand (denominators.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from megathink.algorithms.denominators import LossDenominators
from megathink.algorithms.kl import check_kl_estimator, kl_penalty
from megathink.algorithms.masked import as_bool_mask, masked_sum


@dataclass(frozen=True)
class PolicyInputs:
    logp: torch.Tensor  # [B, T], grad
    old_logp: torch.Tensor  # [B, T], detached
    advantages: torch.Tensor  # [B], detached; 0 on rows with no real token
    mask: torch.Tensor  # [B, T] bool
    ref_logp: Optional[torch.Tensor]  # [B, T], detached
    entropy: Optional[torch.Tensor]  # [B, T], grad
    denominators: LossDenominators  # what batch-level means divide by

    def token_mean(self, x: torch.Tensor) -> torch.Tensor:
        """Sum of `x` [B, T] over masked tokens / the counted tokens (0-dim)."""
        return self.denominators.divide(masked_sum(x, self.mask), "tokens")

    def sequence_mean(self, per_row: torch.Tensor) -> torch.Tensor:
        """Sum of `per_row` [B] over rows with a masked token / the counted sequences (0-dim)."""
        return self.denominators.divide(masked_sum(per_row, self.mask.any(dim=1)), "sequences")


def check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} = {value!r} is invalid: must be one of " + ", ".join(repr(a) for a in allowed))


def check_coef(name: str, value: object, *, open_unit: bool = False) -> None:
    """A finite real number >= 0, or strictly inside (0, 1) when open_unit."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (0 < value < 1 if open_unit else value >= 0)
    if not ok:
        bound = "in (0, 1)" if open_unit else ">= 0"
        raise ValueError(f"{name} = {value!r} is invalid: must be a finite number {bound}.")


def _check_shape(fn: str, name: str, tensor: torch.Tensor, shape: torch.Size) -> None:
    if tensor.shape != shape:
        raise ValueError(f"{fn}: {name} must have shape {tuple(shape)}; got {tuple(tensor.shape)}.")


def prepare_policy_inputs(
    fn: str,
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    clip_eps: float,
    ref_logp: Optional[torch.Tensor],
    kl_coef: float,
    kl_estimator: str,
    entropy: Optional[torch.Tensor],
    entropy_coef: float,
    denominators: Optional[LossDenominators] = None,
) -> PolicyInputs:
    if logp.dim() != 2 or not logp.dtype.is_floating_point:
        raise ValueError(f"{fn}: logp must be a float [B, T] tensor; got {logp.dtype} of shape {tuple(logp.shape)}.")
    shape = logp.shape
    _check_shape(fn, "old_logp", old_logp, shape)
    _check_shape(fn, "response_mask", response_mask, shape)
    _check_shape(fn, "advantages", advantages, shape[:1])
    if ref_logp is not None:
        _check_shape(fn, "ref_logp", ref_logp, shape)
    if entropy is not None:
        _check_shape(fn, "entropy", entropy, shape)
    check_coef("clip_eps", clip_eps, open_unit=True)
    check_kl_estimator(kl_estimator)
    check_coef("kl_coef", kl_coef)
    check_coef("entropy_coef", entropy_coef)
    if ref_logp is None and kl_coef > 0:
        raise ValueError(f"{fn}: kl_coef = {kl_coef!r} > 0 needs ref_logp (the reference log-probs); got None.")
    if entropy is None and entropy_coef > 0:
        raise ValueError(f"{fn}: entropy_coef = {entropy_coef!r} > 0 needs entropy (per-token); got None.")
    if denominators is not None and not isinstance(denominators, LossDenominators):
        raise ValueError(f"{fn}: denominators must be a LossDenominators or None; got {type(denominators).__name__}.")

    dtype = torch.promote_types(logp.dtype, torch.float32)
    mask = as_bool_mask(response_mask)  # [B, T]
    zero = torch.zeros((), dtype=dtype, device=logp.device)

    def neutral(x: torch.Tensor) -> torch.Tensor:
        return torch.where(mask, x.to(dtype), zero)

    return PolicyInputs(
        logp=neutral(logp),
        old_logp=neutral(old_logp.detach()),
        advantages=torch.where(mask.any(dim=1), advantages.detach().to(dtype), zero),
        mask=mask,
        ref_logp=None if ref_logp is None else neutral(ref_logp.detach()),
        entropy=None if entropy is None else neutral(entropy),
        denominators=LossDenominators.of(mask) if denominators is None else denominators,
    )


def regularisers(
    inputs: PolicyInputs, *, kl_coef: float, kl_estimator: str, entropy_coef: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """`kl_coef * KL - entropy_coef * H` (0-dim) with KL and H token means over every masked token."""
    term = torch.zeros((), dtype=inputs.logp.dtype, device=inputs.logp.device)
    values: dict[str, torch.Tensor] = {}
    if inputs.ref_logp is not None:
        kl = inputs.token_mean(kl_penalty(inputs.logp, inputs.ref_logp, kl_estimator))
        term = term + kl_coef * kl
        values["kl"] = kl
    if inputs.entropy is not None:
        ent = inputs.token_mean(inputs.entropy)
        term = term - entropy_coef * ent
        values["entropy"] = ent
    return term, values


def ratio_metrics(inputs: PolicyInputs, is_clipped: torch.Tensor) -> dict[str, torch.Tensor]:
    """clip_frac, approx_kl (mean of old_logp - logp) and approx_kl_k3, over masked tokens."""
    logp = inputs.logp.detach()
    return {
        "clip_frac": inputs.token_mean(is_clipped.to(logp.dtype)),
        "approx_kl": inputs.token_mean(inputs.old_logp - logp),
        "approx_kl_k3": inputs.token_mean(kl_penalty(logp, inputs.old_logp, "k3")),
    }


def to_floats(values: dict[str, torch.Tensor]) -> dict[str, float]:
    """Detached 0-dim tensors -> python floats with a single device-to-host copy."""
    if not values:
        return {}
    names = list(values)
    stacked = torch.stack([values[n].detach().to(torch.float64) for n in names]).cpu().tolist()
    return dict(zip(names, stacked))

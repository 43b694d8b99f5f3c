"""Per-token estimators of KL(pi_theta || pi_ref) from sampled-token log-probs.

With `d = ref_logp - logp` (tokens sampled from the policy):

* "k1": `logp - ref_logp = -d` (unbiased, high variance, can be negative);
* "k2": `0.5 * d^2` (biased, low variance);
* "k3": `exp(d) - d - 1` (unbiased, low variance, >= 0), clamped to [-10, 10] as in the authors'
  verl code (the lower bound never binds since k3 >= 0).

For k3, `d` is first clamped to [-20, 20]. That changes no value (|d| >= 12 already gives
k3 > 10, which the output clamp caps) but keeps `exp(d)` finite, so the backward through the
clamp is 0 instead of `0 * inf = nan` for extreme log-prob gaps.
"""

from __future__ import annotations

import torch

from megathink.config.algorithm import KL_ESTIMATORS

K3_CLAMP = 10.0
"""k3 values are clamped to [-K3_CLAMP, K3_CLAMP]."""

_K3_LOG_RATIO_CLAMP = 20.0


def check_kl_estimator(estimator: str) -> None:
    if estimator not in KL_ESTIMATORS:
        raise ValueError(
            f"kl_estimator = {estimator!r} is invalid: must be one of " + ", ".join(repr(k) for k in KL_ESTIMATORS)
        )


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str) -> torch.Tensor:
    """Elementwise KL estimate `[B, T]` (any common shape) of the policy against the reference."""
    check_kl_estimator(estimator)
    if logp.shape != ref_logp.shape:
        raise ValueError(
            f"kl_penalty: ref_logp must have the shape of logp {tuple(logp.shape)}; got {tuple(ref_logp.shape)}."
        )
    if estimator == "k1":
        return logp - ref_logp
    if estimator == "k2":
        return 0.5 * (logp - ref_logp).square()
    d = (ref_logp - logp).clamp(-_K3_LOG_RATIO_CLAMP, _K3_LOG_RATIO_CLAMP)  # [B, T]
    return (torch.exp(d) - d - 1.0).clamp(-K3_CLAMP, K3_CLAMP)

"""The fused policy_loss against megathink.algorithms' grpo_loss / degrpo_loss.

Loss and metrics must be bit-identical (same reductions), gradients equal to rounding, for
every aggregation and response normalisation, with KL and entropy terms, padded rows, a
row with only its control token, a masked-out control token and garbage under the mask.
"""

from __future__ import annotations

import pytest
import torch

from megathink.algorithms import degrpo_loss, grpo_loss
from megathink.kernels import policy_loss

CASES = [
    ("grpo", "token_mean"),
    ("grpo", "seq_mean_token_mean"),
    ("grpo", "seq_mean_token_sum_norm"),
    ("degrpo", "batch_token"),
    ("degrpo", "sequence"),
]


def _batch(dtype: torch.dtype, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    b, t = 7, 10
    mask = torch.rand(b, t, generator=gen) > 0.25
    mask[2] = False  # a fully padded row
    mask[3, 1:] = False  # only the control token
    mask[4, 0] = False  # control token masked out
    logp = (torch.randn(b, t, generator=gen) * 0.3 - 1).to(dtype)
    old = (logp + torch.randn(b, t, generator=gen).to(dtype) * 0.4).masked_fill(~mask, float("inf"))  # garbage
    return dict(
        logp=logp, old_logp=old, advantages=torch.randn(b, generator=gen).to(dtype), response_mask=mask.long(),
        ref_logp=(logp - 0.2 * torch.rand(b, t, generator=gen).to(dtype)), entropy=torch.rand(b, t, generator=gen).to(dtype),
    )


def _loss_and_grads(fn, batch: dict[str, torch.Tensor], **kwargs) -> tuple[torch.Tensor, dict, torch.Tensor, torch.Tensor]:
    logp = batch["logp"].clone().requires_grad_(True)
    entropy = batch["entropy"].clone().requires_grad_(True)
    loss, metrics = fn(logp, batch["old_logp"], batch["advantages"], batch["response_mask"],
                       ref_logp=batch["ref_logp"], entropy=entropy, **kwargs)
    loss.backward()
    return loss.detach(), metrics, logp.grad, entropy.grad


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("algorithm, norm", CASES)
@pytest.mark.parametrize("regularised", [False, True])
def test_fused_matches_the_algorithms(dtype: torch.dtype, algorithm: str, norm: str, regularised: bool) -> None:
    batch = _batch(dtype)
    common = dict(clip_eps=0.2, kl_coef=0.01 if regularised else 0.0, entropy_coef=0.003 if regularised else 0.0)
    if algorithm == "degrpo":
        reference = _loss_and_grads(degrpo_loss, batch, alpha=0.01, response_norm=norm, **common)
        fused = _loss_and_grads(policy_loss, batch, algorithm="degrpo", alpha=0.01, response_norm=norm, **common)
    else:
        reference = _loss_and_grads(grpo_loss, batch, agg=norm, **common)
        fused = _loss_and_grads(policy_loss, batch, algorithm="grpo", agg=norm, **common)
    assert torch.equal(fused[0], reference[0])
    assert fused[1] == reference[1]
    tol = 1e-15 if dtype == torch.float64 else 1e-7
    torch.testing.assert_close(fused[2], reference[2], atol=tol, rtol=tol)
    torch.testing.assert_close(fused[3], reference[3], atol=0, rtol=0)
    assert torch.isfinite(fused[2]).all() and torch.all(fused[2][batch["response_mask"] == 0] == 0)


def test_reference_impl_is_the_algorithms_function() -> None:
    batch = _batch(torch.float64, seed=1)
    a = _loss_and_grads(policy_loss, batch, algorithm="degrpo", alpha=0.5, impl="reference")
    b = _loss_and_grads(degrpo_loss, batch, alpha=0.5)
    assert torch.equal(a[0], b[0]) and a[1] == b[1] and torch.equal(a[2], b[2])


def test_argument_errors() -> None:
    batch = _batch(torch.float32)
    args = (batch["logp"], batch["old_logp"], batch["advantages"], batch["response_mask"])
    with pytest.raises(ValueError, match="needs alpha"):
        policy_loss(*args, algorithm="degrpo")
    with pytest.raises(ValueError, match="algorithm = 'ppo'"):
        policy_loss(*args, algorithm="ppo")
    with pytest.raises(ValueError, match="agg = 'sum'"):
        policy_loss(*args, algorithm="grpo", agg="sum")
    with pytest.raises(ValueError, match="response_norm = 'token'"):
        policy_loss(*args, algorithm="degrpo", alpha=1.0, response_norm="token")
    with pytest.raises(ValueError, match="clip_eps"):
        policy_loss(*args, algorithm="grpo", clip_eps=1.5)
    with pytest.raises(ValueError, match="impl = 'triton'"):
        policy_loss(*args, algorithm="grpo", impl="triton")

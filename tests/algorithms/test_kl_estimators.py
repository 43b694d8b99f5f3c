"""kl_penalty k1 / k2 / k3 values, the k3 clamp and its finite gradient, masked_mean."""

from __future__ import annotations

import math

import pytest
import torch

from megathink.algorithms import K3_CLAMP, kl_penalty, masked_mean

LOGP = [-1.0, -2.0, -0.5, -3.0]
REF = [-1.5, -1.0, -0.5, -1.0]


def _k(logp: list[float], ref: list[float], est: str) -> torch.Tensor:
    return kl_penalty(
        torch.tensor([logp], dtype=torch.float64), torch.tensor([ref], dtype=torch.float64), est
    ).squeeze(0)


def test_k1_k2_k3_values() -> None:
    d = [r - p for p, r in zip(LOGP, REF)]  # ref - logp: -0.5, 1.0, 0.0, 2.0
    want = {
        "k1": [-x for x in d],
        "k2": [0.5 * x * x for x in d],
        "k3": [math.exp(x) - x - 1.0 for x in d],  # 2.0 gives 4.389, below the clamp
    }
    for est, expected in want.items():
        got = _k(LOGP, REF, est).tolist()
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-12), est
    assert _k(LOGP, REF, "k3").min() >= 0


def test_k3_clamp_and_finite_gradient_at_extremes() -> None:
    d = [5.0, -15.0, 50.0, -50.0, 1000.0, 2.3]
    logp = torch.zeros(1, len(d), dtype=torch.float64, requires_grad=True)
    ref = torch.tensor([d], dtype=torch.float64)
    out = kl_penalty(logp, ref, "k3")
    want = [min(math.exp(x) - x - 1.0, 10.0) if x < 700 else 10.0 for x in d]
    assert out.squeeze(0).tolist() == pytest.approx(want, rel=1e-12)
    assert K3_CLAMP == 10.0 and out.max() == 10.0
    out.sum().backward()
    grad = logp.grad.squeeze(0).tolist()
    # Clamped entries have zero gradient (not nan); d/dlogp (e^d - d - 1) = 1 - e^d elsewhere.
    assert grad[:5] == [0.0] * 5
    assert grad[5] == pytest.approx(1.0 - math.exp(2.3), rel=1e-12)


def test_k1_and_k2_gradients() -> None:
    logp = torch.tensor([LOGP], dtype=torch.float64, requires_grad=True)
    ref = torch.tensor([REF], dtype=torch.float64)
    (g1,) = torch.autograd.grad(kl_penalty(logp, ref, "k1").sum(), logp)
    (g2,) = torch.autograd.grad(kl_penalty(logp, ref, "k2").sum(), logp)
    assert g1.squeeze(0).tolist() == [1.0] * 4
    assert g2.squeeze(0).tolist() == pytest.approx([p - r for p, r in zip(LOGP, REF)])


def test_kl_validation() -> None:
    with pytest.raises(ValueError, match=r"kl_estimator = 'k4'.*'k1', 'k2', 'k3'"):
        kl_penalty(torch.zeros(2, 3), torch.zeros(2, 3), "k4")
    with pytest.raises(ValueError, match="ref_logp"):
        kl_penalty(torch.zeros(2, 3), torch.zeros(2, 4), "k1")


def test_masked_mean_ignores_padding_and_handles_empty() -> None:
    x = torch.tensor([[1.0, 2.0, float("inf")], [4.0, float("nan"), -1e30]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert masked_mean(x, mask).item() == pytest.approx((1 + 2 + 4) / 3)
    assert masked_mean(x, mask, dim=1).tolist() == pytest.approx([1.5, 4.0])
    assert masked_mean(x, mask.float(), dim=0).tolist()[:2] == pytest.approx([2.5, 2.0])
    assert masked_mean(x, mask.bool(), dim=0).tolist()[2] == 0.0
    assert masked_mean(x, torch.zeros(2, 3)).item() == 0.0

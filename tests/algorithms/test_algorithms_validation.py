"""Bad choices, shapes and missing tensors raise ValueError naming the argument."""

from __future__ import annotations

import pytest
import torch

from megathink.algorithms import degrpo_loss, grpo_loss

B, T = 2, 3


def _args():
    return torch.zeros(B, T), torch.zeros(B, T), torch.zeros(B), torch.ones(B, T)


def _both(**kw):
    """Call grpo_loss and degrpo_loss with the same extra keywords (alpha for degrpo)."""
    return [lambda: grpo_loss(*_args(), **kw), lambda: degrpo_loss(*_args(), alpha=1e-3, **kw)]


@pytest.mark.parametrize("kw, pattern", [
    (dict(kl_estimator="k5"), r"kl_estimator = 'k5'.*'k1', 'k2', 'k3'"),
    (dict(clip_eps=0.0), r"clip_eps"),
    (dict(clip_eps=1.5), r"clip_eps"),
    (dict(kl_coef=0.1), r"kl_coef.*ref_logp"),
    (dict(entropy_coef=0.1), r"entropy_coef.*entropy"),
    (dict(kl_coef=-1.0, ref_logp=torch.zeros(B, T)), r"kl_coef"),
    (dict(entropy_coef=float("nan"), entropy=torch.zeros(B, T)), r"entropy_coef"),
    (dict(ref_logp=torch.zeros(B, T + 1)), r"ref_logp"),
    (dict(entropy=torch.zeros(B + 1, T)), r"entropy"),
])
def test_shared_validation(kw, pattern) -> None:
    for call in _both(**kw):
        with pytest.raises(ValueError, match=pattern):
            call()


def test_choices_name_allowed_values() -> None:
    with pytest.raises(ValueError, match=r"agg = 'mean'.*'token_mean', 'seq_mean_token_mean', "
                                         r"'seq_mean_token_sum_norm'"):
        grpo_loss(*_args(), agg="mean")
    with pytest.raises(ValueError, match=r"response_norm = 'token'.*'batch_token', 'sequence'"):
        degrpo_loss(*_args(), alpha=1.0, response_norm="token")
    with pytest.raises(ValueError, match="alpha"):
        degrpo_loss(*_args(), alpha=-1.0)


@pytest.mark.parametrize("fn", [grpo_loss, lambda *a: degrpo_loss(*a, alpha=1.0)])
def test_shape_mismatches(fn) -> None:
    logp, old, adv, mask = _args()
    with pytest.raises(ValueError, match="old_logp"):
        fn(logp, old[:, :2], adv, mask)
    with pytest.raises(ValueError, match="advantages"):
        fn(logp, old, torch.zeros(B, 1), mask)
    with pytest.raises(ValueError, match="response_mask"):
        fn(logp, old, adv, mask[:1])
    with pytest.raises(ValueError, match="logp"):
        fn(torch.zeros(B), old, adv, mask)


def test_degrpo_needs_a_control_column() -> None:
    with pytest.raises(ValueError, match="T >= 1"):
        degrpo_loss(torch.zeros(2, 0), torch.zeros(2, 0), torch.zeros(2), torch.ones(2, 0), alpha=1.0)


def test_float32_inputs_work_and_stay_float32() -> None:
    logp = torch.randn(B, T, requires_grad=True)
    loss, metrics = degrpo_loss(logp, logp.detach() - 0.1, torch.tensor([1.0, -1.0]), torch.ones(B, T), alpha=1.0)
    assert loss.dtype == torch.float32 and loss.dim() == 0
    loss.backward()
    assert logp.grad.dtype == torch.float32
    assert isinstance(metrics["clip_frac"], float)

"""hgpo_loss against hand-computed values: control token against the proposal, responses against
the old policy, decoupled means."""

from __future__ import annotations

import math

import pytest
import torch

from megathink.algorithms import LossDenominators
from megathink.algorithms.hgpo import hgpo_loss


def test_value_gradient_and_metrics_by_hand():
    # two rows: a forced short (q = 0.5) and a forced think (q = 0.5); logp == old on responses
    logp = torch.tensor([[math.log(0.55), -1.0, -2.0], [math.log(0.45), -0.5, 0.0]], requires_grad=True)
    old = torch.tensor([[-9.0, -1.0, -2.0], [-9.0, -0.5, 0.0]])  # column 0 of old is ignored (proposal)
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    adv = torch.tensor([0.3, -0.3])  # within-mode, responses
    ctrl = torch.tensor([0.5, -0.5])  # between-mode, control tokens
    q = torch.tensor([0.5, 0.5])
    loss, metrics = hgpo_loss(logp, old, adv, mask, control_advantages=ctrl, proposal_prob=q, alpha=2.0, clip_eps=0.2)
    # control: rho = pi / q = 1.1 and 0.9, inside the clip range: -C rho
    l_ctrl = (-0.5 * 1.1 + 0.5 * 0.9) / 2  # = -0.05
    l_resp = (-0.3 * 2 + 0.3 * 1) / 3  # rho = 1 on the 3 response tokens
    assert float(loss) == pytest.approx(2.0 * l_ctrl + l_resp)
    assert metrics["ctrl_loss"] == pytest.approx(l_ctrl) and metrics["resp_loss"] == pytest.approx(l_resp)
    assert metrics["ctrl_ratio"] == pytest.approx(1.0)
    loss.backward()
    # d/dlogp[i,0] = alpha * (-C_i rho_i) / 2 ; d/dlogp[i,t>=1] = -A_i / 3
    want = torch.tensor([[2.0 * -0.5 * 1.1 / 2, -0.1, -0.1], [2.0 * 0.5 * 0.9 / 2, 0.1, 0.0]])
    torch.testing.assert_close(logp.grad, want)


def test_clip_on_the_control_token_and_shared_denominators_add_up():
    logp = torch.tensor([[math.log(0.9), -1.0], [math.log(0.9), -1.0], [math.log(0.1), -1.0]], requires_grad=True)
    old = torch.full((3, 2), -1.0)
    mask = torch.ones(3, 2)
    adv, ctrl, q = torch.tensor([0.1, 0.2, -0.3]), torch.tensor([1.0, 1.0, -1.0]), torch.tensor([0.5, 0.5, 0.5])
    whole, _ = hgpo_loss(logp, old, adv, mask, control_advantages=ctrl, proposal_prob=q)
    # rho_0 = 1.8 > 1.2 with A > 0: clipped, no gradient to the control token of rows 0 and 1
    whole.backward()
    assert float(logp.grad[0, 0]) == 0.0 and float(logp.grad[1, 0]) == 0.0
    shared = LossDenominators.of(mask)
    parts = sum(
        float(hgpo_loss(logp[r], old[r], adv[r], mask[r], control_advantages=ctrl[r], proposal_prob=q[r], denominators=shared)[0])
        for r in (torch.tensor([0]), torch.tensor([1, 2]))
    )
    assert parts == pytest.approx(float(whole))


def test_bad_inputs_name_the_argument():
    x = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="proposal_prob must lie in"):
        hgpo_loss(x, x, torch.zeros(2), torch.ones(2, 2), control_advantages=torch.zeros(2), proposal_prob=torch.zeros(2))
    with pytest.raises(ValueError, match="control_advantages and proposal_prob must have shape"):
        hgpo_loss(x, x, torch.zeros(2), torch.ones(2, 2), control_advantages=torch.zeros(3), proposal_prob=torch.ones(2))

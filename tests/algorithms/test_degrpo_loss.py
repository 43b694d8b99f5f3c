"""degrpo_loss: decoupled control-token / response normalisation, by hand with python floats."""

from __future__ import annotations

import math

import pytest
import torch

from megathink.algorithms import degrpo_loss, grpo_loss

EPS = 0.2
# B = 3, T = 5; column 0 is the control token. Row 2 has only its control token (T_i = 0).
OLD = [[-0.2, -1.0, -0.7, -2.0, -1.2], [-0.9, -0.3, -1.1, -0.9, -0.4], [-0.1, -2.2, -0.6, -0.5, -0.5]]
# Control tokens: row 0 (A > 0, rho 1.49) and row 1 (A < 0, rho 0.61) are clipped, row 2 is not.
DELTA = [[0.4, 0.1, -0.05, 0.3, -0.5], [-0.5, 0.05, -0.4, 0.0, 0.0], [0.1, 0.0, 0.0, 0.0, 0.0]]
ADV = [1.0, -1.0, 0.5]
MASK = [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]]


def surrogate(a: float, delta: float) -> tuple[float, float, bool]:
    rho = math.exp(delta)
    unclipped = -a * rho
    clipped = -a * min(max(rho, 1 - EPS), 1 + EPS)
    if clipped > unclipped:
        return clipped, 0.0, True
    return unclipped, -a * rho, False


def tensors(garbage: bool = False):
    logp = [[o + d for o, d in zip(ro, rd)] for ro, rd in zip(OLD, DELTA)]
    old = [row[:] for row in OLD]
    if garbage:
        for i, row in enumerate(MASK):
            for t, m in enumerate(row):
                if not m:
                    logp[i][t], old[i][t] = -1e4 * (t + 1), 2e4
    f64 = dict(dtype=torch.float64)
    return (
        torch.tensor(logp, **f64, requires_grad=True),
        torch.tensor(old, **f64),
        torch.tensor(ADV, **f64),
        torch.tensor(MASK),
    )


def hand(alpha: float, norm: str) -> dict:
    """L_ctrl, L_resp, L and d L / d logp for the module data, straight from the formulas."""
    n_ctrl = sum(row[0] for row in MASK)  # 3
    n_resp = sum(sum(row[1:]) for row in MASK)  # 4 + 2 + 0 = 6
    g = sum(1 for row in MASK if any(row))  # 3: row 2 (T_i = 0) counts
    ctrl, resp = 0.0, 0.0
    grad = [[0.0] * len(MASK[0]) for _ in MASK]
    for i, row in enumerate(MASK):
        t_i = sum(row[1:])
        for t, m in enumerate(row):
            if not m:
                continue
            value, dvalue, _ = surrogate(ADV[i], DELTA[i][t])
            if t == 0:
                ctrl += value / n_ctrl
                grad[i][t] = alpha * dvalue / n_ctrl
            else:
                weight = 1 / n_resp if norm == "batch_token" else 1 / (g * t_i)
                resp += weight * value
                grad[i][t] = weight * dvalue
    return {"ctrl": ctrl, "resp": resp, "loss": alpha * ctrl + resp, "grad": grad}


@pytest.mark.parametrize("norm", ["batch_token", "sequence"])
@pytest.mark.parametrize("alpha", [0.0, 1e-3, 1.0, 1e3])
def test_value_gradient_and_metrics(alpha: float, norm: str) -> None:
    logp, old, adv, mask = tensors()
    loss, metrics = degrpo_loss(logp, old, adv, mask, alpha=alpha, clip_eps=EPS, response_norm=norm)
    want = hand(alpha, norm)
    assert loss.item() == pytest.approx(want["loss"], rel=1e-12)
    assert metrics["ctrl_loss"] == pytest.approx(want["ctrl"], rel=1e-12)
    assert metrics["resp_loss"] == pytest.approx(want["resp"], rel=1e-12)
    assert metrics["pg_loss"] == pytest.approx(want["loss"], rel=1e-12)
    assert metrics["loss"] == pytest.approx(want["loss"], rel=1e-12)
    loss.backward()
    assert logp.grad.tolist() == [pytest.approx(r, rel=1e-12, abs=1e-15) for r in want["grad"]]
    # Real tokens: 5 + 3 + 1 = 9; clipped: the two control tokens, row 0 col 3 (A > 0, rho 1.35)
    # and row 1 col 2 (A < 0, rho 0.67).
    assert metrics["clip_frac"] == pytest.approx(4 / 9)
    assert metrics["ctrl_clip_frac"] == pytest.approx(2 / 3)
    deltas = [DELTA[i][t] for i, r in enumerate(MASK) for t, m in enumerate(r) if m]
    assert metrics["approx_kl"] == pytest.approx(-sum(deltas) / 9, rel=1e-12)
    assert all(type(v) is float for v in metrics.values())


def test_hand_values_spelled_out() -> None:
    """One case written out term by term, independent of the `hand` helper."""
    logp, old, adv, mask = tensors()
    loss, m = degrpo_loss(logp, old, adv, mask, alpha=2.0, response_norm="batch_token")
    e = math.exp
    l_ctrl = (-1.0 * 1.2 + 1.0 * 0.8 - 0.5 * e(0.1)) / 3  # both clipped control tokens, then row 2
    # Row 0 col 3 clipped at 1.2 (A > 0), row 1 col 2 clipped at 0.8 (A < 0).
    l_resp = (-(e(0.1) + e(-0.05) + 1.2 + e(-0.5)) + e(0.05) + 0.8) / 6
    assert m["ctrl_loss"] == pytest.approx(l_ctrl, rel=1e-12)
    assert m["resp_loss"] == pytest.approx(l_resp, rel=1e-12)
    assert loss.item() == pytest.approx(2.0 * l_ctrl + l_resp, rel=1e-12)
    _, m_seq = degrpo_loss(logp, old, adv, mask, alpha=2.0, response_norm="sequence")
    seq = (-(e(0.1) + e(-0.05) + 1.2 + e(-0.5)) / 4 + (e(0.05) + 0.8) / 2 + 0.0) / 3  # G = 3, T_2 = 0
    assert m_seq["resp_loss"] == pytest.approx(seq, rel=1e-12)


def test_alpha_zero_removes_control_gradient_and_alpha_scales_it() -> None:
    grads = {}
    for alpha in (0.0, 1.0, 1e3):
        logp, old, adv, mask = tensors()
        degrpo_loss(logp, old, adv, mask, alpha=alpha)[0].backward()
        grads[alpha] = logp.grad
    assert torch.equal(grads[0.0][:, 0], torch.zeros(3))
    # Only the unclipped control token (row 2) has a gradient: alpha * (-A rho) / n_ctrl.
    assert grads[1e3][:, 0].tolist() == pytest.approx([0.0, 0.0, 1e3 * (-0.5 * math.exp(0.1)) / 3], rel=1e-12)
    assert torch.equal(grads[1e3][:, 0], grads[1.0][:, 0] * 1e3)
    for alpha in (1.0, 1e3):  # the response gradient does not depend on alpha
        assert torch.equal(grads[alpha][:, 1:], grads[0.0][:, 1:])


@pytest.mark.parametrize("norm", ["batch_token", "sequence"])
def test_padding_values_do_not_matter(norm: str) -> None:
    clean, dirty = tensors(), tensors(garbage=True)
    bmask = clean[3].bool()
    ref_c = torch.where(bmask, clean[0].detach() + 0.3, torch.zeros((), dtype=torch.float64))
    ref_d = torch.where(bmask, ref_c, torch.full((), 1e5, dtype=torch.float64))
    ent_c = torch.where(bmask, torch.full((3, 5), 0.7, dtype=torch.float64), torch.zeros((), dtype=torch.float64))
    ent_d = torch.where(bmask, ent_c, torch.full((), -1e6, dtype=torch.float64))
    kw = dict(alpha=0.5, response_norm=norm, kl_coef=0.1, entropy_coef=0.01)
    loss_c, met_c = degrpo_loss(*clean, ref_logp=ref_c, entropy=ent_c, **kw)
    loss_d, met_d = degrpo_loss(*dirty, ref_logp=ref_d, entropy=ent_d, **kw)
    assert loss_d.item() == pytest.approx(loss_c.item(), rel=1e-12)
    assert met_d == pytest.approx(met_c, rel=1e-12)
    loss_c.backward()
    loss_d.backward()
    torch.testing.assert_close(dirty[0].grad, clean[0].grad, rtol=1e-12, atol=0)


def test_control_gradient_is_alpha_over_n_seq_independent_of_length() -> None:
    """The paper's point: GRPO's control-token gradient is 1/(total tokens), DeGRPO's alpha/n_seq."""
    alpha = 1e-3
    for lengths in ((10, 1000), (200, 5000)):
        width = max(lengths)
        mask = torch.tensor([[1] * n + [0] * (width - n) for n in lengths])
        adv = torch.tensor([1.0, -1.0], dtype=torch.float64)
        logp = torch.full((2, width), -1.0, dtype=torch.float64, requires_grad=True)
        degrpo_loss(logp, logp.detach(), adv, mask, alpha=alpha)[0].backward()  # on-policy, rho = 1
        assert logp.grad[:, 0].tolist() == pytest.approx([-alpha / 2, alpha / 2], rel=1e-12)
        n_resp = sum(lengths) - 2
        assert logp.grad[0, 1].item() == pytest.approx(-1.0 / n_resp, rel=1e-12)
        vanilla = torch.full((2, width), -1.0, dtype=torch.float64, requires_grad=True)
        grpo_loss(vanilla, vanilla.detach(), adv, mask)[0].backward()
        assert vanilla.grad[0, 0].item() == pytest.approx(-1.0 / sum(lengths), rel=1e-12)


def test_no_response_tokens_beyond_control_gives_no_nan() -> None:
    logp, old, adv, _ = tensors()
    only_ctrl = torch.tensor([[1, 0, 0, 0, 0]] * 3)
    for norm in ("batch_token", "sequence"):
        loss, m = degrpo_loss(logp, old, adv, only_ctrl, alpha=0.5, response_norm=norm)
        assert m["resp_loss"] == 0.0
        assert loss.item() == pytest.approx(0.5 * hand(0.5, norm)["ctrl"], rel=1e-12)
        (g,) = torch.autograd.grad(loss, logp)
        assert torch.isfinite(g).all() and torch.equal(g[:, 1:], torch.zeros(3, 4, dtype=torch.float64))
    # T = 1: nothing but control tokens in the tensors.
    one = torch.tensor([[-0.5], [-1.0]], dtype=torch.float64, requires_grad=True)
    loss, m = degrpo_loss(one, one.detach(), torch.tensor([1.0, 0.0]), torch.ones(2, 1), alpha=1.0,
                          response_norm="sequence")
    assert loss.item() == pytest.approx(-0.5) and m["resp_loss"] == 0.0
    # Nothing real at all.
    loss, m = degrpo_loss(logp, old, adv, torch.zeros(3, 5, dtype=torch.bool), alpha=1.0)
    assert loss.item() == 0.0 and all(v == 0.0 for v in m.values())


def test_fully_padded_row_counts_nowhere() -> None:
    logp, old, adv, mask = tensors()
    logp4 = torch.cat([logp.detach(), torch.full((1, 5), 3.0, dtype=torch.float64)])
    old4 = torch.cat([old, torch.full((1, 5), -3.0, dtype=torch.float64)])
    adv4 = torch.cat([adv, torch.tensor([5.0], dtype=torch.float64)])
    mask4 = torch.cat([mask, torch.zeros(1, 5, dtype=mask.dtype)])
    for norm in ("batch_token", "sequence"):
        loss, _ = degrpo_loss(logp4, old4, adv4, mask4, alpha=0.3, response_norm=norm)
        assert loss.item() == pytest.approx(hand(0.3, norm)["loss"], rel=1e-12)


def test_kl_and_entropy_are_token_means_over_all_masked_tokens() -> None:
    logp, old, adv, mask = tensors()
    shift = [0.2, -0.1, 0.0, 0.5, 0.05]  # d = ref - logp per column
    ref = logp.detach() + torch.tensor([shift] * 3, dtype=torch.float64)
    entropy = torch.tensor([[1.0, 0.5, 0.25, 2.0, 0.1], [3.0, 0.2, 0.2, 0.0, 0.0], [0.4, 0.0, 0.0, 0.0, 0.0]],
                           dtype=torch.float64, requires_grad=True)
    alpha, kl_coef, ent_coef = 1e-3, 1e-3, 1e-3
    loss, m = degrpo_loss(logp, old, adv, mask, alpha=alpha, ref_logp=ref, kl_coef=kl_coef, entropy=entropy,
                          entropy_coef=ent_coef)
    real = [(i, t) for i, r in enumerate(MASK) for t, v in enumerate(r) if v]
    kl = sum(math.exp(shift[t]) - shift[t] - 1 for _, t in real) / 9  # control tokens included
    ent = sum(entropy[i, t].item() for i, t in real) / 9
    want = hand(alpha, "batch_token")
    assert m["kl"] == pytest.approx(kl, rel=1e-12) and m["entropy"] == pytest.approx(ent, rel=1e-12)
    assert loss.item() == pytest.approx(want["loss"] + kl_coef * kl - ent_coef * ent, rel=1e-12)
    loss.backward()
    for i, t in real:
        g = want["grad"][i][t] + kl_coef * (1 - math.exp(shift[t])) / 9
        assert logp.grad[i, t].item() == pytest.approx(g, rel=1e-10, abs=1e-15)
        assert entropy.grad[i, t].item() == pytest.approx(-ent_coef / 9, rel=1e-12)


def test_targets_get_no_gradient() -> None:
    logp, old, adv, mask = tensors()
    old.requires_grad_(True)
    adv.requires_grad_(True)
    ref = (logp.detach() + 0.1).requires_grad_(True)
    loss, _ = degrpo_loss(logp, old, adv, mask, alpha=1.0, ref_logp=ref, kl_coef=0.1)
    loss.backward()
    assert old.grad is None and adv.grad is None and ref.grad is None
    assert logp.grad is not None

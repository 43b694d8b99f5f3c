"""grpo_loss against values and gradients computed by hand with python floats."""

from __future__ import annotations

import math

import pytest
import torch

from megathink.algorithms import grpo_loss

EPS = 0.2
# B = 3, T = 4. Row 0: A > 0, all real; row 1: A < 0, one padding; row 2: two padding tokens.
OLD = [[-1.0, -0.7, -2.0, -1.2], [-0.3, -1.1, -0.9, -0.4], [-2.2, -0.6, -0.5, -0.5]]
# log-ratios: 0.5 with A > 0 is clipped (rho 1.65 > 1.2), -0.5 with A > 0 is not (rho 0.61);
# -0.4 with A < 0 is clipped (rho 0.67 < 0.8), 0.3 with A < 0 is not (rho 1.35).
DELTA = [[0.0, 0.1, 0.5, -0.5], [0.05, -0.4, 0.3, 0.0], [-0.1, 0.15, 0.0, 0.0]]
ADV = [1.0, -0.5, 0.25]
MASK = [[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0]]
CLIPPED = {(0, 2), (1, 1)}


def surrogate(a: float, delta: float) -> tuple[float, float, bool]:
    """Per-token clipped loss, its derivative in logp, and whether the clip is active."""
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
                    logp[i][t], old[i][t] = 1e4 * (t + 1), -3e4
    f64 = dict(dtype=torch.float64)
    return (
        torch.tensor(logp, **f64, requires_grad=True),
        torch.tensor(old, **f64),
        torch.tensor(ADV, **f64),
        torch.tensor(MASK),
    )


def hand(agg: str) -> tuple[float, list[list[float]]]:
    """Loss and d loss / d logp for the module data, from the formulas."""
    n_total = sum(sum(r) for r in MASK)
    n_seq, width = len(MASK), len(MASK[0])
    loss, grad = 0.0, [[0.0] * width for _ in MASK]
    for i, row in enumerate(MASK):
        n_i = sum(row)
        weight = {"token_mean": 1 / n_total, "seq_mean_token_mean": 1 / (n_seq * n_i),
                  "seq_mean_token_sum_norm": 1 / (n_seq * width)}[agg]
        for t, m in enumerate(row):
            if m:
                value, dvalue, _ = surrogate(ADV[i], DELTA[i][t])
                loss += weight * value
                grad[i][t] = weight * dvalue
    return loss, grad


@pytest.mark.parametrize("agg", ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"])
def test_aggregations_value_and_gradient(agg: str) -> None:
    logp, old, adv, mask = tensors()
    loss, metrics = grpo_loss(logp, old, adv, mask, clip_eps=EPS, agg=agg)
    want, want_grad = hand(agg)
    assert loss.item() == pytest.approx(want, rel=1e-12)
    loss.backward()
    assert logp.grad.tolist() == [pytest.approx(r, rel=1e-12, abs=1e-15) for r in want_grad]
    assert metrics["pg_loss"] == pytest.approx(want, rel=1e-12)
    assert metrics["loss"] == pytest.approx(want, rel=1e-12)
    # clip_frac: the two clipped tokens out of 9 real ones; approx_kl = mean(old - logp).
    assert metrics["clip_frac"] == pytest.approx(2 / 9)
    deltas = [DELTA[i][t] for i, r in enumerate(MASK) for t, m in enumerate(r) if m]
    assert metrics["approx_kl"] == pytest.approx(-sum(deltas) / 9, rel=1e-12)
    assert metrics["approx_kl_k3"] == pytest.approx(sum(math.exp(-d) + d - 1 for d in deltas) / 9, rel=1e-12)
    assert all(type(v) is float for v in metrics.values())


def test_clipping_both_sides_zero_gradient_and_unclipped_gradient() -> None:
    logp, old, adv, mask = tensors()
    loss, _ = grpo_loss(logp, old, adv, mask, clip_eps=EPS)
    loss.backward()
    g = logp.grad
    real = [(i, t) for i, r in enumerate(MASK) for t, m in enumerate(r) if m]
    assert CLIPPED == {(i, t) for i, t in real if surrogate(ADV[i], DELTA[i][t])[2]}
    for i, t in CLIPPED:
        assert g[i, t].item() == 0.0
    # The unclipped token with rho < 1 - eps and A > 0 (row 0, col 3) still gets -A rho / N.
    assert g[0, 3].item() == pytest.approx(-1.0 * math.exp(-0.5) / 9, rel=1e-12)
    assert g[1, 2].item() == pytest.approx(0.5 * math.exp(0.3) / 9, rel=1e-12)
    assert g[1, 3].item() == 0.0 and g[2, 2:].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("agg", ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"])
def test_padding_values_do_not_matter(agg: str) -> None:
    clean = tensors()
    dirty = tensors(garbage=True)
    ref_clean = torch.where(clean[3].bool(), clean[0].detach() - 0.2, torch.zeros(()))
    ref_dirty = torch.where(dirty[3].bool(), ref_clean, torch.full((), -5e4, dtype=torch.float64))
    ent = torch.tensor([[0.5, 1.0, 2.0, 0.1], [0.3, 0.3, 0.3, 9e9], [1.0, 0.0, -9e9, 9e9]], dtype=torch.float64)
    kw = dict(clip_eps=EPS, agg=agg, kl_coef=0.1, entropy_coef=0.01)
    loss_c, met_c = grpo_loss(*clean, ref_logp=ref_clean, entropy=ent.clamp(-5, 5), **kw)
    loss_d, met_d = grpo_loss(*dirty, ref_logp=ref_dirty, entropy=ent, **kw)
    assert loss_d.item() == pytest.approx(loss_c.item(), rel=1e-12)
    assert met_d == pytest.approx(met_c, rel=1e-12)
    loss_c.backward()
    loss_d.backward()
    assert torch.isfinite(dirty[0].grad).all()
    torch.testing.assert_close(dirty[0].grad, clean[0].grad, rtol=1e-12, atol=0)
    # Float, int and bool masks mean the same.
    for m in (clean[3].float(), clean[3].bool()):
        assert grpo_loss(clean[0], clean[1], clean[2], m, clip_eps=EPS, agg=agg)[0].item() == pytest.approx(
            grpo_loss(*clean, clip_eps=EPS, agg=agg)[0].item(), rel=1e-15
        )


def test_fully_padded_row_does_not_count_as_a_sequence() -> None:
    logp, old, adv, mask = tensors()
    logp4 = torch.cat([logp.detach(), torch.full((1, 4), 7.0, dtype=torch.float64)])
    old4 = torch.cat([old, torch.zeros(1, 4, dtype=torch.float64)])
    adv4 = torch.cat([adv, torch.tensor([float("nan")], dtype=torch.float64)])
    mask4 = torch.cat([mask, torch.zeros(1, 4, dtype=mask.dtype)])
    for agg in ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"):
        loss, _ = grpo_loss(logp4, old4, adv4, mask4, clip_eps=EPS, agg=agg)
        assert loss.item() == pytest.approx(hand(agg)[0], rel=1e-12), agg


def test_kl_and_entropy_terms() -> None:
    logp, old, adv, mask = tensors()
    ref = logp.detach() + torch.tensor([[0.3, -0.2, 0.0, 1.0]] * 3, dtype=torch.float64)  # d = ref - logp
    entropy = torch.tensor([[0.5, 1.0, 2.0, 0.1], [0.3, 0.3, 0.3, 0.0], [1.0, 0.0, 0.0, 0.0]], dtype=torch.float64,
                           requires_grad=True)
    kl_coef, ent_coef = 0.05, 0.01
    loss, metrics = grpo_loss(logp, old, adv, mask, clip_eps=EPS, ref_logp=ref, kl_coef=kl_coef,
                              entropy=entropy, entropy_coef=ent_coef)
    pg, pg_grad = hand("token_mean")
    ds = [0.3, -0.2, 0.0, 1.0]
    real = [(i, t) for i, r in enumerate(MASK) for t, m in enumerate(r) if m]
    kl = sum(math.exp(ds[t]) - ds[t] - 1 for _, t in real) / 9
    ent = sum(entropy[i, t].item() for i, t in real) / 9
    assert metrics["kl"] == pytest.approx(kl, rel=1e-12)
    assert metrics["entropy"] == pytest.approx(ent, rel=1e-12)
    assert loss.item() == pytest.approx(pg + kl_coef * kl - ent_coef * ent, rel=1e-12)
    loss.backward()
    for i, t in real:
        want = pg_grad[i][t] + kl_coef * (1 - math.exp(ds[t])) / 9
        assert logp.grad[i, t].item() == pytest.approx(want, rel=1e-10, abs=1e-15)
        # Entropy is a bonus: more entropy lowers the loss.
        assert entropy.grad[i, t].item() == pytest.approx(-ent_coef / 9, rel=1e-12)
    assert entropy.grad[1, 3].item() == 0.0
    # k1 and k2 plug in the same way.
    for est, f in (("k1", lambda d: -d), ("k2", lambda d: 0.5 * d * d)):
        _, m = grpo_loss(logp, old, adv, mask, ref_logp=ref, kl_coef=kl_coef, kl_estimator=est)
        assert m["kl"] == pytest.approx(sum(f(ds[t]) for _, t in real) / 9, rel=1e-12)


def test_targets_get_no_gradient() -> None:
    logp, old, adv, mask = tensors()
    old.requires_grad_(True)
    adv.requires_grad_(True)
    ref = (logp.detach() - 0.1).requires_grad_(True)
    loss, _ = grpo_loss(logp, old, adv, mask, ref_logp=ref, kl_coef=0.1)
    loss.backward()
    assert old.grad is None and adv.grad is None and ref.grad is None
    assert logp.grad is not None


def test_control_token_gradient_is_one_over_total_tokens() -> None:
    """Vanilla GRPO: the control token weighs 1 / (all tokens), so it shrinks with length."""
    for lengths in ((10, 1000), (10, 5000)):
        width = max(lengths)
        mask = torch.tensor([[1] * n + [0] * (width - n) for n in lengths])
        logp = torch.full((2, width), -1.0, dtype=torch.float64, requires_grad=True)
        adv = torch.tensor([1.0, -1.0], dtype=torch.float64)
        loss, _ = grpo_loss(logp, logp.detach(), adv, mask)  # on-policy: rho = 1
        loss.backward()
        total = sum(lengths)
        assert logp.grad[:, 0].tolist() == pytest.approx([-1.0 / total, 1.0 / total], rel=1e-12)


def test_empty_mask_gives_zero_not_nan() -> None:
    logp, old, adv, _ = tensors()
    for agg in ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"):
        loss, metrics = grpo_loss(logp, old, adv, torch.zeros(3, 4), agg=agg, entropy=torch.ones(3, 4),
                                  ref_logp=old, kl_coef=0.1, entropy_coef=0.1)
        assert loss.item() == 0.0 and all(v == 0.0 for v in metrics.values())
        (g,) = torch.autograd.grad(loss, logp)
        assert torch.equal(g, torch.zeros_like(g))

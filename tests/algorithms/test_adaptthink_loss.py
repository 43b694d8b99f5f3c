"""adaptthink_loss against values and gradients computed by hand with python floats."""

from __future__ import annotations

import math

import pytest
import torch

from megathink.algorithms import adaptthink_loss
from megathink.algorithms.adaptthink import LOG_RATIO_CLAMP

EPS = 0.2
F64 = dict(dtype=torch.float64)
# B = 3, T = 4; column 0 is the forced opener. Column 0 of OLD is garbage: the loss must use
# log(first_token_is_prob) there instead. Row 1 has one padding token, row 2 two.
LOGP = [[-0.1, -0.6, -0.4, -1.5], [-2.0, -0.5, -1.5, 0.0], [-0.6, -0.9, 0.0, 0.0]]
OLD = [[-7.0, -1.0, -0.5, -2.0], [3.0, -0.3, -1.2, 0.0], [-100.0, -0.8, 0.0, 0.0]]
MASK = [[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0]]
# With p = 0.5 the sequence log-ratios (sum over real tokens) are
#   row 0: (-0.1 - ln .5) + 0.4 + 0.1 + 0.5  =  1.5931  (code: /4 -> ratio 1.489; paper: 4.919)
#   row 1: (-2.0 - ln .5) - 0.2 - 0.3        = -1.8069  (code: /3 -> ratio 0.548; paper: 0.164)
#   row 2: (-0.6 - ln .5) - 0.1              = -0.0069  (code: /2 -> ratio 0.997; paper: 0.993)
# ADV: row 0 (A > 0, ratio > 1.2) and row 1 (A < 0, ratio < 0.8) are clipped in both forms.
ADV = [1.0, -1.0, 0.5]
# ADV_PESSIMISTIC: the same ratios on the other side of the advantage, so the unclipped branch
# is the max (A < 0 with ratio > 1.2, A > 0 with ratio < 0.8): nothing is clipped.
ADV_PESSIMISTIC = [-1.0, 1.0, 0.5]


def tensors(adv=ADV, garbage: bool = False):
    logp = [row[:] for row in LOGP]
    old = [row[:] for row in OLD]
    if garbage:
        for i, row in enumerate(MASK):
            for t, m in enumerate(row):
                if not m:
                    logp[i][t], old[i][t] = 1e4 * (t + 1), [float("nan"), float("inf"), -float("inf")][(t - i) % 3]
    return (
        torch.tensor(logp, **F64, requires_grad=True),
        torch.tensor(old, **F64),
        torch.tensor(adv, **F64),
        torch.tensor(MASK),
    )


def hand(form: str, adv=ADV, p: float = 0.5) -> dict:
    """Loss, d L / d logp and metrics for the module data, straight from the formulas."""
    rows = [i for i, r in enumerate(MASK) if any(r)]
    n = len(rows)
    loss, clipped, ratios, log_ratios = 0.0, 0, [], []
    grad = [[0.0] * len(MASK[0]) for _ in MASK]
    kl_sum, kl_count = 0.0, 0
    for i in rows:
        real = [t for t, m in enumerate(MASK[i]) if m]
        t_i = len(real)
        p_i = p[i] if isinstance(p, list) else p
        diffs = [LOGP[i][t] - (math.log(p_i) if t == 0 and p_i is not None else OLD[i][t]) for t in real]
        kl_sum -= sum(diffs)
        kl_count += t_i
        s = sum(diffs) / t_i if form == "code" else sum(diffs)
        rho = math.exp(s)
        a = adv[i]
        unclipped, clip_branch = -a * rho, -a * min(max(rho, 1 - EPS), 1 + EPS)
        if clip_branch > unclipped:
            loss += clip_branch / n
            clipped += 1
        else:
            loss += unclipped / n
            for t in real:
                grad[i][t] = -a * rho / (n * t_i) if form == "code" else -a * rho / n
        ratios.append(rho)
        log_ratios.append(s)
    return {
        "loss": loss,
        "grad": grad,
        "clip_frac": clipped / n,
        "ratio_mean": sum(ratios) / n,
        "log_ratio_mean": sum(log_ratios) / n,
        "approx_kl": kl_sum / kl_count,
    }


@pytest.mark.parametrize("p", [0.5, 0.25, 1.0])
@pytest.mark.parametrize("adv", [ADV, ADV_PESSIMISTIC])
@pytest.mark.parametrize("form", ["code", "paper"])
def test_value_gradient_and_metrics(form: str, adv, p: float) -> None:
    logp, old, a, mask = tensors(adv)
    loss, metrics = adaptthink_loss(logp, old, a, mask, first_token_is_prob=p, clip_eps=EPS, form=form)
    want = hand(form, adv, p)
    assert loss.dim() == 0 and loss.item() == pytest.approx(want["loss"], rel=1e-12)
    for key in ("loss", "pg_loss"):
        assert metrics[key] == pytest.approx(want["loss"], rel=1e-12)
    for key in ("clip_frac", "ratio_mean", "log_ratio_mean", "approx_kl"):
        assert metrics[key] == pytest.approx(want[key], rel=1e-12, abs=1e-15), key
    assert all(type(v) is float for v in metrics.values())
    loss.backward()
    assert logp.grad.tolist() == [pytest.approx(r, rel=1e-12, abs=1e-15) for r in want["grad"]]


@pytest.mark.parametrize("form", ["code", "paper"])
def test_per_row_probabilities_and_no_override(form: str) -> None:
    """A [B] tensor gives each row its own proposal probability (NoThinking share s, Thinking
    1 - s); None keeps old_logp's column 0 (the naive baseline: nothing was forced)."""
    per_row = [0.25, 0.75, 0.25]
    for p, given in ((per_row, torch.tensor(per_row, **F64)), (None, None)):
        logp, old, a, mask = tensors(ADV_PESSIMISTIC)
        loss, metrics = adaptthink_loss(logp, old, a, mask, first_token_is_prob=given, clip_eps=EPS, form=form)
        want = hand(form, ADV_PESSIMISTIC, p)
        assert loss.item() == pytest.approx(want["loss"], rel=1e-12)
        assert metrics["approx_kl"] == pytest.approx(want["approx_kl"], rel=1e-12)
        loss.backward()
        assert logp.grad.tolist() == [pytest.approx(r, rel=1e-12, abs=1e-15) for r in want["grad"]]
    with pytest.raises(ValueError, match=r"first_token_is_prob must have shape \(3,\)"):
        adaptthink_loss(*tensors(), first_token_is_prob=torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="every entry"):
        adaptthink_loss(*tensors(), first_token_is_prob=torch.tensor([0.5, 0.0, 0.5]))


def test_hand_values_spelled_out() -> None:
    """Both forms written out term by term, independent of the `hand` helper."""
    e, l5 = math.exp, math.log(0.5)
    s0 = (-0.1 - l5) + 0.4 + 0.1 + 0.5
    s1 = (-2.0 - l5) - 0.2 - 0.3
    s2 = (-0.6 - l5) - 0.1
    # ADV: rows 0 and 1 clipped (at 1.2 with A = 1, at 0.8 with A = -1), row 2 unclipped.
    code = (-1.2 + 0.8 - 0.5 * e(s2 / 2)) / 3
    paper = (-1.2 + 0.8 - 0.5 * e(s2)) / 3
    for form, value in (("code", code), ("paper", paper)):
        logp, old, adv, mask = tensors()
        loss, m = adaptthink_loss(logp, old, adv, mask, form=form)
        assert loss.item() == pytest.approx(value, rel=1e-12)
        assert m["clip_frac"] == pytest.approx(2 / 3)
        loss.backward()
        g2 = -0.5 * e(s2 / 2) / (3 * 2) if form == "code" else -0.5 * e(s2) / 3
        assert logp.grad.tolist() == [[0.0] * 4, [0.0] * 4, pytest.approx([g2, g2, 0.0, 0.0], rel=1e-12)]
    assert adaptthink_loss(*tensors())[1]["ratio_mean"] == pytest.approx(
        (e(s0 / 4) + e(s1 / 3) + e(s2 / 2)) / 3, rel=1e-12
    )
    # ADV_PESSIMISTIC: nothing clipped; d L / d logp[0, t] = -A_0 ratio_0 / (n T_0).
    logp, old, adv, mask = tensors(ADV_PESSIMISTIC)
    loss, m = adaptthink_loss(logp, old, adv, mask, form="code")
    assert loss.item() == pytest.approx((e(s0 / 4) - e(s1 / 3) - 0.5 * e(s2 / 2)) / 3, rel=1e-12)
    assert m["clip_frac"] == 0.0
    loss.backward()
    assert logp.grad[0].tolist() == pytest.approx([e(s0 / 4) / 12] * 4, rel=1e-12)
    assert logp.grad[1].tolist() == pytest.approx([-e(s1 / 3) / 9] * 3 + [0.0], rel=1e-12)
    logp, old, adv, mask = tensors(ADV_PESSIMISTIC)
    loss, _ = adaptthink_loss(logp, old, adv, mask, form="paper")
    assert loss.item() == pytest.approx((e(s0) - e(s1) - 0.5 * e(s2)) / 3, rel=1e-12)
    loss.backward()
    assert logp.grad[0].tolist() == pytest.approx([e(s0) / 3] * 4, rel=1e-12)
    assert logp.grad[1].tolist() == pytest.approx([-e(s1) / 3] * 3 + [0.0], rel=1e-12)


@pytest.mark.parametrize("form", ["code", "paper"])
def test_first_token_override_ignores_column_zero_and_keeps_caller_tensor(form: str) -> None:
    results = []
    for col0 in (-7.0, 0.0, 50.0, float("nan"), -float("inf")):
        logp, old, adv, mask = tensors()
        old[:, 0] = col0
        before = old.clone()
        loss, metrics = adaptthink_loss(logp, old, adv, mask, first_token_is_prob=0.25, form=form)
        torch.testing.assert_close(old, before, rtol=0, atol=0, equal_nan=True)  # not mutated
        loss.backward()
        results.append((loss.item(), metrics, logp.grad))
    first = results[0]
    for loss, metrics, grad in results[1:]:
        assert loss == first[0] and metrics == first[1] and torch.equal(grad, first[2])
    # Row 2 alone, p = 0.25, "paper": s = (-0.6 - ln 0.25) - 0.1 = 0.686, ratio 1.986 > 1.2 with
    # A = 0.5: clipped at 1.2. The same row with p = 0.5 (s = -0.007) is not clipped.
    one = dict(logp=torch.tensor([LOGP[2]], **F64), old=torch.tensor([OLD[2]], **F64),
               adv=torch.tensor([0.5], **F64), mask=torch.tensor([MASK[2]]))
    loss, m = adaptthink_loss(one["logp"], one["old"], one["adv"], one["mask"], first_token_is_prob=0.25,
                              form="paper")
    assert loss.item() == pytest.approx(-0.5 * 1.2) and m["clip_frac"] == 1.0
    assert m["log_ratio_mean"] == pytest.approx(-0.6 - math.log(0.25) - 0.1, rel=1e-12)
    assert m["approx_kl"] == pytest.approx((math.log(0.25) + 0.6 + 0.1) / 2, rel=1e-12)
    loss, m = adaptthink_loss(one["logp"], one["old"], one["adv"], one["mask"], form="paper")
    assert loss.item() == pytest.approx(-0.5 * math.exp(-0.6 - math.log(0.5) - 0.1), rel=1e-12)


@pytest.mark.parametrize("form", ["code", "paper"])
def test_padding_values_do_not_matter(form: str) -> None:
    clean, dirty = tensors(), tensors(garbage=True)
    assert torch.isnan(dirty[1]).any() and torch.isinf(dirty[1]).any()
    loss_c, met_c = adaptthink_loss(*clean, form=form)
    loss_d, met_d = adaptthink_loss(*dirty, form=form)
    assert loss_d.item() == pytest.approx(loss_c.item(), rel=1e-12)
    assert met_d == pytest.approx(met_c, rel=1e-12)
    loss_c.backward()
    loss_d.backward()
    torch.testing.assert_close(dirty[0].grad, clean[0].grad, rtol=1e-12, atol=0)
    assert torch.equal(dirty[0].grad[torch.tensor(MASK) == 0], torch.zeros(3, **F64))


@pytest.mark.parametrize("form", ["code", "paper"])
def test_fully_padded_row_counts_nowhere(form: str) -> None:
    logp, old, adv, mask = tensors()
    logp4 = torch.cat([logp.detach(), torch.full((1, 4), 3.0, **F64)]).requires_grad_(True)
    old4 = torch.cat([old, torch.full((1, 4), -3.0, **F64)])
    adv4 = torch.cat([adv, torch.tensor([5.0], **F64)])
    mask4 = torch.cat([mask, torch.zeros(1, 4, dtype=mask.dtype)])
    loss, m = adaptthink_loss(logp4, old4, adv4, mask4, form=form)
    want = hand(form)
    assert loss.item() == pytest.approx(want["loss"], rel=1e-12)
    assert m["clip_frac"] == pytest.approx(2 / 3) and m["ratio_mean"] == pytest.approx(want["ratio_mean"])
    loss.backward()
    assert torch.equal(logp4.grad[3], torch.zeros(4, **F64))


@pytest.mark.parametrize("form", ["code", "paper"])
def test_targets_get_no_gradient(form: str) -> None:
    logp, old, adv, mask = tensors(ADV_PESSIMISTIC)
    old.requires_grad_(True)
    adv.requires_grad_(True)
    loss, _ = adaptthink_loss(logp, old, adv, mask, form=form)
    loss.backward()
    assert old.grad is None and adv.grad is None
    assert logp.grad is not None and logp.grad.abs().sum() > 0


def test_empty_mask_gives_zero_not_nan() -> None:
    logp, old, adv, _ = tensors()
    for form in ("code", "paper"):
        loss, m = adaptthink_loss(logp, old, adv, torch.zeros(3, 4, dtype=torch.bool), form=form)
        assert loss.item() == 0.0 and all(v == 0.0 for v in m.values())
        (g,) = torch.autograd.grad(loss, logp)
        assert torch.equal(g, torch.zeros(3, 4, **F64))
    # T = 1: only the opener. ratio = pi(y_0) / p in both forms.
    one = torch.tensor([[math.log(0.55)], [math.log(0.3)]], **F64, requires_grad=True)
    for form in ("code", "paper"):
        loss, m = adaptthink_loss(one, torch.zeros(2, 1, **F64), torch.tensor([1.0, 1.0], **F64),
                                  torch.ones(2, 1), form=form)
        assert loss.item() == pytest.approx(-(1.1 + 0.6) / 2, rel=1e-12)
        assert m["clip_frac"] == 0.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_paper_form_long_sums_stay_finite(dtype: torch.dtype) -> None:
    """T = 300 tokens at per-token log-ratio +-0.5: |s| = 150 would overflow exp in float32."""
    width = 300
    mask = torch.ones(4, width)
    old = torch.full((4, width), -1.0, dtype=dtype)
    step = torch.tensor([[0.5], [0.5], [-0.5], [-0.5]], dtype=dtype)
    logp = (old + step).clone()
    logp[:, 0] = math.log(0.5)  # the opener term is 0, s_i = +-0.5 * (n_real - 1)
    logp.requires_grad_(True)
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=dtype)
    loss, m = adaptthink_loss(logp, old, adv, mask, form="paper")
    big = math.exp(LOG_RATIO_CLAMP)
    # Row 0 (A > 0, ratio >> 1.2) and row 3 (A < 0, ratio << 0.8) are clipped; rows 1 and 2
    # take the unclipped branch with the saturated ratio e^{+-20}.
    want = (-1.2 + big - math.exp(-LOG_RATIO_CLAMP) + 0.8) / 4
    assert math.isfinite(loss.item()) and loss.item() == pytest.approx(want, rel=1e-6)
    assert m["clip_frac"] == 0.5 and m["log_ratio_mean"] == 0.0
    assert all(math.isfinite(v) for v in m.values())
    loss.backward()
    g = logp.grad
    assert torch.isfinite(g).all()
    assert torch.equal(g[0], torch.zeros(width, dtype=dtype)) and torch.equal(g[3], torch.zeros(width, dtype=dtype))
    # Straight through the clamp: still -A * ratio / n per token, ratio the saturated one.
    assert g[1].tolist() == pytest.approx([big / 4] * width, rel=1e-6)
    assert g[2].tolist() == pytest.approx([-math.exp(-LOG_RATIO_CLAMP) / 4] * width, rel=1e-6)
    # An old log-prob of -inf on a real token saturates too, without nan.
    old_inf = old.clone()
    old_inf[1, 5] = -float("inf")
    logp.grad = None
    loss, m = adaptthink_loss(logp, old_inf, adv, mask, form="paper")
    loss.backward()
    assert math.isfinite(loss.item()) and torch.isfinite(logp.grad).all()
    assert loss.item() == pytest.approx(want, rel=1e-6)


def test_float32_inputs_work_and_stay_float32() -> None:
    logp = torch.randn(2, 3, requires_grad=True)
    loss, metrics = adaptthink_loss(logp, logp.detach() - 0.1, torch.tensor([1.0, -1.0]), torch.ones(2, 3))
    assert loss.dtype == torch.float32 and loss.dim() == 0
    loss.backward()
    assert logp.grad.dtype == torch.float32
    assert isinstance(metrics["clip_frac"], float)


def _args(b: int = 2, t: int = 3):
    return torch.zeros(b, t), torch.zeros(b, t), torch.zeros(b), torch.ones(b, t)


@pytest.mark.parametrize("kw, pattern", [
    (dict(form="tokens"), r"form = 'tokens'.*'code', 'paper'"),
    (dict(first_token_is_prob=0.0), r"first_token_is_prob = 0\.0.*\(0, 1\]"),
    (dict(first_token_is_prob=-0.5), r"first_token_is_prob"),
    (dict(first_token_is_prob=1.5), r"first_token_is_prob"),
    (dict(first_token_is_prob=float("nan")), r"first_token_is_prob"),
    (dict(first_token_is_prob=True), r"first_token_is_prob"),
    (dict(first_token_is_prob="0.5"), r"first_token_is_prob"),
    (dict(clip_eps=0.0), r"clip_eps"),
    (dict(clip_eps=1.0), r"clip_eps"),
    (dict(clip_eps=float("inf")), r"clip_eps"),
])
def test_bad_keywords(kw, pattern) -> None:
    with pytest.raises(ValueError, match=pattern):
        adaptthink_loss(*_args(), **kw)


def test_first_token_prob_one_is_allowed() -> None:
    loss, _ = adaptthink_loss(*_args(), first_token_is_prob=1.0)
    assert loss.item() == 0.0


def test_shape_mismatches() -> None:
    logp, old, adv, mask = _args()
    with pytest.raises(ValueError, match="old_logp"):
        adaptthink_loss(logp, old[:, :2], adv, mask)
    with pytest.raises(ValueError, match="advantages"):
        adaptthink_loss(logp, old, torch.zeros(2, 1), mask)
    with pytest.raises(ValueError, match="response_mask"):
        adaptthink_loss(logp, old, adv, mask[:1])
    with pytest.raises(ValueError, match="logp"):
        adaptthink_loss(torch.zeros(2), old, adv, mask)
    with pytest.raises(ValueError, match="T >= 1"):
        adaptthink_loss(*_args(t=0))

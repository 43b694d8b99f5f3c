"""Losses with a mini-batch's `LossDenominators` add up over any split into micro-batches.

For every loss (GRPO's three aggregations, DeGRPO's two response norms, AdaptThink's two forms,
the fused GRPO/DeGRPO kernel), with KL and entropy terms: the sum of the micro-batch losses,
their metrics and their gradients equals one call on the whole batch, for micro-batches of
1 row, of uneven sizes, and of rows trimmed to their own width. Without shared denominators
(each micro-batch its own mean, the authors' behaviour) the sum differs, which is what
`rl.loss_normalization` chooses between.
"""

from __future__ import annotations

import functools

import pytest
import torch

from megathink.algorithms import LossDenominators, adaptthink_loss, degrpo_loss, grpo_loss
from megathink.kernels.policy_loss import policy_loss

B, T = 7, 9
LOSSES = {
    "grpo_token_mean": functools.partial(grpo_loss, agg="token_mean", kl_coef=0.1, entropy_coef=0.01),
    "grpo_seq_mean_token_mean": functools.partial(grpo_loss, agg="seq_mean_token_mean", kl_coef=0.1),
    "grpo_seq_mean_token_sum_norm": functools.partial(grpo_loss, agg="seq_mean_token_sum_norm", entropy_coef=0.01),
    "degrpo_batch_token": functools.partial(degrpo_loss, alpha=0.3, kl_coef=0.1, entropy_coef=0.01),
    "degrpo_sequence": functools.partial(degrpo_loss, alpha=0.3, response_norm="sequence", kl_coef=0.1),
    "fused_degrpo": functools.partial(policy_loss, algorithm="degrpo", alpha=0.3, kl_coef=0.1, entropy_coef=0.01),
    "fused_grpo_sum_norm": functools.partial(policy_loss, algorithm="grpo", agg="seq_mean_token_sum_norm"),
    "adaptthink_code": functools.partial(adaptthink_loss, first_token_is_prob=0.5),
    "adaptthink_paper": functools.partial(adaptthink_loss, first_token_is_prob=0.5, form="paper"),
}
TAKES_REGULARISERS = {name for name in LOSSES if not name.startswith("adaptthink")}


def batch(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([9, 1, 4, 0, 7, 2, 5])  # a row with only its first token, an empty row
    mask = (torch.arange(T)[None, :] < lengths[:, None]).float()  # [B, T]
    old = -torch.rand(B, T, generator=gen) * 3
    return {
        "logp": (old + 0.3 * torch.randn(B, T, generator=gen)).clamp(max=0).requires_grad_(),
        "old_logp": old,
        "advantages": torch.randn(B, generator=gen),
        "response_mask": mask,
        "ref_logp": old + 0.1 * torch.randn(B, T, generator=gen),
        "entropy": torch.rand(B, T, generator=gen).requires_grad_(),
    }


def call(name: str, data: dict, rows: torch.Tensor, width: int, denominators) -> tuple[torch.Tensor, dict]:
    args = {key: value[rows][:, :width] if value.dim() == 2 else value[rows] for key, value in data.items()}
    extra = {} if name not in TAKES_REGULARISERS else {"ref_logp": args["ref_logp"], "entropy": args["entropy"]}
    return LOSSES[name](
        args["logp"], args["old_logp"], args["advantages"], args["response_mask"], denominators=denominators, **extra
    )


def whole_and_split(name: str, splits: list[list[int]], trim: bool):
    data = batch()
    whole_loss, whole_metrics = call(name, data, torch.arange(B), T, None)
    whole_loss.backward()
    want = tuple(None if t.grad is None else t.grad.clone() for t in (data["logp"], data["entropy"]))
    data["logp"].grad = data["entropy"].grad = None

    shared = LossDenominators.of(data["response_mask"])
    total, metrics = 0.0, {}
    for part in splits:
        rows = torch.tensor(part)
        width = max(int(data["response_mask"][rows].sum(dim=1).max()), 1) if trim else T
        loss, part_metrics = call(name, data, rows, width, shared)
        loss.backward()
        total = total + loss.detach()
        for key, value in part_metrics.items():
            metrics[key] = metrics.get(key, 0.0) + value
    got = (data["logp"].grad, data["entropy"].grad)
    return (whole_loss.detach(), whole_metrics, want), (total, metrics, got)


SPLITS = {"singles": [[i] for i in range(B)], "uneven": [[3, 0, 5], [6], [1, 2, 4]], "all": [list(range(B))]}


@pytest.mark.parametrize("trim", [False, True], ids=["full_width", "own_width"])
@pytest.mark.parametrize("split", sorted(SPLITS))
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_micro_batch_parts_add_up_to_the_whole(name, split, trim):
    (loss, metrics, grads), (total, parts, got) = whole_and_split(name, SPLITS[split], trim)
    assert float(total) == pytest.approx(float(loss), rel=1e-6, abs=1e-7)
    assert parts.keys() == metrics.keys()
    for key, value in metrics.items():
        assert parts[key] == pytest.approx(value, rel=1e-6, abs=1e-7), key
    assert grads[0] is not None and got[0] is not None
    for want, have in zip(grads, got):
        assert (want is None) == (have is None)
        if want is not None:
            torch.testing.assert_close(have, want, rtol=1e-6, atol=1e-8)


def test_own_denominators_are_the_default_and_differ_when_split():
    data = batch()
    rows = torch.tensor([0, 2])
    default, _ = call("degrpo_batch_token", data, rows, T, None)
    explicit, _ = call("degrpo_batch_token", data, rows, T, LossDenominators.of(data["response_mask"][rows]))
    assert float(default) == float(explicit)
    shared, _ = call("degrpo_batch_token", data, rows, T, LossDenominators.of(data["response_mask"]))
    assert float(shared) != pytest.approx(float(default))


def test_counts_of_a_mask():
    mask = torch.tensor([[1, 1, 0], [0, 0, 0], [1, 0, 0], [0, 1, 1]])
    d = LossDenominators.of(mask)
    assert (d.tokens, d.sequences, d.ctrl_tokens, d.resp_tokens, d.width) == (5.0, 3.0, 2.0, 3.0, 3)
    assert float(d.divide(torch.tensor(10.0), "tokens")) == 2.0
    assert float(LossDenominators.of(torch.zeros(2, 4)).divide(torch.tensor(3.0), "sequences")) == 3.0
    with pytest.raises(ValueError, match="denominators must be a LossDenominators"):
        grpo_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2), torch.ones(2, 3), denominators=(1, 2))

"""The policy update of one RL step: mini-batches over a graded rollout batch.

`score_batch` recomputes log-probs under a model without gradients (the old policy right
after the rollout, or the frozen reference), at the rollout temperature. `rl_update` splits
the batch into `rl.mini_batches` parts that keep whole groups together and takes one
optimizer step per part, accumulating gradients over micro-batches of `rl.micro_batch_size`
sequences; the loss is the shared `megathink.algorithms` function for `algorithm.name`
(AdaptThink's gets each row's opener probability and forced length from the batch), or, for
GRPO and DeGRPO with `loss_impl='fused'` (`kernels.policy_loss`), `megathink.kernels.policy_loss`:
the same loss and metrics in one autograd node, gradients equal to rounding. AdaptThink always
uses its reference loss.

On-policy shortcut: with one mini-batch per rollout step the policy that sampled the batch is
the policy being updated, so `old_logp=None` takes the old log-probs from the update's own
forward pass (detached) instead of a separate scoring pass, which saves one forward over the
batch per step; the rollout-vs-trainer gap is then measured on that same pass.

Departure: each micro-batch's loss is normalised inside the loss function and weighted by
its share of the mini-batch's sequences (as verl does), so with several micro-batches the
token-mean denominators are per micro-batch rather than per mini-batch.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from typing import Callable, Optional

import torch

from megathink.algorithms import adaptthink_loss, degrpo_loss, grpo_loss
from megathink.config.algorithm import AlgorithmConfig
from megathink.config.kernels import POLICY_LOSS_IMPLS
from megathink.config.rl import RLConfig
from megathink.kernels.policy_loss import policy_loss
from megathink.models.micro_batches import Scored, run_micro_batches
from megathink.models.protocol import PolicyBackend
from megathink.trainer.optim import clip_backend_gradients
from megathink.trainer.rl_batch import RLBatch, split_by_groups

LossFn = Callable[..., tuple[torch.Tensor, dict[str, float]]]


def policy_loss_fn(cfg: AlgorithmConfig, impl: str = "reference") -> LossFn:
    """The configured loss with its coefficients bound:
    f(logp, old_logp, adv, mask, *, ref_logp, entropy, forced, opener_prob) -> (loss, metrics).

    impl ('reference' | 'fused', `kernels.policy_loss`) picks GRPO's and DeGRPO's loss
    function; AdaptThink has only the reference one.
    """
    if impl not in POLICY_LOSS_IMPLS:
        raise ValueError(f"policy_loss_fn: impl = {impl!r} is invalid: must be one of " + ", ".join(map(repr, POLICY_LOSS_IMPLS)))
    common = dict(clip_eps=cfg.clip_eps, kl_coef=cfg.kl_coef, kl_estimator=cfg.kl_estimator, entropy_coef=cfg.entropy_coef)
    if cfg.name == "degrpo":
        degrpo = dict(alpha=cfg.alpha, response_norm=cfg.response_norm, **common)
        if impl == "fused":
            return _ignoring_openers(functools.partial(policy_loss, algorithm="degrpo", impl="fused", **degrpo))
        return _ignoring_openers(functools.partial(degrpo_loss, **degrpo))
    if cfg.name == "grpo":
        if impl == "fused":
            return _ignoring_openers(functools.partial(policy_loss, algorithm="grpo", agg=cfg.agg, impl="fused", **common))
        return _ignoring_openers(functools.partial(grpo_loss, agg=cfg.agg, **common))
    if cfg.name == "adaptthink":
        return functools.partial(_adaptthink, cfg)
    raise ValueError(f"algorithm.name = {cfg.name!r} has no RL update here; use 'degrpo', 'grpo' or 'adaptthink'.")


def _ignoring_openers(loss: LossFn) -> LossFn:
    def bound(logp, old_logp, advantages, mask, *, ref_logp=None, entropy=None, forced=None, opener_prob=None):
        return loss(logp, old_logp, advantages, mask, ref_logp=ref_logp, entropy=entropy)

    return bound


def _adaptthink(
    cfg: AlgorithmConfig,
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    ref_logp: Optional[torch.Tensor] = None,
    entropy: Optional[torch.Tensor] = None,
    forced: Optional[torch.Tensor] = None,
    opener_prob: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """AdaptThink's loss; with importance sampling, the forced opener's proposal probability is
    `opener_prob` [b] for its first token and 1 (log 0) for the rest of a multi-token opener."""
    if not cfg.importance_sampling or opener_prob is None:
        return adaptthink_loss(logp, old_logp, advantages, mask, first_token_is_prob=None, clip_eps=cfg.clip_eps, form=cfg.form)
    if forced is not None:
        columns = torch.arange(old_logp.shape[1], device=old_logp.device)[None, :]  # [1, T]
        opener_tail = (columns >= 1) & (columns < forced.to(old_logp.device)[:, None])  # [b, T]
        old_logp = old_logp.masked_fill(opener_tail, 0.0)
    return adaptthink_loss(
        logp, old_logp, advantages, mask, first_token_is_prob=opener_prob, clip_eps=cfg.clip_eps, form=cfg.form
    )


@torch.no_grad()
def score_batch(
    model_backend: PolicyBackend, batch: RLBatch, *, temperature: float, micro_batch_size: int
) -> torch.Tensor:
    """Response-aligned log-probs [B, T] of the batch under `model_backend`, no gradients."""

    def keep(mb: Scored, logp: torch.Tensor, _entropy: object) -> tuple[torch.Tensor, dict]:
        return logp.sum() * 0.0, {"logp": logp[:, batch.prompt_len :].detach().float().cpu()}

    scored = [
        Scored(batch.input_ids[rows], batch.attention_mask[rows])
        for rows in torch.arange(batch.size).split(micro_batch_size)
    ]
    parts = [r["logp"] for r in run_micro_batches(model_backend, scored, keep, temperature=temperature, forward_only=True)]
    return torch.cat(parts) * batch.response_mask


def rl_update(
    backend: PolicyBackend,
    batch: RLBatch,
    old_logp: Optional[torch.Tensor],
    ref_logp: Optional[torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    *,
    algorithm: AlgorithmConfig,
    rl: RLConfig,
    temperature: float,
    loss_impl: str = "reference",
) -> dict[str, float]:
    """Take `rl.mini_batches` optimizer steps over `batch`; returns metrics averaged over them.

    old_logp, ref_logp: [B, T] response-aligned, from `score_batch`; old_logp None (only with
    one mini-batch) uses the update's own detached log-probs and adds `logprob_diff`, the mean
    |trainer - rollout| log-prob gap over response tokens. loss_impl: `kernels.policy_loss`
    ('reference' | 'fused'; see `policy_loss_fn`).
    """
    if old_logp is None and rl.mini_batches > 1:
        raise ValueError("rl_update: old_logp=None needs rl.mini_batches == 1 (the on-policy case).")
    loss_fn = policy_loss_fn(algorithm, loss_impl)
    want_entropy = algorithm.entropy_coef > 0
    totals: dict[str, float] = defaultdict(float)
    gap, gap_tokens = 0.0, 0.0
    steps = 0
    backend.train(True)
    for rows in split_by_groups(batch, rl.mini_batches):
        optimizer.zero_grad(set_to_none=True)
        mini = batch.select(rows)
        mini_old = None if old_logp is None else old_logp[rows]
        mini_ref = None if ref_logp is None else ref_logp[rows]

        def micro_loss(mb: Scored, logp: torch.Tensor, entropy: Optional[torch.Tensor]) -> tuple[torch.Tensor, dict]:
            micro, weight = mb.payload["rows"], mb.payload["weight"]
            device = logp.device
            resp_logp = logp[:, mini.prompt_len :]  # [b, T]
            mask = mini.response_mask[micro].to(device)
            extra: dict[str, float] = {}
            if mini_old is None:
                old = resp_logp.detach()
                extra["gap"] = float(((old - mini.rollout_logp[micro].to(device)).abs() * mask).sum())
                extra["gap_tokens"] = float(mask.sum())
            else:
                old = mini_old[micro].to(device)
            loss, metrics = loss_fn(
                resp_logp,
                old,
                mini.advantages[micro].to(device),
                mask,
                ref_logp=None if mini_ref is None else mini_ref[micro].to(device),
                entropy=None if entropy is None else entropy[:, mini.prompt_len :],
                forced=mini.forced[micro].to(device),
                opener_prob=mini.opener_prob[micro].to(device),
            )
            return loss * weight, {"metrics": metrics, "weight": weight, **extra}

        scored = [
            Scored(mini.input_ids[micro], mini.attention_mask[micro], {"rows": micro, "weight": len(micro) / mini.size})
            for micro in torch.arange(mini.size).split(rl.micro_batch_size)
        ]
        for result in run_micro_batches(backend, scored, micro_loss, temperature=temperature, entropy=want_entropy):
            for key, value in result["metrics"].items():
                totals[key] += value * result["weight"]
            gap += result.get("gap", 0.0)
            gap_tokens += result.get("gap_tokens", 0.0)
        totals["grad_norm"] += clip_backend_gradients(backend, rl.optimizer.grad_clip)
        totals["lr"] += optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
        steps += 1
    out = {key: value / max(steps, 1) for key, value in totals.items()}
    if old_logp is None:
        out["logprob_diff"] = gap / max(gap_tokens, 1.0)
    return out

"""The policy update of one RL step: mini-batches over a graded rollout batch.

`score_batch` recomputes log-probs under a model without gradients (the old policy right
after the rollout, or the frozen reference), at the rollout temperature. `rl_update` splits
the batch into `rl.mini_batches` parts that keep whole groups together and takes one
optimizer step per part, accumulating gradients over micro-batches (`rl.micro_batch_size`
sequences each, or `rl.max_tokens_per_micro_batch` tokens each, balanced over the
data-parallel replicas: `data.micro_batching`), each cut to its own longest prompt and
response (`RLBatch.window`); the loss is the method's (`RLMethod.loss_fn` of `algorithm.name`,
a `megathink.algorithms` function; each row's opener probability and forced length come with
the batch), or, for GRPO and DeGRPO with `loss_impl='fused'` (`kernels.policy_loss`),
`megathink.kernels.policy_loss`: the same loss and metrics in one autograd node, gradients equal
to rounding.

On-policy shortcut: with one mini-batch per rollout step the policy that sampled the batch is
the policy being updated, so `old_logp=None` takes the old log-probs from the update's own
forward pass (detached) instead of a separate scoring pass, which saves one forward over the
batch per step; the rollout-vs-trainer gap is then measured on that same pass.

Normalisation (`rl.loss_normalization`): with 'mini_batch' (the default) every micro-batch's
loss divides by the counts of the whole mini-batch (`LossDenominators`: its tokens, sequences,
control and response tokens, width), so the micro-batch losses and metrics are parts that add
up to the mini-batch's: the optimizer step does not depend on the micro-batch size, the token
budget or the data-parallel split. 'micro_batch' reproduces the authors' (verl's) update
exactly: each micro-batch normalised by its own counts and weighted by its share of the
mini-batch's sequences (the width stays the mini-batch's, as when every micro-batch kept the
batch's padding). The update logs `padding_waste`, the share of computed token positions that
were padding.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Optional

import torch

from megathink.algorithms import LossDenominators
from megathink.config.algorithm import AlgorithmConfig
from megathink.config.rl import RLConfig
from megathink.data.micro_batching import plan_micro_batches
from megathink.methods.base import LossFn, method_class
from megathink.models.micro_batches import Scored, run_micro_batches
from megathink.models.protocol import PolicyBackend
from megathink.trainer.optim import clip_backend_gradients
from megathink.trainer.rl_batch import MicroWindow, RLBatch, split_by_groups

def policy_loss_fn(cfg: AlgorithmConfig, impl: str = "reference") -> LossFn:
    """The loss of method `cfg.name` with its coefficients bound (`RLMethod.loss_fn`):
    f(logp, old_logp, adv, mask, *, ref_logp, entropy, forced, opener_prob, control_advantages, denominators)
    -> (loss, metrics).
    impl: `kernels.policy_loss` ('reference' | 'fused'; the fused kernel exists for GRPO and DeGRPO)."""
    return method_class(cfg.name).loss_fn(cfg, impl)


def plan_windows(backend: PolicyBackend, batch: RLBatch, rl: RLConfig) -> list[MicroWindow]:
    """The micro-batches of `batch` for `backend`: rows by `rl.micro_batch_size` or by the token
    budget `rl.max_tokens_per_micro_batch` (balanced over the backend's data-parallel replicas),
    each cut to its own width."""
    plan = plan_micro_batches(
        batch.row_lengths(), micro_batch_size=rl.micro_batch_size, max_tokens=rl.max_tokens_per_micro_batch,
        dp=getattr(backend, "data_parallel_size", 1), packed=getattr(backend, "packs_sequences", False),
    )
    return [batch.window(torch.tensor(rows, dtype=torch.long)) for rows in plan]


@torch.no_grad()
def score_batch(model_backend: PolicyBackend, batch: RLBatch, *, temperature: float, rl: RLConfig) -> torch.Tensor:
    """Response-aligned log-probs [B, T] of the batch under `model_backend`, no gradients."""
    windows = plan_windows(model_backend, batch, rl)

    def keep(mb: Scored, logp: torch.Tensor, _entropy: object) -> tuple[torch.Tensor, dict]:
        return logp.sum() * 0.0, {"logp": logp[:, mb.payload["window"].prompt_cols :].detach().float().cpu()}

    scored = [Scored(w.input_ids, w.attention_mask, {"window": w}) for w in windows]
    out = torch.zeros_like(batch.response_mask)  # [B, T]
    results = run_micro_batches(model_backend, scored, keep, temperature=temperature, forward_only=True)
    for window, result in zip(windows, results):
        out[window.rows, : window.resp_cols] = result["logp"]
    return out * batch.response_mask


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
    per_mini_batch = rl.loss_normalization == "micro_batch"
    totals: dict[str, float] = defaultdict(float)
    gap, gap_tokens = 0.0, 0.0
    real_tokens, padded_tokens = 0, 0
    steps = 0
    backend.train(True)
    for rows in split_by_groups(batch, rl.mini_batches):
        optimizer.zero_grad(set_to_none=True)
        mini = batch.select(rows)
        mini_old = None if old_logp is None else old_logp[rows]
        mini_ref = None if ref_logp is None else ref_logp[rows]
        shared = LossDenominators.of(mini.response_mask)  # the whole mini-batch's counts

        def micro_loss(mb: Scored, logp: torch.Tensor, entropy: Optional[torch.Tensor]) -> tuple[torch.Tensor, dict]:
            window: MicroWindow = mb.payload["window"]
            micro, r, device = window.rows, window.resp_cols, logp.device
            resp_logp = logp[:, window.prompt_cols :]  # [b, r]
            mask = mini.response_mask[micro, :r].to(device)
            if per_mini_batch:  # the authors': own counts, weighted by the share of sequences
                denominators = dataclasses.replace(LossDenominators.of(mask), width=shared.width)
                weight = len(micro) / mini.size
            else:
                denominators, weight = shared, 1.0
            extra: dict[str, float] = {}
            if mini_old is None:
                old = resp_logp.detach()
                extra["gap"] = float(((old - mini.rollout_logp[micro, :r].to(device)).abs() * mask).sum())
                extra["gap_tokens"] = float(mask.sum())
            else:
                old = mini_old[micro, :r].to(device)
            loss, metrics = loss_fn(
                resp_logp,
                old,
                mini.advantages[micro].to(device),
                mask,
                ref_logp=None if mini_ref is None else mini_ref[micro, :r].to(device),
                entropy=None if entropy is None else entropy[:, window.prompt_cols :],
                forced=mini.forced[micro].to(device),
                opener_prob=mini.opener_prob[micro].to(device),
                control_advantages=None if mini.control_advantages is None else mini.control_advantages[micro].to(device),
                denominators=denominators,
            )
            return loss * weight, {"metrics": metrics, "weight": weight, **extra}

        windows = plan_windows(backend, mini, rl)
        scored = [Scored(w.input_ids, w.attention_mask, {"window": w}) for w in windows]
        real_tokens += sum(int(w.attention_mask.sum()) for w in windows)
        padded_tokens += backend.padded_tokens(scored) if hasattr(backend, "padded_tokens") else 0
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
    if padded_tokens:
        out["padding_waste"] = 1.0 - real_tokens / padded_tokens
    return out

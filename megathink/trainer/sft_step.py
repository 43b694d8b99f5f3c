"""One Thinkless stage-1 optimizer step: prompt-masked next-token cross-entropy, per-token mean.

Normalisation (ALGORITHMS.md section 1, "per-token mean"): the loss of an optimizer step is
the mean of -log p over *all* target tokens of all its micro-batches,

    loss = sum_{micro-batches m} sum_{b,t} -logp[m,b,t] * loss_mask[m,b,t]  /  N,
    N    = sum_{m,b,t} loss_mask[m,b,t],

so every target token weighs the same no matter how the tokens fall into micro-batches
(the loss equals that of one big batch). The passes go through `models.run_micro_batches`,
so the same step trains the HF backend and the megatron backend (pipeline schedule). All micro-batches of the step are drawn first so
N is known before the first backward; each micro-batch then backpropagates its own sum / N.

With a token budget (`sft.max_tokens_per_micro_batch`) the step's rows are regrouped into
micro-batches by real length (`data.micro_batching`: runs of similar length for the padded HF
backend, Karmarkar-Karp-balanced packs for megathink's packed megatron rows, balanced over the
data-parallel replicas), each cut to its own longest row; the loss is unchanged (the step's N).
`padding_waste` is the share of the computed token positions that were padding.

The log-probs come from `PolicyBackend.logprobs`, i.e. `megathink.kernels.token_logprobs`,
rather than `F.cross_entropy`: it is the same path the RL losses use (one place to swap in
the fused Triton kernel later), it never materialises a full fp32 log-softmax, and its
per-token output splits the loss by mode for free. The mode of a row is the batch's `modes`
entry (set by `collate_sft`), else read from its first target token (the control token
`<short>` or `<think>`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from megathink.data.micro_batching import plan_micro_batches
from megathink.data.types import ControlTokenIds, SFTBatch
from megathink.models.micro_batches import Scored, run_micro_batches
from megathink.models.protocol import PolicyBackend
from megathink.trainer.optim import clip_backend_gradients


@dataclass
class SFTStepStats:
    """What one optimizer step measured (losses are per-token means; NaN when a mode is absent)."""

    loss: float
    loss_short: float
    loss_think: float
    grad_norm: float
    lr: float
    target_tokens: int
    tokens: int
    padding_waste: float = 0.0


def sft_step(
    backend: PolicyBackend,
    micro_batches: Sequence[SFTBatch],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    *,
    grad_clip: float,
    control: ControlTokenIds,
    max_tokens: int = 0,
) -> SFTStepStats:
    """Accumulate gradients over `micro_batches` (regrouped by `max_tokens` when > 0), clip, step
    the optimizer and the schedule."""
    if max_tokens > 0:
        micro_batches = regroup_by_tokens(
            micro_batches, max_tokens, dp=getattr(backend, "data_parallel_size", 1),
            packed=getattr(backend, "packs_sequences", False),
        )
    total_targets = sum(int(b.loss_mask.sum().item()) for b in micro_batches)
    if total_targets == 0:
        raise ValueError("an SFT step has no target tokens: every example's answer was masked out.")
    backend.train(True)
    optimizer.zero_grad(set_to_none=True)

    def loss_fn(mb: Scored, logp: torch.Tensor, _entropy: object) -> tuple[torch.Tensor, dict]:
        mask = mb.payload["loss_mask"].to(logp.device, torch.float32)  # [B, T]
        token_nll = -logp * mask  # [B, T]
        rows = token_nll.detach().sum(dim=1).cpu()  # [B]
        return token_nll.sum() / total_targets, {"row_nll": rows, "row_targets": mask.sum(dim=1).cpu()}

    scored = [Scored(b.input_ids, b.attention_mask, {"loss_mask": b.loss_mask}) for b in micro_batches]
    padded = backend.padded_tokens(scored) if hasattr(backend, "padded_tokens") else 0
    results = run_micro_batches(backend, scored, loss_fn)
    loss_sum = 0.0
    mode_sums = {"short": [0.0, 0.0], "think": [0.0, 0.0]}  # mode -> [sum of -logp, target tokens]
    for batch, result in zip(micro_batches, results):
        row_nll, row_targets = result["row_nll"], result["row_targets"]
        loss_sum += float(row_nll.sum())
        for mode, rows in row_modes(batch, control).items():
            mode_sums[mode][0] += float(row_nll[rows].sum())
            mode_sums[mode][1] += float(row_targets[rows].sum())
    tokens = sum(int(b.attention_mask.sum().item()) for b in micro_batches)
    grad_norm = clip_backend_gradients(backend, grad_clip)
    lr = float(optimizer.param_groups[0]["lr"])
    optimizer.step()
    scheduler.step()
    return SFTStepStats(
        loss=loss_sum / total_targets,
        loss_short=_ratio(*mode_sums["short"]),
        loss_think=_ratio(*mode_sums["think"]),
        grad_norm=grad_norm,
        lr=lr,
        target_tokens=total_targets,
        tokens=tokens,
        padding_waste=1.0 - tokens / padded if padded else 0.0,
    )


def regroup_by_tokens(batches: Sequence[SFTBatch], max_tokens: int, *, dp: int = 1, packed: bool = False) -> list[SFTBatch]:
    """The rows of `batches` (right-padded) regrouped into micro-batches of at most `max_tokens`
    (`data.micro_batching.plan_micro_batches`), each cut to its own longest row."""
    width = max(int(b.input_ids.shape[1]) for b in batches)

    def widen(t: torch.Tensor, value: int) -> torch.Tensor:  # [b, w] -> [b, width]
        return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)

    ids = torch.cat([widen(b.input_ids, 0) for b in batches])  # [N, width]
    attention = torch.cat([widen(b.attention_mask, 0) for b in batches])
    loss_mask = torch.cat([widen(b.loss_mask, 0) for b in batches])
    modes = [mode for b in batches for mode in (b.modes or ("",) * b.input_ids.shape[0])]
    lengths = attention.sum(dim=1).tolist()
    plan = plan_micro_batches(lengths, micro_batch_size=1, max_tokens=max_tokens, dp=dp, packed=packed)
    out = []
    for rows in plan:
        index = torch.tensor(rows, dtype=torch.long)
        cut = max(int(max(lengths[r] for r in rows)), 1)
        row_modes = tuple(modes[r] for r in rows)
        out.append(
            SFTBatch(
                input_ids=ids[index, :cut], attention_mask=attention[index, :cut], loss_mask=loss_mask[index, :cut],
                modes=row_modes if all(row_modes) else (),
            )
        )
    return out


def row_modes(batch: SFTBatch, control: ControlTokenIds) -> dict[str, torch.Tensor]:
    """{"short": bool [B], "think": bool [B]}: rows of that answer form (`batch.modes`), or,
    when the batch does not carry them, rows whose first target token is that control token."""
    if batch.modes:
        return {mode: torch.tensor([m == mode for m in batch.modes], dtype=torch.bool) for mode in ("short", "think")}
    mask = batch.loss_mask > 0  # [B, T]
    first = mask.float().argmax(dim=1)  # [B] index of the first target token
    first_ids = batch.input_ids.gather(1, first[:, None]).squeeze(1)  # [B]
    has_target = mask.any(dim=1)  # [B]
    return {
        "short": has_target & (first_ids == control.short),
        "think": has_target & (first_ids == control.think),
    }


def _ratio(total: float, count: float) -> float:
    return total / count if count else math.nan

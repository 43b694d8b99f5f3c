"""`LossDenominators`: the counts a policy loss divides its means by, and whose they are.

Every batch-level mean of the RL losses (a token mean, a mean over sequences, DeGRPO's
control-token and response-token means, Dr. GRPO's constant width) is a masked sum divided by
one of these counts. Where the counts come from decides whether the update depends on how the
batch is cut:

* `LossDenominators.of(response_mask)` counts the tensors at hand. Called on one micro-batch,
  this is the authors' (and verl's) behaviour: each micro-batch is a mean of its own, and the
  trainer weights it by its share of the sequences (`rl.loss_normalization='micro_batch'`).
  The loss functions use it when they are given no denominators, so a single call on a whole
  batch is unchanged.
* Counted once on the whole mini-batch (every micro-batch, every data-parallel replica) and
  passed to each micro-batch's loss, the micro-batch losses are *parts* of the mini-batch's
  loss: their plain sum is exactly the loss of one pass over the whole mini-batch, whatever
  the micro-batch size, token budget or parallel layout (`rl.loss_normalization='mini_batch'`,
  the default). The metrics the losses report are parts in the same way and add up.

Per-row means (DeGRPO's "sequence" form, GRPO's "seq_mean_token_mean", AdaptThink's
length-normalised ratio) stay within the row: a row is never split over micro-batches.

Counts are clamped to >= 1 where they divide, so an empty selection gives 0, never nan.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from megathink.algorithms.masked import as_bool_mask


@dataclass(frozen=True)
class LossDenominators:
    """Counts over a response-aligned mask `[B, T]` (column 0 the first generated token)."""

    tokens: float
    """Masked tokens, every column (GRPO's token mean, KL and entropy, clip fraction)."""

    sequences: float
    """Rows with at least one masked token (G, n_seq; AdaptThink's mean over sequences)."""

    ctrl_tokens: float
    """Masked tokens in column 0 (DeGRPO's control-token mean)."""

    resp_tokens: float
    """Masked tokens in columns >= 1 (DeGRPO's 'batch_token' response mean)."""

    width: int
    """Response columns of the padded batch: Dr. GRPO's constant T ('seq_mean_token_sum_norm')."""

    @classmethod
    def of(cls, response_mask: torch.Tensor) -> "LossDenominators":
        """The counts of `response_mask` [B, T] (one device-to-host copy)."""
        mask = as_bool_mask(response_mask)
        if mask.dim() != 2:
            raise ValueError(f"LossDenominators.of: response_mask must be [B, T]; got shape {tuple(mask.shape)}.")
        counts = torch.stack(
            [mask.sum(), mask.any(dim=1).sum(), mask[:, :1].sum(), mask[:, 1:].sum()]
        ).tolist()
        return cls(
            tokens=float(counts[0]),
            sequences=float(counts[1]),
            ctrl_tokens=float(counts[2]),
            resp_tokens=float(counts[3]),
            width=int(mask.shape[1]),
        )

    def divide(self, total: torch.Tensor, count: str) -> torch.Tensor:
        """`total / max(self.<count>, 1)`: a mean over the counted selection."""
        return total / max(float(getattr(self, count)), 1.0)


__all__ = ["LossDenominators"]

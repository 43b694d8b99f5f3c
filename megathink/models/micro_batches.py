"""One forward-backward pass over micro-batches, for any backend: the seam between losses and models.

The trainers (SFT step, RL update) never call `.backward()` themselves: they hand a list of
`Scored` micro-batches and a loss function to `run_micro_batches`. The loss function gets the
per-token log-probs (and entropies) the backend computed, aligned with the micro-batch's
input columns (column t scores token t; 0 where nothing is scored), and returns
(loss, metrics). The HF backend runs the micro-batches one after another and calls backward on
each loss; a backend with its own schedule (megatron: pipeline 1F1B, vocab-parallel log-probs)
provides `run_micro_batches` itself and runs the same loss function on its last stage. Either
way the loss math is the shared plain-tensor code in `megathink.algorithms`.

`forward_only=True` computes the losses without gradients (scoring passes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import torch


@dataclass
class Scored:
    """A micro-batch to score: ids, mask, and whatever its loss needs (`payload`)."""

    input_ids: torch.Tensor  # [b, T] long
    attention_mask: torch.Tensor  # [b, T] long
    payload: dict[str, Any] = field(default_factory=dict)


MicroLoss = Callable[[Scored, torch.Tensor, Optional[torch.Tensor]], tuple[torch.Tensor, dict[str, Any]]]
"""(micro-batch, logp [b, T], entropy [b, T] or None) -> (loss to backpropagate, metrics)."""


def run_micro_batches(
    backend: Any,
    micro_batches: Sequence[Scored],
    loss_fn: MicroLoss,
    *,
    temperature: float = 1.0,
    entropy: bool = False,
    forward_only: bool = False,
) -> list[dict[str, Any]]:
    """Forward (and backward) every micro-batch; the metrics each loss returned, in order."""
    own = getattr(backend, "run_micro_batches", None)
    if own is not None:
        return own(micro_batches, loss_fn, temperature=temperature, entropy=entropy, forward_only=forward_only)
    out = []
    for mb in micro_batches:
        with torch.no_grad() if forward_only else torch.enable_grad():
            logp, ent = backend.logprobs_and_entropy(
                mb.input_ids, mb.attention_mask, temperature=temperature, entropy=entropy
            )
            loss, metrics = loss_fn(mb, logp, ent)
        if not forward_only:
            loss.backward()
        out.append(metrics)
    return out

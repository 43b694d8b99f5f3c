"""`PolicyBackend`: what the training loops need from a policy model, and nothing more.

The SFT and RL loops only ever call these members, so a single-process HF model and a
Megatron-core model (tensor/pipeline parallel) are interchangeable behind `launch`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class PolicyBackend(Protocol):
    """A trainable causal LM.

    `logprobs` is the one forward the losses use: column t of the result is
    log p(input_ids[:, t] | input_ids[:, :t]) at the given sampling temperature, column 0 is 0
    (nothing predicts the first token), and positions whose attention_mask is 0 are 0, as is
    the first real token of a left-padded row.
    """

    model: torch.nn.Module
    device: torch.device

    def logprobs(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, temperature: float = 1.0
    ) -> torch.Tensor:
        """input_ids, attention_mask: [B, T] -> float32 [B, T] (differentiable)."""
        ...

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        """The trainable parameters (what the optimizer steps)."""
        ...

    def named_parameters(self) -> Iterator[tuple[str, torch.nn.Parameter]]:
        """Trainable parameters with their names (weight-decay grouping needs the names)."""
        ...

    def train(self, mode: bool = True) -> None:
        """Switch dropout etc. on (training) or off (evaluation)."""
        ...

    def save_hf(self, directory: Path, tokenizer: Any) -> Path:
        """Write weights, config and tokenizer as a loadable HF directory; returns it."""
        ...

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Model weights for a training checkpoint."""
        ...

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore weights written by `state_dict`."""
        ...

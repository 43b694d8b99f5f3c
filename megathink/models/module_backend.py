"""`ModuleBackend`: what every backend around one `torch.nn.Module` shares (its trainable parameters).

`HFBackend` (a transformers model) and `MegatronBackend` (this rank's GPTModel shard) both
derive from it; the parameters they yield are the ones the optimizer of this process updates.
`data_parallel_size` (1 here) is how many replicas share a step's micro-batches,
`packs_sequences` whether a micro-batch's rows are packed end to end, and `padded_tokens` how
many token positions a list of micro-batches costs the backend (each
micro-batch padded to its own width here; the megatron backend counts its own layout), which
the trainers log as padding waste.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch


class ModuleBackend:
    data_parallel_size: int = 1
    """Replicas the micro-batches of a step are spread over (micro-batch i on replica i % size)."""

    packs_sequences: bool = False
    """Whether a micro-batch's rows run end to end (cost = their summed lengths) rather than
    padded to its longest row (cost = rows x longest): what token budgets are counted in."""

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.model = model
        self.device = device

    def padded_tokens(self, micro_batches: Sequence[Any]) -> int:
        """Token positions the forward passes of `micro_batches` (each [b, T]) compute: b * T each."""
        return sum(int(mb.input_ids.numel()) for mb in micro_batches)

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        return (p for p in self.model.parameters() if p.requires_grad)

    def named_parameters(self) -> Iterator[tuple[str, torch.nn.Parameter]]:
        return ((n, p) for n, p in self.model.named_parameters() if p.requires_grad)

    def train(self, mode: bool = True) -> None:
        self.model.train(mode)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

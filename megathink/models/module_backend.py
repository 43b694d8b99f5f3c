"""`ModuleBackend`: what every backend around one `torch.nn.Module` shares (its trainable parameters).

`HFBackend` (a transformers model) and `MegatronBackend` (this rank's GPTModel shard) both
derive from it; the parameters they yield are the ones the optimizer of this process updates.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


class ModuleBackend:
    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.model = model
        self.device = device

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        return (p for p in self.model.parameters() if p.requires_grad)

    def named_parameters(self) -> Iterator[tuple[str, torch.nn.Parameter]]:
        return ((n, p) for n, p in self.model.named_parameters() if p.requires_grad)

    def train(self, mode: bool = True) -> None:
        self.model.train(mode)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

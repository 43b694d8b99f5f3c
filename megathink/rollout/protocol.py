"""`RolloutEngine`: what the RL loop needs from whatever samples responses.

The local engine (the HF model in this process), the SGLang engine and the client of the local
HTTP server all implement it, so `trainer` never knows which one it drives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, Union, runtime_checkable

import torch

from megathink.rollout.types import RolloutRequest, Sample, SamplingParams

if TYPE_CHECKING:
    from megathink.models.protocol import PolicyBackend

WeightSource = Union["PolicyBackend", Mapping[str, torch.Tensor]]
"""The trained policy (a backend) or its weights (a state dict) to sync an engine from."""


def hf_state_dict(source: WeightSource) -> Mapping[str, torch.Tensor]:
    """Full HF-named tensors of a weight source: a state dict as is; a sharded backend's
    `export_hf_state()` (collective: every rank of its job must call it); else `state_dict()`."""
    if isinstance(source, Mapping):
        return source
    export = getattr(source, "export_hf_state", None)
    return export() if export is not None else source.state_dict()


@runtime_checkable
class RolloutEngine(Protocol):
    """Samples responses from the current policy and reports which weights produced them."""

    @property
    def weight_version(self) -> int:
        """Version of the weights the engine samples from: 0 at start, +1 per `sync_weights`."""
        ...

    def generate(self, requests: Sequence[RolloutRequest], params: SamplingParams) -> list[Sample]:
        """`params.n` samples per request, grouped in request order (sample_index 0..n-1 each).

        Deterministic: the same requests and `params.seed` give the same samples.
        """
        ...

    def sync_weights(self, backend_or_state: WeightSource) -> int:
        """Make the engine sample from these weights (a backend or its state dict); returns the new weight version."""
        ...

    def drain_metrics(self) -> dict[str, float]:
        """Engine metrics since the last call (e.g. `rollout/tokens_per_s`), then reset; {} if none."""
        ...

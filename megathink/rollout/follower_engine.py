"""`FollowerEngine`: the rollout engine of every rank but 0 in a torchrun (megatron) job.

Rank 0 samples and grades, and the result reaches the other ranks by broadcast
(`trainer.ranks.on_main_then_broadcast`), so these ranks never generate. They still take part
in each weight sync: exporting a sharded model's full HF tensors is a collective over its
tensor- and pipeline-parallel groups, so `sync_weights` calls the exporter and drops its output.
"""

from __future__ import annotations

from collections.abc import Sequence

from megathink.rollout.protocol import WeightSource, hf_state_dict
from megathink.rollout.types import RolloutRequest, Sample, SamplingParams


class FollowerEngine:
    """Implements `RolloutEngine` for ranks that only follow rank 0's rollouts."""

    def __init__(self) -> None:
        self._version = 0

    @property
    def weight_version(self) -> int:
        return self._version

    def generate(self, requests: Sequence[RolloutRequest], params: SamplingParams) -> list[Sample]:
        raise RuntimeError(
            "FollowerEngine.generate was called on a rank other than 0: rollouts run on rank 0 and are "
            "broadcast (trainer.ranks.on_main_then_broadcast); this is a bug in the calling stage."
        )

    def sync_weights(self, backend_or_state: WeightSource) -> int:
        hf_state_dict(backend_or_state)  # the collective part of the export; rank 0 keeps the tensors
        self._version += 1
        return self._version

    def drain_metrics(self) -> dict[str, float]:
        return {}

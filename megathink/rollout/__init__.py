"""Rollouts: sample responses from the policy behind one protocol, `RolloutEngine`.

`types` holds the request/response records (shaped after SGLang's native `/generate` API),
`protocol` the engine protocol, `local_engine` the engine around the HF model in this process
(batched KV-cache decoding in `decode`, token choice in `sampling`, per-sequence random
streams in `rng`). An SGLang engine and an HTTP server implement the same protocol later.
"""

from megathink.rollout.local_engine import LocalEngine
from megathink.rollout.protocol import RolloutEngine, WeightSource
from megathink.rollout.types import FinishReason, RolloutRequest, Sample, SamplingParams

__all__ = ["FinishReason", "LocalEngine", "RolloutEngine", "RolloutRequest", "Sample", "SamplingParams", "WeightSource"]

"""Rollouts: sample responses from the policy behind one protocol, `RolloutEngine`.

`types` holds the request/response records (shaped after SGLang's native `/generate` API),
`protocol` the engine protocol, `local_engine` the engine around the HF model in this process
(batched KV-cache decoding in `decode`, token choice in `sampling`, per-sequence random
streams in `rng`).

`sglang_engine` is the engine over HTTP servers speaking SGLang's native API (its requests in
`sglang_payload`, servers in `engine_pool` / `server_launcher`, retries in `chunk_dispatch`,
transport in `http_client`, weight sync in `weight_sync_disk` / `weight_sync_nccl`); the server
side of `megathink serve` is `http_server` (routes), `server_requests` (request checks),
`served_model` (the model behind it) and `chat_completions` (the OpenAI route). docs/ROLLOUT.md
describes the whole. `engine_factory.build_rollout_engine` picks one by `rollout.engine`.
"""

from megathink.rollout.local_engine import LocalEngine
from megathink.rollout.protocol import RolloutEngine, WeightSource
from megathink.rollout.types import FinishReason, RolloutRequest, Sample, SamplingParams

__all__ = ["FinishReason", "LocalEngine", "RolloutEngine", "RolloutRequest", "Sample", "SamplingParams", "WeightSource"]

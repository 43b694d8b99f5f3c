"""`LocalEngine`: the `RolloutEngine` around the policy's own HF model, in this process.

Colocated: the engine reads the live `backend.model`, the very module the trainer updates, so
after an optimizer step it already samples from the new weights. `sync_weights(backend)` with
that same backend copies nothing and only bumps `weight_version` (so samples record which
policy produced them); another backend (an HF one, or a sharded Megatron one through its HF
exporter) or a state dict is loaded into the model (a copy).

`generate` expands each request into `params.n` sequences (request order, then sample index),
cuts them into batches of at most `batch_size`, and runs each through `decode_batch` under
`torch.inference_mode()` with the model in eval mode (its previous train/eval mode is restored
afterwards, also on error). The device is the backend's. Every sequence samples from its own
random stream (`megathink.rollout.rng`), so the samples do not depend on `batch_size`.
`generate_seeded` takes those per-sequence seeds from the caller instead (one sample per
request): `megathink serve` answers SGLang's per-input `sampling_seed` with it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import torch

from megathink.config.validation import check_int, fail
from megathink.rollout.decode import DecodedRow, decode_batch
from megathink.rollout.protocol import WeightSource, hf_state_dict
from megathink.rollout.rng import sequence_seed, uniform_streams
from megathink.rollout.types import RolloutRequest, Sample, SamplingParams

if TYPE_CHECKING:
    from megathink.models.protocol import PolicyBackend


class LocalEngine:
    """Batched KV-cache sampling from `backend.model` on `backend.device` (implements `RolloutEngine`).

    `backend.model` must be a transformers causal LM (`HFBackend`): the engine calls it with
    `attention_mask`, `position_ids`, `past_key_values` and `logits_to_keep`.
    """

    def __init__(self, backend: PolicyBackend, *, pad_id: int, batch_size: int = 256) -> None:
        check_int("LocalEngine.pad_id", pad_id, low=0)
        check_int("LocalEngine.batch_size", batch_size, low=1)
        self.backend = backend
        self.pad_id = pad_id
        self.batch_size = batch_size
        self._version = 0
        self._tokens = 0  # generated tokens and seconds since the last drain_metrics()
        self._seconds = 0.0

    @property
    def weight_version(self) -> int:
        return self._version

    def sync_weights(self, backend_or_state: WeightSource) -> int:
        """Same backend (colocated): no copy, version + 1. Other backend / state dict: load it, version + 1."""
        if isinstance(backend_or_state, Mapping) or getattr(backend_or_state, "model", None) is not self.backend.model:
            self.backend.load_state_dict(hf_state_dict(backend_or_state))
        self._version += 1
        return self._version

    def drain_metrics(self) -> dict[str, float]:
        """`rollout/tokens_per_s` and `rollout/generate_s` since the last call."""
        if self._seconds == 0.0:
            return {}
        out = {"rollout/tokens_per_s": self._tokens / self._seconds, "rollout/generate_s": self._seconds}
        self._tokens, self._seconds = 0, 0.0
        return out

    def generate(self, requests: Sequence[RolloutRequest], params: SamplingParams) -> list[Sample]:
        """`params.n` samples per request, grouped in request order."""
        self._check(requests, params)
        sequences = [(r, s) for r in range(len(requests)) for s in range(params.n)]
        seeds = [sequence_seed(params.seed, r, s) for r, s in sequences]
        decoded = self._run([requests[r] for r, _ in sequences], seeds, params)
        return [
            _to_sample(requests[r], s, row, self._version) for (r, s), row in zip(sequences, decoded)
        ]

    def generate_seeded(
        self, requests: Sequence[RolloutRequest], seeds: Sequence[int], params: SamplingParams
    ) -> list[Sample]:
        """One sample per request, request i drawn from the random stream seeded `seeds[i]`
        (`params.n` and `params.seed` are not used). `generate` is this with the seeds
        `sequence_seed(params.seed, r, s)`; the HTTP server uses it for SGLang's per-input seeds."""
        self._check(requests, params)
        if len(seeds) != len(requests):
            fail("LocalEngine.generate_seeded seeds", len(seeds), f"must hold one seed per request ({len(requests)})")
        for index, seed in enumerate(seeds):
            check_int(f"seeds[{index}]", seed, low=0)
        decoded = self._run(list(requests), list(seeds), params)
        return [_to_sample(req, 0, row, self._version) for req, row in zip(requests, decoded)]

    def _run(self, chosen: Sequence[RolloutRequest], seeds: Sequence[int], params: SamplingParams) -> list[DecodedRow]:
        """Decode sequence i (`chosen[i]`, stream `seeds[i]`) in batches of at most `batch_size`."""
        model = self.backend.model
        was_training = model.training
        model.eval()
        decoded: list[DecodedRow] = []
        started = time.perf_counter()
        try:
            with torch.inference_mode():
                for start in range(0, len(chosen), self.batch_size):
                    end = start + self.batch_size
                    decoded += self._decode(chosen[start:end], seeds[start:end], params)
        finally:
            model.train(was_training)
        self._seconds += time.perf_counter() - started
        self._tokens += sum(len(row.generated) for row in decoded)
        return decoded

    def _decode(
        self, chosen: Sequence[RolloutRequest], seeds: Sequence[int], params: SamplingParams
    ) -> list[DecodedRow]:
        caps = [req.cap(params) for req in chosen]
        device = self.backend.device
        return decode_batch(
            self.backend.model,
            device,
            contexts=[list(req.prompt_ids) + list(req.forced_prefix) for req in chosen],
            forced=[len(req.forced_prefix) for req in chosen],
            caps=caps,
            uniforms=uniform_streams(seeds, caps, device),  # [B, max(caps)]
            params=params,
            pad_id=self.pad_id,
        )

    def _check(self, requests: Sequence[RolloutRequest], params: SamplingParams) -> None:
        if not isinstance(params, SamplingParams):
            fail("LocalEngine.generate params", params, "must be a SamplingParams")
        vocab = self.backend.model.get_input_embeddings().num_embeddings
        for index, req in enumerate(requests):
            if not isinstance(req, RolloutRequest):
                fail(f"requests[{index}]", req, "must be a RolloutRequest")
            for name in ("prompt_ids", "forced_prefix"):
                too_big = [i for i in getattr(req, name) if i >= vocab]
                if too_big:
                    fail(f"requests[{index}].{name}", too_big[:5], f"token ids must be < the model's vocabulary size {vocab}")
        too_big = [i for i in params.stop_token_ids if i >= vocab]
        if too_big:
            fail("SamplingParams.stop_token_ids", too_big, f"token ids must be < the model's vocabulary size {vocab}")


def _to_sample(request: RolloutRequest, sample_index: int, row: DecodedRow, version: int) -> Sample:
    return Sample(
        group_id=request.group_id,
        prompt_ids=list(request.prompt_ids),
        response_ids=list(request.forced_prefix) + row.generated,
        logprobs=row.forced_logprobs + row.generated_logprobs,
        forced=len(request.forced_prefix),
        finish_reason=row.finish_reason,
        weight_version=version,
        sample_index=sample_index,
    )

"""megathink's rollout requests as SGLang `/generate` bodies, and SGLang's answers as `Sample`s.

Every sequence (request r, sample s) becomes one input of its own with n = 1 and
`sampling_seed = sequence_seed(params.seed, r, s)`, so any server that honours per-input seeds
the way `megathink serve` does returns exactly `LocalEngine`'s samples, however the sequences are
cut into calls and spread over engines. The input is the prompt followed by the forced prefix;
with a forced prefix the call asks for the input log-probs from the prefix on
(`logprob_start_len = len(prompt)`), and the client takes the last len(prefix) entries of
`input_token_logprobs`, checking their token ids, so it does not depend on whether a server
version returns one extra leading entry. `ignore_eos` is always set: the stop ids are exactly
`params.stop_token_ids`, as in-process. `top_k = 0` (off) is sent as SGLang's -1.

An answer that does not fit (wrong count, missing log-probs, ids that differ from the forced
prefix, an 'abort' finish) raises `MalformedAnswer`, a kind of `EngineDown`, so the batch is
retried elsewhere and the step never gets a partial or misaligned sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from megathink.rollout.http_client import EngineDown
from megathink.rollout.rng import sequence_seed
from megathink.rollout.types import FinishReason, RolloutRequest, Sample, SamplingParams


class MalformedAnswer(EngineDown):
    """The engine answered 200 with something that is not the expected `/generate` result."""


@dataclass(frozen=True)
class SeqKey:
    """Sequence `sample_index` of request `request_index`."""

    request_index: int
    sample_index: int


def expand(requests: Sequence[RolloutRequest], params: SamplingParams) -> list[SeqKey]:
    """All sequences of a `generate` call, in request order then sample index."""
    return [SeqKey(r, s) for r in range(len(requests)) for s in range(params.n)]


def generate_body(requests: Sequence[RolloutRequest], sequences: Sequence[SeqKey], params: SamplingParams) -> dict[str, Any]:
    """The `/generate` body of these sequences (one input each)."""
    inputs, sampling, starts = [], [], []
    for seq in sequences:
        request = requests[seq.request_index]
        inputs.append(list(request.prompt_ids) + list(request.forced_prefix))
        starts.append(len(request.prompt_ids) if request.forced_prefix else -1)
        sampling.append({
            "temperature": float(params.temperature), "top_p": float(params.top_p),
            "top_k": params.top_k if params.top_k > 0 else -1, "max_new_tokens": request.cap(params),
            "stop_token_ids": list(params.stop_token_ids), "n": 1, "ignore_eos": True, "skip_special_tokens": False,
            "sampling_seed": sequence_seed(params.seed, seq.request_index, seq.sample_index),
        })
    return {"input_ids": inputs, "sampling_params": sampling, "return_logprob": True, "logprob_start_len": starts}


def parse_samples(
    url: str, answer: Any, requests: Sequence[RolloutRequest], sequences: Sequence[SeqKey], params: SamplingParams,
    version: int,
) -> tuple[list[Sample], list[dict[str, Any]]]:
    """-> (one `Sample` per sequence, each answer's meta_info)."""
    if not isinstance(answer, list) or len(answer) != len(sequences):
        got = f"a list of {len(answer)}" if isinstance(answer, list) else type(answer).__name__
        raise MalformedAnswer(url, f"/generate answered {got}, expected a list of {len(sequences)} results")
    samples, metas = [], []
    for position, (seq, item) in enumerate(zip(sequences, answer)):
        request = requests[seq.request_index]
        meta = item.get("meta_info") if isinstance(item, dict) else None
        if not isinstance(meta, dict):
            raise MalformedAnswer(url, f"/generate result {position} has no meta_info")
        generated, generated_lp = _token_logprobs(url, meta.get("output_token_logprobs"), position, "output_token_logprobs")
        output_ids = item.get("output_ids")
        if output_ids is not None and list(output_ids) != generated:
            raise MalformedAnswer(url, f"/generate result {position}: output_ids and output_token_logprobs disagree")
        forced_lp = _forced_logprobs(url, meta.get("input_token_logprobs"), list(request.forced_prefix), position)
        finish = _finish(url, meta.get("finish_reason"), position)
        if len(generated) > request.cap(params) or (finish == "length" and len(generated) != request.cap(params)):
            raise MalformedAnswer(url, f"/generate result {position}: {len(generated)} tokens for a cap of {request.cap(params)}")
        samples.append(Sample(
            group_id=request.group_id, prompt_ids=list(request.prompt_ids),
            response_ids=list(request.forced_prefix) + generated, logprobs=forced_lp + generated_lp,
            forced=len(request.forced_prefix), finish_reason=finish, weight_version=version, sample_index=seq.sample_index,
        ))
        metas.append(meta)
    return samples, metas


def _token_logprobs(url: str, entries: Any, position: int, field: str) -> tuple[list[int], list[float]]:
    if not isinstance(entries, list):
        raise MalformedAnswer(url, f"/generate result {position} has no meta_info.{field} (was return_logprob honoured?)")
    ids, lps = [], []
    for entry in entries:
        if not isinstance(entry, (list, tuple)) or len(entry) < 2 or not isinstance(entry[1], int):
            raise MalformedAnswer(url, f"/generate result {position}: meta_info.{field} entry {entry!r} is not [logprob, token_id, text]")
        lp = entry[0]
        if not isinstance(lp, (int, float)):
            raise MalformedAnswer(url, f"/generate result {position}: meta_info.{field} has no log-prob for token {entry[1]}")
        ids.append(int(entry[1]))
        lps.append(float(lp))
    return ids, lps


def _forced_logprobs(url: str, entries: Any, forced: list[int], position: int) -> list[float]:
    if not forced:
        return []
    if not isinstance(entries, list) or len(entries) < len(forced):
        raise MalformedAnswer(url, f"/generate result {position}: meta_info.input_token_logprobs lacks the forced prefix's {len(forced)} tokens")
    ids, lps = _token_logprobs(url, entries[-len(forced):], position, "input_token_logprobs")
    if ids != forced:
        raise MalformedAnswer(url, f"/generate result {position}: input_token_logprobs ends with ids {ids}, not the forced prefix {forced}")
    return lps


def _finish(url: str, reason: Any, position: int) -> FinishReason:
    kind = reason.get("type") if isinstance(reason, dict) else None
    if kind in ("stop", "length"):
        return kind
    raise MalformedAnswer(url, f"/generate result {position} finished with {reason!r}, not 'stop' or 'length'")

"""What goes into a rollout engine and what comes out: `SamplingParams`, `RolloutRequest`, `Sample`.

The shapes follow SGLang's native `/generate` API so the local engine, the SGLang engine and
the HTTP server all speak one language: a request is `input_ids` plus `sampling_params`
{temperature, top_p, top_k, max_new_tokens, stop_token_ids, n}, a result is the output ids,
their per-token log-probs and a finish reason "stop" / "length". Departures from SGLang:

- `top_k = 0` means "off" (SGLang spells it -1); `seed` seeds every sequence's own random
  stream (SGLang's per-request `sampling_seed`), see `megathink.rollout.rng`.
- A request may carry a `forced_prefix` (AdaptThink's forced `</think>` / "Alright" openers).
  It is fed after the prompt, never sampled, and reported as the first `forced` response
  tokens with their log-probs under the policy (SGLang would see it as part of `input_ids`).
- `max_new_tokens` counts *generated* tokens only, after the forced prefix, as SGLang counts
  tokens after its `input_ids`.
- `logprobs` are always `log_softmax(logits / T)` of the full distribution at the sampling
  temperature T (T = 1 for greedy), never of the top-k/top-p-truncated one, so the trainer
  recomputes exactly the same quantity from the same ids (ALGORITHMS.md: every log-prob is
  taken from `logits / T`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from megathink.config.validation import check_float, check_int, fail

FinishReason = Literal["stop", "length"]


def _check_ids(path: str, ids: Any, *, allow_empty: bool) -> None:
    ok = isinstance(ids, Sequence) and not isinstance(ids, (str, bytes)) and (allow_empty or len(ids) > 0)
    if ok and not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
        ok = False
    if not ok:
        fail(path, ids, ("must be a list of token ids >= 0" if allow_empty else "must be a non-empty list of token ids >= 0"))


@dataclass(frozen=True)
class SamplingParams:
    """How every sequence of one `generate` call is sampled (shared by all its requests)."""

    temperature: float = 0.6
    """Softmax temperature; 0 means greedy decoding (log-probs then reported at T = 1)."""

    top_p: float = 1.0
    """Nucleus mass in (0, 1]: keep the most likely tokens whose preceding mass is <= top_p; 1 is off."""

    top_k: int = 0
    """Keep only the k most likely tokens; 0 is off (SGLang: -1)."""

    max_new_tokens: int = 256
    """Cap on generated tokens per sequence (a request's own `max_new_tokens` overrides it)."""

    stop_token_ids: tuple[int, ...] = ()
    """Generation of a sequence ends after it produces one of these (kept in the response).
    Nothing is implicit: pass the tokenizer's EOS here if it should stop generation."""

    n: int = 1
    """Samples per request; they share the request's group id."""

    seed: int = 0
    """Seed of the per-sequence random streams: the same seed and requests give the same samples."""

    def __post_init__(self) -> None:
        check_float("SamplingParams.temperature", self.temperature, low=0.0)
        check_float("SamplingParams.top_p", self.top_p, low=0.0, high=1.0, low_inclusive=False)
        check_int("SamplingParams.top_k", self.top_k, low=0)
        check_int("SamplingParams.max_new_tokens", self.max_new_tokens, low=1)
        _check_ids("SamplingParams.stop_token_ids", self.stop_token_ids, allow_empty=True)
        check_int("SamplingParams.n", self.n, low=1)
        check_int("SamplingParams.seed", self.seed)
        object.__setattr__(self, "stop_token_ids", tuple(self.stop_token_ids))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @property
    def logprob_temperature(self) -> float:
        """The temperature the reported log-probs are computed at (1.0 when greedy)."""
        return 1.0 if self.greedy else float(self.temperature)


@dataclass(frozen=True)
class RolloutRequest:
    """One prompt to continue `n` times."""

    prompt_ids: list[int]
    """Token ids of the rendered prompt (chat template applied), at least one."""

    group_id: int
    """Carried into every `Sample` of this request (the GRPO group / the prompt's index)."""

    forced_prefix: list[int] = field(default_factory=list)
    """Response tokens fed after the prompt instead of being sampled (AdaptThink openers)."""

    max_new_tokens: Optional[int] = None
    """This request's cap on generated tokens (after the forced prefix); None: the params' cap."""

    def __post_init__(self) -> None:
        _check_ids("RolloutRequest.prompt_ids", self.prompt_ids, allow_empty=False)
        check_int("RolloutRequest.group_id", self.group_id)
        _check_ids("RolloutRequest.forced_prefix", self.forced_prefix, allow_empty=True)
        if self.max_new_tokens is not None:
            check_int("RolloutRequest.max_new_tokens", self.max_new_tokens, low=1)

    def cap(self, params: SamplingParams) -> int:
        """Generated-token cap of this request's samples under `params`."""
        return params.max_new_tokens if self.max_new_tokens is None else self.max_new_tokens


@dataclass
class Sample:
    """One sampled response.

    `response_ids` = forced prefix, then the generated tokens (the stop token included when
    one was produced); `logprobs[t]` = log p(response_ids[t] | prompt, response_ids[:t]) under
    `log_softmax(logits / T)` of the full distribution, for forced tokens too.
    """

    group_id: int
    prompt_ids: list[int]
    response_ids: list[int]
    logprobs: list[float]
    forced: int
    """How many leading response tokens were forced rather than sampled."""
    finish_reason: FinishReason
    """'stop': ended on a stop token; 'length': reached its max_new_tokens cap."""
    weight_version: int
    """The engine's weight version that produced this sample."""
    sample_index: int
    """0..n-1 within its request."""

    @property
    def num_generated(self) -> int:
        """Sampled (not forced) response tokens."""
        return len(self.response_ids) - self.forced

"""`ServedModel`: the model behind `megathink serve`: loading it, answering SGLang-style
generation through `LocalEngine`, replacing its weights from disk, pausing and releasing it.

One model, one lock: requests that arrive together (the HTTP server runs a thread per
connection) are answered one after another, each as one batched `LocalEngine` call. Sample j of
an input with `sampling_seed` S draws from the random stream seeded S + j (`megathink.rollout.rng`),
so a client that sends one sequence per input with the seed `sequence_seed(seed, r, s)` gets
exactly the samples `LocalEngine.generate` gives in-process. Inputs without a seed get one from
the server's `--seed` and a request counter.

Departures from SGLang: no continuous batching, prefix cache or CUDA graphs (`/flush_cache` has
nothing to drop); `/release_memory_occupation` moves a CUDA model to host memory (nothing to free
on CPU) and generation is refused until `/resume_memory_occupation`; a paused server
(`/pause_generation`) holds new generation requests until `/continue_generation`, up to
`pause_wait_s`, then answers 503.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from megathink.data.tokenizer import load_tokenizer_dir
from megathink.errors import ConfigError, MegathinkError, MissingPathError
from megathink.models.hf_backend import HFBackend, check_hf_model_dir
from megathink.rollout.local_engine import LocalEngine
from megathink.rollout.rng import sequence_seed
from megathink.rollout.server_requests import MAX_SEED, GenerateInput, ModelLimits, RequestError
from megathink.rollout.types import RolloutRequest, Sample, SamplingParams

log = logging.getLogger(__name__)

_LOAD_LOCK = threading.Lock()
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class SequenceResult:
    """One generated sequence, in SGLang's terms."""

    input_index: int
    output_ids: list[int]
    output_logprobs: list[float]
    input_token_ids: list[int]
    """Input tokens from `logprob_start_len` on (empty without input log-probs)."""
    input_logprobs: list[Optional[float]]
    """Their log-probs; None for the very first input token (nothing predicts it)."""
    finish_reason: dict[str, Any]
    """{"type": "stop", "matched": id} or {"type": "length", "length": max_new_tokens}."""
    prompt_tokens: int


class ServedModel:
    """A causal LM from a local HF folder, answering `GenerateInput`s (thread-safe)."""

    def __init__(
        self, model_path: str, *, tokenizer_path: Optional[str] = None, skip_tokenizer: bool = False, device: str = "cpu",
        dtype: str = "auto", batch_size: int = 256, seed: int = 0, max_sequences: int = 4096, pause_wait_s: float = 600.0,
    ) -> None:
        self.model_path = str(model_path)
        self.device = torch.device(device)
        model = load_model_dir(self.model_path, dtype=dtype, device=self.device)
        self.tokenizer_path = None if skip_tokenizer else str(tokenizer_path or model_path)
        self.tokenizer = None if self.tokenizer_path is None else _tokenizer(self.tokenizer_path, tokenizer_path is not None)
        if self.tokenizer is not None:
            eos, pad = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id
        else:  # SGLang's --skip-tokenizer-init: ids in, ids out; EOS from the model's config
            eos, pad = getattr(model.config, "eos_token_id", None), getattr(model.config, "pad_token_id", None)
            eos = eos[0] if isinstance(eos, (list, tuple)) and eos else eos
        self.eos_id: Optional[int] = eos if isinstance(eos, int) else None
        pad = pad if isinstance(pad, int) else self.eos_id
        self.engine = LocalEngine(HFBackend(model, self.device), pad_id=int(pad or 0), batch_size=batch_size)
        self.limits = ModelLimits(
            vocab_size=model.get_input_embeddings().num_embeddings,
            context=int(getattr(model.config, "max_position_embeddings", 1 << 30)),
            max_sequences=max_sequences,
        )
        self.seed = seed
        self.weight_version = "default"
        self.pause_wait_s = pause_wait_s
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._running.set()
        self._released = False
        self._requests = itertools.count()

    @property
    def model(self) -> torch.nn.Module:
        return self.engine.backend.model

    def info(self) -> dict[str, Any]:
        """The body of GET /get_model_info."""
        return {
            "model_path": self.model_path, "tokenizer_path": self.tokenizer_path, "is_generation": True,
            "preferred_sampling_params": None, "weight_version": self.weight_version,
            "vocab_size": self.limits.vocab_size, "context_length": self.limits.context,
        }

    def generate(self, inputs: list[GenerateInput]) -> tuple[list[SequenceResult], float]:
        """Every input's n sequences, input-major; and the seconds the call waited for the model."""
        arrived = time.perf_counter()
        if not self._running.wait(self.pause_wait_s):
            raise RequestError(503, f"generation is paused (/pause_generation) for more than {self.pause_wait_s:.0f} s")
        with self._lock:
            queued = time.perf_counter() - arrived
            if self._released:
                raise RequestError(409, "the model's memory is released: POST /resume_memory_occupation first")
            return self._run(inputs, next(self._requests)), queued

    def _run(self, inputs: list[GenerateInput], request_number: int) -> list[SequenceResult]:
        jobs: list[tuple[int, RolloutRequest, int, SamplingParams]] = []
        for index, item in enumerate(inputs):
            split = _forced_split(item)
            request = RolloutRequest(
                prompt_ids=item.input_ids[:split], group_id=index, forced_prefix=item.input_ids[split:],
                max_new_tokens=item.max_new_tokens,
            )
            params = SamplingParams(
                temperature=item.temperature, top_p=item.top_p, top_k=item.top_k, max_new_tokens=item.max_new_tokens,
                stop_token_ids=item.stop_token_ids, n=1, seed=0,
            )
            for j in range(item.n):
                seed = (item.seed + j) & MAX_SEED if item.seed is not None else sequence_seed(self.seed, request_number, len(jobs))
                jobs.append((index, request, seed, params))
        samples: list[Optional[Sample]] = [None] * len(jobs)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for position, (_, _, _, params) in enumerate(jobs):  # one engine call per distinct sampling rule
            key = (params.temperature, params.top_p, params.top_k, params.stop_token_ids)
            groups.setdefault(key, []).append(position)
        for positions in groups.values():
            params = jobs[positions[0]][3]
            cap = max(jobs[p][1].cap(params) for p in positions)
            shared = SamplingParams(
                temperature=params.temperature, top_p=params.top_p, top_k=params.top_k, max_new_tokens=cap,
                stop_token_ids=params.stop_token_ids, n=1, seed=0,
            )
            out = self.engine.generate_seeded([jobs[p][1] for p in positions], [jobs[p][2] for p in positions], shared)
            for position, sample in zip(positions, out):
                samples[position] = sample
        return [_result(inputs[index], index, sample) for (index, _, _, _), sample in zip(jobs, samples)]

    def update_from_disk(self, model_path: str, weight_version: Optional[str]) -> tuple[bool, str]:
        """Load the weights of the HF folder `model_path` into the served model (same architecture)."""
        started = time.perf_counter()
        with self._lock:
            dtype = next(self.model.parameters()).dtype
            try:
                fresh = load_model_dir(model_path, dtype=dtype, device=torch.device("cpu"))
                self.model.load_state_dict(fresh.state_dict(), strict=True)
            except (ConfigError, MissingPathError, RuntimeError, OSError, ValueError) as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                return False, f"failed to load weights from {model_path}: {first}"
            self.model_path = str(model_path)
            if weight_version is not None:
                self.weight_version = weight_version
        return True, f"loaded weights from {model_path} in {time.perf_counter() - started:.2f} s (weight_version {self.weight_version})"

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def release_memory(self) -> None:
        with self._lock:
            if self.device.type == "cuda" and not self._released:
                self.model.to("cpu")
                torch.cuda.empty_cache()
            self._released = True

    def resume_memory(self) -> None:
        with self._lock:
            if self.device.type == "cuda" and self._released:
                self.model.to(self.device)
            self._released = False

    def decode(self, ids: list[int], *, skip_special_tokens: bool = True) -> str:
        """The text of `ids`; '' without a tokenizer (--skip-tokenizer-init)."""
        if self.tokenizer is None:
            return ""
        return str(self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens))

    def require_tokenizer(self, field: str) -> Any:
        if self.tokenizer is None:
            raise RequestError(400, f"{field} needs the tokenizer, but this server runs with --skip-tokenizer-init: send input_ids")
        return self.tokenizer


def _tokenizer(path: str, explicit: bool) -> Any:
    try:
        return load_tokenizer_dir(path)
    except MegathinkError as err:
        flag = "--tokenizer-path" if explicit else "--model-path (its tokenizer)"
        raise type(err)(f"{flag} {path!r}: {err} Or pass --skip-tokenizer-init to serve token ids only.") from err


def _forced_split(item: GenerateInput) -> int:
    """Where the prompt ends and the scored tail (`logprob_start_len` on) begins; at least 1 token of prompt."""
    start = item.logprob_start_len
    if not item.return_logprob or start < 0 or start >= len(item.input_ids):
        return len(item.input_ids)
    return max(start, 1)


def _result(item: GenerateInput, index: int, sample: Sample) -> SequenceResult:
    forced = sample.forced
    generated = sample.response_ids[forced:]
    input_ids: list[int] = []
    input_lps: list[Optional[float]] = []
    if item.return_logprob and 0 <= item.logprob_start_len < len(item.input_ids):
        input_ids = item.input_ids[item.logprob_start_len :]
        input_lps = ([None] if item.logprob_start_len == 0 else []) + list(sample.logprobs[:forced])
    if sample.finish_reason == "stop":
        finish: dict[str, Any] = {"type": "stop", "matched": generated[-1]}
    else:
        finish = {"type": "length", "length": item.max_new_tokens}
    return SequenceResult(
        input_index=index, output_ids=list(generated), output_logprobs=list(sample.logprobs[forced:]),
        input_token_ids=input_ids, input_logprobs=input_lps, finish_reason=finish, prompt_tokens=len(item.input_ids),
    )


def load_model_dir(path: str, *, dtype: Any, device: torch.device) -> torch.nn.Module:
    """A Qwen2/Llama causal LM from the local HF folder `path` (never the hub), in eval mode.

    dtype: a torch dtype, or 'auto' (the folder's own), 'float32', 'bfloat16', 'float16'.
    """
    from transformers import AutoModelForCausalLM

    folder = Path(path)
    check_hf_model_dir(folder, "--model-path")
    if isinstance(dtype, str) and dtype != "auto":
        if dtype not in DTYPES:
            raise ConfigError(f"--dtype {dtype!r} is invalid: use auto, {', '.join(DTYPES)}.")
        dtype = DTYPES[dtype]
    from transformers.utils import logging as hf_logging

    with _LOAD_LOCK:  # transformers' loading patches process-wide state: one load at a time per process
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # one bar per weight load would flood the server log
        try:
            model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=dtype)
        finally:
            if bars:
                hf_logging.enable_progress_bar()
    return model.to(device).eval()

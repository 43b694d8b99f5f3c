"""Parse and check the JSON bodies `megathink serve` accepts; every problem is a `RequestError`
(HTTP status + a message naming the field and the fix), never an exception from deep inside torch.

`/generate` (SGLang's `GenerateReqInput`, the subset megathink implements): `input_ids` (one list
or a batch of lists) or `text` (one string or a batch); `sampling_params` (one dict for all
inputs or one per input) with `temperature`, `top_p`, `top_k`, `max_new_tokens`, `stop_token_ids`,
`n`, `sampling_seed`, `ignore_eos`, `skip_special_tokens`; `return_logprob`, `logprob_start_len`
(one value or one per input), `return_text_in_logprobs`, `rid`, `stream` (false only).

Departures from SGLang: unknown keys are refused (400) instead of ignored, so a client relying
on an SGLang feature megathink lacks learns it at once; penalties, `min_p`, `min_new_tokens`,
stop strings and grammars are accepted only at their neutral values; `max_new_tokens` must be
>= 1 (SGLang's 0, prompt scoring only, is refused); `input_ids` plus `max_new_tokens` must fit the
model's context (SGLang clips instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

SAMPLING_KEYS = (
    "temperature", "top_p", "top_k", "max_new_tokens", "stop_token_ids", "n", "sampling_seed",
    "ignore_eos", "skip_special_tokens", "spaces_between_special_tokens", "no_stop_trim",
)
NEUTRAL_SAMPLING = {
    "min_p": 0.0, "frequency_penalty": 0.0, "presence_penalty": 0.0, "repetition_penalty": 1.0,
    "min_new_tokens": 0, "stop": None, "stop_regex": None, "regex": None, "json_schema": None, "ebnf": None,
    "logit_bias": None, "custom_params": None,
}
"""SGLang sampling parameters megathink does not implement, with the value that means 'off'."""
GENERATE_KEYS = (
    "input_ids", "text", "sampling_params", "return_logprob", "logprob_start_len", "top_logprobs_num",
    "return_text_in_logprobs", "rid", "stream",
)
DEFAULT_MAX_NEW_TOKENS = 128
"""SGLang's default `max_new_tokens`."""
MAX_SEED = (1 << 63) - 1


class RequestError(Exception):
    """A request the server refuses: `status` (4xx) and a message naming the field."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ModelLimits:
    """What the served model accepts: token ids below `vocab_size`, `context` positions in all."""

    vocab_size: int
    context: int
    max_sequences: int
    """Cap on sequences (inputs x n) in one request."""


@dataclass(frozen=True)
class GenerateInput:
    """One input of a /generate call, checked; it expands into `n` sequences."""

    input_ids: list[int]
    temperature: float
    """0 = greedy (SGLang: any temperature below 1e-6)."""
    top_p: float
    top_k: int
    """0 = off (SGLang spells it -1)."""
    max_new_tokens: int
    stop_token_ids: tuple[int, ...]
    n: int
    seed: Optional[int]
    """SGLang's `sampling_seed`; sample j of this input draws from the stream seeded seed + j."""
    ignore_eos: bool
    skip_special_tokens: bool
    return_logprob: bool
    logprob_start_len: int
    """-1: output log-probs only; L >= 0: also the log-probs of input tokens L.. (the first input token has none)."""


def fail(field: str, value: Any, allowed: str, status: int = 400) -> RequestError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return RequestError(status, f"{field} = {shown} is invalid: {allowed}")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value and abs(value) != float("inf")


def require_object(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise fail(what, type(body).__name__, "the request body must be a JSON object")
    return body


def check_keys(body: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise RequestError(
            400, f"{where}{unknown[0]} is not supported by megathink serve; supported: {', '.join(allowed)}"
        )


def token_ids(value: Any, field: str, limits: ModelLimits, *, allow_empty: bool = False) -> list[int]:
    if not isinstance(value, list) or (not value and not allow_empty):
        raise fail(field, value, "must be a non-empty list of token ids")
    for index, token in enumerate(value):
        if not is_int(token) or token < 0:
            raise fail(f"{field}[{index}]", token, "must be an integer token id >= 0")
        if token >= limits.vocab_size:
            raise fail(f"{field}[{index}]", token, f"token ids must be < the model's vocabulary size {limits.vocab_size}")
    return list(value)


def parse_generate(body: Any, limits: ModelLimits, encode: Any, eos_id: Optional[int]) -> tuple[list[GenerateInput], bool, bool]:
    """-> (inputs, single, return_text_in_logprobs); `single`: one input given as a bare list or
    string (answered with one object when n == 1). `encode(text) -> ids` tokenizes `text` inputs."""
    body = require_object(body, "body")
    check_keys(body, GENERATE_KEYS, "")
    if body.get("stream"):
        raise fail("stream", body["stream"], "megathink serve answers whole responses only; send stream=false")
    if body.get("top_logprobs_num") not in (None, 0):
        raise fail("top_logprobs_num", body["top_logprobs_num"], "top log-probs are not supported; send 0 or leave it out")
    prompts, single = _inputs(body, limits, encode)
    count = len(prompts)
    sampling = _per_input(body.get("sampling_params"), "sampling_params", count, dict, {})
    return_logprob = _per_input(body.get("return_logprob"), "return_logprob", count, bool, False)
    start_lens = _per_input(body.get("logprob_start_len"), "logprob_start_len", count, int, -1)
    text_in_logprobs = body.get("return_text_in_logprobs", False)
    if not isinstance(text_in_logprobs, bool):
        raise fail("return_text_in_logprobs", text_in_logprobs, "must be true or false")
    inputs = []
    for index, ids in enumerate(prompts):
        where = _at("sampling_params", index, body)
        start = start_lens[index]
        if not is_int(start) or start < -1:
            raise fail(_at("logprob_start_len", index, body), start, "must be -1 (output log-probs only) or a position >= 0")
        inputs.append(_sampling(sampling[index], where, ids, limits, eos_id, return_logprob[index], start))
    total = sum(item.n for item in inputs)
    if total > limits.max_sequences:
        raise RequestError(
            413, f"the request asks for {total} sequences (inputs x n); this server takes at most {limits.max_sequences} "
            "per request (--max-sequences-per-request): split it"
        )
    return inputs, single, text_in_logprobs


def _at(field: str, index: int, body: dict[str, Any]) -> str:
    return f"{field}[{index}]" if isinstance(body.get(field), list) else field


def _inputs(body: dict[str, Any], limits: ModelLimits, encode: Any) -> tuple[list[list[int]], bool]:
    if ("input_ids" in body) == ("text" in body):
        raise RequestError(400, "input_ids is missing: give exactly one of input_ids (token ids) or text")
    if "input_ids" in body:
        value = body["input_ids"]
        if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
            return [token_ids(v, f"input_ids[{i}]", limits) for i, v in enumerate(value)], False
        return [token_ids(value, "input_ids", limits)], True
    value = body["text"]
    texts = value if isinstance(value, list) else [value]
    if not texts or not all(isinstance(t, str) and t for t in texts):
        raise fail("text", value, "must be a non-empty string or a non-empty list of non-empty strings")
    encoded = [list(encode(t)) for t in texts]
    for index, ids in enumerate(encoded):
        token_ids(ids, f"text[{index}] (tokenized)", limits)
    return encoded, not isinstance(value, list)


def _per_input(value: Any, field: str, count: int, kind: type, default: Any) -> list[Any]:
    if value is None:
        return [default] * count
    if isinstance(value, list):
        if len(value) != count:
            raise fail(field, f"a list of {len(value)}", f"give one value for all inputs or exactly one per input ({count})")
        for index, item in enumerate(value):
            _check_kind(item, f"{field}[{index}]", kind)
        return list(value)
    _check_kind(value, field, kind)
    return [value] * count


def _check_kind(value: Any, field: str, kind: type) -> None:
    ok = isinstance(value, dict) if kind is dict else isinstance(value, bool) if kind is bool else is_int(value)
    if not ok:
        raise fail(field, value, {dict: "must be a JSON object", bool: "must be true or false", int: "must be an integer"}[kind])


def _sampling(
    raw: dict[str, Any], where: str, ids: list[int], limits: ModelLimits, eos_id: Optional[int],
    return_logprob: bool, start: int,
) -> GenerateInput:
    unknown = sorted(set(raw) - set(SAMPLING_KEYS) - set(NEUTRAL_SAMPLING))
    if unknown:
        raise RequestError(
            400, f"{where}.{unknown[0]} is not supported by megathink serve; supported: {', '.join(SAMPLING_KEYS)}"
        )
    for key, neutral in NEUTRAL_SAMPLING.items():
        if key in raw and raw[key] not in (neutral, None, [], {}):
            raise fail(f"{where}.{key}", raw[key], f"megathink serve implements only the neutral value {neutral!r}")

    def get(key: str, default: Any) -> Any:
        value = raw.get(key)
        return default if value is None else value

    temperature = get("temperature", 1.0)
    if not is_number(temperature) or temperature < 0:
        raise fail(f"{where}.temperature", temperature, "must be a finite number >= 0 (0: greedy)")
    top_p = get("top_p", 1.0)
    if not is_number(top_p) or not 0 < top_p <= 1:
        raise fail(f"{where}.top_p", top_p, "must be a number in (0, 1]")
    top_k = get("top_k", -1)
    if not is_int(top_k) or top_k == 0 or top_k < -1:
        raise fail(f"{where}.top_k", top_k, "must be -1 (off) or an integer >= 1")
    max_new = get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
    if not is_int(max_new) or max_new < 1:
        raise fail(f"{where}.max_new_tokens", max_new, "must be an integer >= 1")
    if len(ids) + max_new > limits.context:
        raise fail(
            f"{where}.max_new_tokens", max_new,
            f"the input's {len(ids)} tokens plus max_new_tokens exceed the model's context of {limits.context} positions",
        )
    stop = token_ids(get("stop_token_ids", []), f"{where}.stop_token_ids", limits, allow_empty=True)
    n = get("n", 1)
    if not is_int(n) or n < 1:
        raise fail(f"{where}.n", n, "must be an integer >= 1")
    seed = raw.get("sampling_seed")
    if seed is not None and (not is_int(seed) or not 0 <= seed <= MAX_SEED):
        raise fail(f"{where}.sampling_seed", seed, f"must be an integer in [0, {MAX_SEED}] or null")
    flags = {}
    for key, default in (("ignore_eos", False), ("skip_special_tokens", True), ("spaces_between_special_tokens", True), ("no_stop_trim", False)):
        flags[key] = get(key, default)
        if not isinstance(flags[key], bool):
            raise fail(f"{where}.{key}", flags[key], "must be true or false")
    stops = tuple(dict.fromkeys(stop + ([] if flags["ignore_eos"] or eos_id is None else [eos_id])))
    if start > len(ids):
        raise fail("logprob_start_len", start, f"must be <= the input's length {len(ids)}")
    return GenerateInput(
        input_ids=ids, temperature=0.0 if temperature < 1e-6 else float(temperature), top_p=float(top_p),
        top_k=0 if top_k == -1 else top_k, max_new_tokens=max_new, stop_token_ids=stops, n=n, seed=seed,
        ignore_eos=flags["ignore_eos"], skip_special_tokens=flags["skip_special_tokens"],
        return_logprob=return_logprob, logprob_start_len=start,
    )


def parse_update_weights(body: Any) -> tuple[str, Optional[str]]:
    """`/update_weights_from_disk` -> (model_path, weight_version or None)."""
    body = require_object(body, "body")
    check_keys(body, ("model_path", "load_format", "weight_version", "flush_cache", "abort_all_requests"), "")
    path = body.get("model_path")
    if not isinstance(path, str) or not path:
        raise fail("model_path", path, "must be the path of a HF model folder (config.json + *.safetensors) on the server")
    if body.get("load_format") not in (None, "auto", "safetensors"):
        raise fail("load_format", body["load_format"], "megathink serve reads safetensors folders only ('auto')")
    version = body.get("weight_version")
    if version is not None and not isinstance(version, str):
        raise fail("weight_version", version, "must be a string (e.g. '3') or null")
    return path, version

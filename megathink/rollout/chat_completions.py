"""The OpenAI-compatible `POST /v1/chat/completions` of `megathink serve` (non-streaming).

`messages` are rendered with the served tokenizer's chat template (generation prompt added) and
encoded without extra special tokens (the template carries them), then sampled like a
`/generate` input that stops at the tokenizer's EOS; each choice's text is the decoded output
without special tokens. Fields: `model` (echoed), `messages` [{role, content: str}], `max_tokens`
(or `max_completion_tokens`; default: the rest of the model's context), `temperature` (default
1.0), `top_p`, `n`, `seed` (choice j draws from the stream seeded seed + j, as `/generate`'s
`sampling_seed`). Departure from OpenAI/SGLang: no streaming, tools, logprobs, stop strings or
penalties (refused with 400 naming the field, except neutral values).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from megathink.rollout.server_requests import (
    MAX_SEED, GenerateInput, RequestError, check_keys, fail, is_int, is_number, require_object,
)
from megathink.rollout.served_model import ServedModel

CHAT_KEYS = (
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n", "seed", "stream",
    "user", "stop", "frequency_penalty", "presence_penalty", "logprobs",
)
ROLES = ("system", "user", "assistant", "tool", "developer")


def chat_completion(served: ServedModel, body: Any) -> dict[str, Any]:
    """Answer one chat completion request (raises `RequestError` for a bad one)."""
    body = require_object(body, "body")
    check_keys(body, CHAT_KEYS, "")
    for key, neutral in (("stream", False), ("stop", None), ("frequency_penalty", 0), ("presence_penalty", 0), ("logprobs", False)):
        if body.get(key) not in (neutral, None):
            raise fail(key, body[key], f"megathink serve supports only {neutral!r} here")
    ids = _encode(served, _messages(body.get("messages")))
    room = served.limits.context - len(ids)
    if room < 1:
        raise fail("messages", f"{len(ids)} tokens", f"the rendered prompt leaves no room in the model's context of {served.limits.context}")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    field = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    if max_tokens is None:
        max_tokens = room
    if not is_int(max_tokens) or not 1 <= max_tokens <= room:
        raise fail(field, max_tokens, f"must be an integer in [1, {room}] (the room the prompt leaves in the context)")
    temperature = 1.0 if body.get("temperature") is None else body["temperature"]
    if not is_number(temperature) or not 0 <= temperature <= 2:
        raise fail("temperature", temperature, "must be a number in [0, 2]")
    top_p = 1.0 if body.get("top_p") is None else body["top_p"]
    if not is_number(top_p) or not 0 < top_p <= 1:
        raise fail("top_p", top_p, "must be a number in (0, 1]")
    n = 1 if body.get("n") is None else body["n"]
    if not is_int(n) or n < 1:
        raise fail("n", n, "must be an integer >= 1")
    if n > served.limits.max_sequences:
        raise RequestError(413, f"n = {n} exceeds this server's {served.limits.max_sequences} sequences per request")
    seed = body.get("seed")
    if seed is not None and (not is_int(seed) or not 0 <= seed <= MAX_SEED):
        raise fail("seed", seed, f"must be an integer in [0, {MAX_SEED}] or null")
    item = GenerateInput(
        input_ids=ids, temperature=0.0 if temperature < 1e-6 else float(temperature), top_p=float(top_p), top_k=0,
        max_new_tokens=max_tokens, stop_token_ids=() if served.eos_id is None else (served.eos_id,), n=n, seed=seed,
        ignore_eos=False, skip_special_tokens=True, return_logprob=False, logprob_start_len=-1,
    )
    results, _ = served.generate([item])
    choices = [
        {
            "index": j,
            "message": {"role": "assistant", "content": served.decode(r.output_ids, skip_special_tokens=True)},
            "finish_reason": r.finish_reason["type"],
            "logprobs": None,
        }
        for j, r in enumerate(results)
    ]
    completion = sum(len(r.output_ids) for r in results)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or served.model_path,
        "choices": choices,
        "usage": {"prompt_tokens": len(ids), "completion_tokens": completion, "total_tokens": len(ids) + completion},
    }


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise fail("messages", value, "must be a non-empty list of {role, content} objects")
    out = []
    for index, message in enumerate(value):
        if not isinstance(message, dict):
            raise fail(f"messages[{index}]", message, "must be an object with 'role' and 'content'")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise fail(f"messages[{index}].role", role, f"must be one of {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise fail(f"messages[{index}].content", content, "must be a string (multi-part content is not supported)")
        out.append({"role": role, "content": content})
    return out


def _encode(served: ServedModel, messages: list[dict[str, str]]) -> list[int]:
    tokenizer = served.require_tokenizer("messages")
    if not getattr(tokenizer, "chat_template", None):
        raise RequestError(
            400, "messages cannot be rendered: the served tokenizer has no chat template; use /generate with input_ids"
        )
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = list(tokenizer.encode(text, add_special_tokens=False))
    too_big = [i for i in ids if i >= served.limits.vocab_size]
    if too_big:
        raise fail("messages", f"token id {too_big[0]}", f"the rendered prompt has ids >= the model's vocabulary size {served.limits.vocab_size}")
    return ids

"""Client of SGLang's native API: `POST /generate` with `input_ids` and `sampling_params`.

The prompt is rendered on this side with the served model's own chat template (the tokenizer
directory given by `--<role>-tokenizer`, loaded once) and `add_generation_prompt=True`, then
encoded with `add_special_tokens=False` and sent as `input_ids`. Why not `text`: the template
already writes the BOS token, and a server that encodes `text` itself would add a second one
for tokenizers whose post-processor prepends BOS (R1-Distill-Qwen's does); token ids leave no
such doubt, and `megathink serve` and SGLang both accept them.

Request: `{"input_ids": [...], "sampling_params": {"max_new_tokens", "temperature", "top_p"[, "n"]}}`
(`n` is sent only when > 1). Answer: one object, or a list of n objects for n > 1, each with
`text` and `meta_info` (`finish_reason`: `{"type": "stop" | "length" | "abort", ...}` or a plain
string; `completion_tokens`). An answer counts as finished when its finish type is "stop"; a
server that reports no finish reason is trusted to have stopped unless `completion_tokens`
reached the cap.

R1's template ends with `<think>\\n`: the text after the last think token of the rendered
prompt (here "\\n") is put in front of each answer (see completions.py).
"""

from __future__ import annotations

import threading
from typing import Any, Mapping

from megathink.data.tokenizer import load_tokenizer_dir
from megathink.distill.completions import Completion, check_reachable, target_for, user_messages
from megathink.distill.settings import EndpointSettings
from megathink.distill.transport import RequestFailed, RetryPolicy, post_json
from megathink.errors import DataError

ROUTE = "/generate"
HEALTH_ROUTE = "/health"


class NativeClient:
    """`complete(problem)` -> n `Completion`s from an SGLang-native `/generate` route."""

    def __init__(self, settings: EndpointSettings, instruction: str, policy: RetryPolicy, think_token: str) -> None:
        self.settings = settings
        self.instruction = instruction
        self.policy = policy
        self.think_token = think_token
        self.target = target_for(settings, ROUTE)
        assert settings.tokenizer is not None  # EndpointSettings.check() requires it for the native API
        try:
            self.tokenizer = load_tokenizer_dir(settings.tokenizer)
        except DataError as err:
            raise DataError(f"{settings.flag}-tokenizer: {err}") from err
        if not getattr(self.tokenizer, "chat_template", None):
            raise DataError(
                f"{settings.flag}-tokenizer = {settings.tokenizer!r} has no chat template: give the served model's "
                f"own tokenizer directory (its tokenizer_config.json carries the template), or use {settings.flag}-api openai."
            )
        self._lock = threading.Lock()  # a fast tokenizer must not encode from two threads at once

    def render(self, problem: str) -> tuple[list[int], str]:
        """(prompt token ids, the text after the prompt's trailing think token or "")."""
        messages = user_messages(self.settings, problem, self.instruction)
        with self._lock:
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            ids = list(self.tokenizer.encode(text, add_special_tokens=False))
        return ids, open_thought_tail(text, self.think_token)

    def complete(self, problem: str) -> list[Completion]:
        ids, lead = self.render(problem)
        sampling = self.settings.sampling
        params: dict[str, Any] = {
            "max_new_tokens": sampling.max_tokens, "temperature": sampling.temperature, "top_p": sampling.top_p,
        }
        if sampling.n > 1:
            params["n"] = sampling.n
        answer = post_json(self.target, {"input_ids": ids, "sampling_params": params}, self.policy)
        items = answer if isinstance(answer, list) else [answer]
        if len(items) != sampling.n:
            raise RequestFailed(f"{self.target.url} returned {len(items)} answers for n = {sampling.n}")
        return [self._completion(item, lead) for item in items]

    def check_reachable(self) -> None:
        check_reachable(self.settings, HEALTH_ROUTE, self.policy)

    def _completion(self, item: Any, lead: str) -> Completion:
        if not isinstance(item, Mapping) or not isinstance(item.get("text"), str):
            raise RequestFailed(f"{self.target.url} returned an answer without a 'text' string: {str(item)[:200]}")
        meta = item.get("meta_info") if isinstance(item.get("meta_info"), Mapping) else {}
        tokens = meta.get("completion_tokens")
        tokens = tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None
        reason = meta.get("finish_reason")
        kind = reason.get("type") if isinstance(reason, Mapping) else reason
        if kind is None:
            finished = tokens is None or tokens < self.settings.sampling.max_tokens
        else:
            finished = kind == "stop"
        return Completion(text=lead + item["text"], finished=finished, tokens=tokens)


def open_thought_tail(prompt_text: str, think_token: str) -> str:
    """When `prompt_text` ends with `think_token` plus only whitespace, that whitespace; else ""."""
    _, found, tail = prompt_text.rpartition(think_token)
    return tail if found and not tail.strip() else ""

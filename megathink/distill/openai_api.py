"""Client of an OpenAI-compatible chat API: `POST /v1/chat/completions`, not streamed.

The server renders its own chat template from `messages` (optional system message, then the
problem and the instruction as the user turn). Request fields: `model`, `messages`,
`max_tokens`, `temperature`, `top_p`, `stream: false`, and `n` when > 1. Each of the answer's
`choices` becomes a `Completion`; `finish_reason` "stop" means finished ("length" and anything
else do not). `usage.completion_tokens` is a per-answer length only when n = 1.

Reasoning servers split the thought from the answer in two ways, both handled:
- `message.reasoning_content` (DeepSeek's API, SGLang/vLLM with a reasoning parser): the text
  is rebuilt in R1's raw layout, `"\\n" + thought + "\\n</think>\\n\\n" + answer`;
- no parser: `message.content` holds `thought</think>answer` (the template opened the
  thought), taken as it is.
Either way the text reads as what follows the think token (completions.py). Without a parser
the newline R1's template puts after `<think>` is not visible here, so such long answers start
directly with the thought (the native API keeps it); the difference is one newline.
"""

from __future__ import annotations

from typing import Any, Mapping

from megathink.distill.completions import Completion, check_reachable, target_for, user_messages
from megathink.distill.settings import EndpointSettings
from megathink.distill.transport import RequestFailed, RetryPolicy, post_json

ROUTE = "/v1/chat/completions"
MODELS_ROUTE = "/v1/models"


class OpenAIClient:
    """`complete(problem)` -> n `Completion`s from an OpenAI-compatible chat route."""

    def __init__(self, settings: EndpointSettings, instruction: str, policy: RetryPolicy, end_think_token: str) -> None:
        self.settings = settings
        self.instruction = instruction
        self.policy = policy
        self.end_think_token = end_think_token
        self.target = target_for(settings, ROUTE)

    def request_body(self, problem: str) -> dict[str, Any]:
        sampling = self.settings.sampling
        body: dict[str, Any] = {
            "model": self.settings.model,
            "messages": user_messages(self.settings, problem, self.instruction),
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "stream": False,
        }
        if sampling.n > 1:
            body["n"] = sampling.n
        return body

    def complete(self, problem: str) -> list[Completion]:
        answer = post_json(self.target, self.request_body(problem), self.policy)
        choices = answer.get("choices") if isinstance(answer, Mapping) else None
        n = self.settings.sampling.n
        if not isinstance(choices, list) or len(choices) != n:
            got = len(choices) if isinstance(choices, list) else "no"
            raise RequestFailed(f"{self.target.url} returned {got} choices for n = {n}: {str(answer)[:200]}")
        usage = answer.get("usage") if isinstance(answer.get("usage"), Mapping) else {}
        tokens = usage.get("completion_tokens") if n == 1 else None
        tokens = tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None
        ordered = sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c, Mapping) else 0)
        return [self._completion(choice, tokens) for choice in ordered]

    def check_reachable(self) -> None:
        check_reachable(self.settings, MODELS_ROUTE, self.policy)

    def _completion(self, choice: Any, tokens: Any) -> Completion:
        message = choice.get("message") if isinstance(choice, Mapping) else None
        if not isinstance(message, Mapping):
            raise RequestFailed(f"{self.target.url} returned a choice without a message: {str(choice)[:200]}")
        content = message.get("content") or ""
        reasoning = message.get("reasoning_content") or ""
        if not isinstance(content, str) or not isinstance(reasoning, str):
            raise RequestFailed(f"{self.target.url} returned non-text content: {str(message)[:200]}")
        if reasoning:
            text = "\n" + reasoning.strip() + "\n" + self.end_think_token + "\n\n" + content.strip()
        else:
            text = content
        reason = choice.get("finish_reason")
        if reason is None:
            finished = tokens is None or tokens < self.settings.sampling.max_tokens
        else:
            finished = reason == "stop"
        return Completion(text=text, finished=finished, tokens=tokens)

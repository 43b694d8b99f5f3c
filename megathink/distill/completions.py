"""What an endpoint client returns, the call shape both clients share, and how one is built.

A `Completion` is one sampled answer: its text, whether the model stopped by itself (EOS or a
stop string) rather than at the token cap, and its length in tokens when the server reports it.
Text conventions: special tokens the server skips stay skipped (SGLang and OpenAI servers drop
EOS). `Completion.text` reads as what follows the last think token the model saw or wrote:
with the native API, when the rendered prompt ended inside an opened thought (R1's chat
template ends with `<think>\\n`), the text after that think token is put back in front of the
answer; the OpenAI API never shows the prompt, so there the answer is taken as it comes, or
rebuilt from `reasoning_content` (openai_api.py). The caller (question.py) turns it into the
`long` / `short` field.

`build_client` picks `native_api.NativeClient` or `openai_api.OpenAIClient` by
`EndpointSettings.api`; `endpoint_url` joins the base URL and the route.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol

from megathink.distill.settings import EndpointSettings
from megathink.distill.transport import RetryPolicy, Target, probe


@dataclass(frozen=True)
class Completion:
    """One sampled answer."""

    text: str
    finished: bool
    """True when the model stopped by itself; False when it hit the token cap (or the server aborted it)."""
    tokens: Optional[int] = None
    """Completion length in tokens, when the server reports it per answer."""


class CompletionClient(Protocol):
    """Sends one question to one endpoint and returns its `n` sampled answers."""

    settings: EndpointSettings

    def complete(self, problem: str) -> list[Completion]: ...

    def check_reachable(self) -> None:
        """Raise `EndpointUnreachable` (naming the URL and flag) when the server does not answer."""
        ...


def build_client(
    settings: EndpointSettings, instruction: str, policy: RetryPolicy, *, think_token: str, end_think_token: str
) -> CompletionClient:
    """The client for `settings.api` (settings must have passed `check()`)."""
    if settings.api == "native":
        from megathink.distill.native_api import NativeClient

        return NativeClient(settings, instruction, policy, think_token)
    from megathink.distill.openai_api import OpenAIClient

    return OpenAIClient(settings, instruction, policy, end_think_token)


def endpoint_url(base: str, route: str) -> str:
    """`base` + `route`, unless `base` already ends with the route; a base ending in `/v1` takes the
    OpenAI route without its own `/v1` (so both http://host:8000 and https://api.example.com/v1 work)."""
    base = base.rstrip("/")
    if base.endswith(route):
        return base
    if route.startswith("/v1/") and base.endswith("/v1"):
        return base + route[len("/v1"):]
    return base + route


def user_messages(settings: EndpointSettings, problem: str, instruction: str) -> list[dict[str, str]]:
    """The chat turns of one question: optional system message, then problem + ' ' + instruction."""
    content = problem + (" " + instruction if instruction else "")
    messages = [{"role": "user", "content": content}]
    if settings.system_prompt:
        messages.insert(0, {"role": "system", "content": settings.system_prompt})
    return messages


def target_for(settings: EndpointSettings, route: str) -> Target:
    """A transport `Target` for one route of this endpoint (the key hint names the variable, never the key)."""
    hint = f"the key from ${settings.api_key_env} ({settings.flag}-api-key-env)" if settings.api_key_env else ""
    return Target(
        url=endpoint_url(settings.url, route), role_flag=settings.flag, api_key=settings.api_key(), key_hint=hint
    )


def check_reachable(settings: EndpointSettings, route: str, policy: RetryPolicy) -> None:
    """`transport.probe` of one GET route (a server that answers any status is reachable)."""
    probe(target_for(settings, route), policy)

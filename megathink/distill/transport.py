"""JSON over HTTP (stdlib urllib) with a per-request timeout, retries with backoff, and errors naming the URL.

`post_json` sends one request and retries what may pass on a second try: a refused or dropped
connection, a timeout, HTTP 408, 429 and 5xx. Retry k (1-based) waits `backoff_s * 2**(k-1)`
seconds. What a retry cannot fix raises at once. The errors sort failures by who must act:

- `EndpointUnreachable` (a `MegathinkError`: the run stops, exit 2): no connection could be made
  after every retry; the message names the URL and the flag that set it.
- `EndpointRefused` (a `MegathinkError`: the run stops): HTTP 401/403 (the API key) or 404/405
  (the URL does not speak the chosen API).
- `RequestFailed` (not a user error; the question is counted as failed and retried by the next
  run): HTTP 400/413/422 for this prompt, or timeouts and 5xx that outlived the retries.

The API key goes only into the `Authorization: Bearer` header; no message or log carries it.
Proxies follow the usual `http_proxy`/`https_proxy`/`no_proxy` environment variables (urllib).
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, Optional

from megathink.errors import MegathinkError

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
REFUSED_STATUS = frozenset({401, 403, 404, 405})
_BODY_CHARS = 300


class EndpointUnreachable(MegathinkError):
    """No connection to an endpoint after every retry."""


class EndpointRefused(MegathinkError):
    """The endpoint answers, but refuses every request (key, path or API)."""


class RequestFailed(Exception):
    """One request failed for good (its question is not written; the next run retries it)."""


@dataclass(frozen=True)
class Target:
    """Where requests go and how they are described in errors."""

    url: str
    """The full URL of the route (e.g. http://127.0.0.1:30000/generate)."""
    role_flag: str
    """The prefix of the endpoint's flags, e.g. --reasoning (its URL came from --reasoning-url)."""
    api_key: Optional[str] = None
    key_hint: str = ""
    """How the key was given (e.g. 'the key from $R1_KEY (--reasoning-api-key-env)'), for 401 messages."""


@dataclass(frozen=True)
class RetryPolicy:
    timeout_s: float
    retries: int
    backoff_s: float
    sleep: Callable[[float], None] = time.sleep


def post_json(target: Target, body: Any, policy: RetryPolicy) -> Any:
    """POST `body` as JSON to `target.url`; the decoded JSON answer (see the module docstring for errors)."""
    data = json.dumps(body).encode("utf-8")
    return _with_retries(target, policy, lambda: _open(target, data, policy.timeout_s))


def probe(target: Target, policy: RetryPolicy) -> None:
    """GET `target.url`; returns when the server answers at all (any HTTP status), else `EndpointUnreachable`."""

    def attempt() -> Any:
        try:
            return _open(target, None, policy.timeout_s)
        except urllib.error.HTTPError:
            return None  # it answered: reachable

    _with_retries(target, policy, attempt)


def _open(target: Target, data: Optional[bytes], timeout_s: float) -> Any:
    headers = {"Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    if target.api_key:
        headers["Authorization"] = f"Bearer {target.api_key}"
    request = urllib.request.Request(target.url, data=data, headers=headers, method="POST" if data else "GET")
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        raw = response.read()
    try:
        return json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RequestFailed(f"{target.url} answered with a body that is not JSON ({err}): {raw[:_BODY_CHARS]!r}") from err


def _with_retries(target: Target, policy: RetryPolicy, attempt: Callable[[], Any]) -> Any:
    attempts = policy.retries + 1
    last = ""
    unreachable = False
    for number in range(1, attempts + 1):
        if number > 1:
            policy.sleep(policy.backoff_s * 2 ** (number - 2))
        try:
            return attempt()
        except urllib.error.HTTPError as err:
            body = _error_body(err)
            if err.code in REFUSED_STATUS:
                raise EndpointRefused(_refused_message(target, err.code, body)) from err
            if err.code not in RETRYABLE_STATUS:
                raise RequestFailed(f"{target.url} answered HTTP {err.code}: {body}") from err
            last, unreachable = f"HTTP {err.code}: {body}", False
        except (TimeoutError, socket.timeout):
            last, unreachable = f"no answer within --timeout {policy.timeout_s:g} s", False
        except urllib.error.URLError as err:
            if isinstance(err.reason, (TimeoutError, socket.timeout)):
                last, unreachable = f"no answer within --timeout {policy.timeout_s:g} s", False
            else:
                last, unreachable = f"cannot connect ({err.reason})", True
        except (OSError, http.client.HTTPException) as err:  # reset or dropped mid-answer
            last, unreachable = f"connection lost ({type(err).__name__}: {err})", True
    tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
    if unreachable:
        raise EndpointUnreachable(
            f"cannot reach {target.url} (set by {target.role_flag}-url): {last}, after {tries}. Start the server, "
            f"or fix {target.role_flag}-url; questions already finished are kept, so rerun the same command to resume."
        )
    raise RequestFailed(f"{target.url} failed after {tries}: {last}")


def _error_body(err: urllib.error.HTTPError) -> str:
    try:
        text = err.read().decode("utf-8", errors="replace")
    except OSError:
        text = ""
    text = " ".join(text.split())
    return text[:_BODY_CHARS] or "(no body)"


def _refused_message(target: Target, status: int, body: str) -> str:
    flag = target.role_flag
    if status in (401, 403):
        given = target.key_hint or "no API key (none was given)"
        return (
            f"{target.url} (set by {flag}-url) refused the request with HTTP {status} ({body}); it was sent "
            f"{given}: export the right key and name its variable with {flag}-api-key-env."
        )
    return (
        f"{target.url} (set by {flag}-url) answered HTTP {status} ({body}): the server does not offer this "
        f"route; check {flag}-url and {flag}-api (native: POST /generate, openai: POST /v1/chat/completions)."
    )

"""JSON over HTTP to one rollout server (SGLang or `megathink serve`), with the failure kinds the
SGLang engine acts on: `EngineDown` (connection refused or reset, time-out, 5xx, 408, 429: try another
engine) and `EngineRefused` (any other 4xx: the request itself is wrong, or the API key;
retrying cannot help). Standard library only (`urllib`); the API key goes in `Authorization: Bearer KEY`.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Optional

from megathink.errors import MegathinkError


RETRYABLE_4XX = (408, 429)
"""Request time-out and too-many-requests: the engine is busy, not the request wrong."""


class RolloutServerError(MegathinkError, RuntimeError):
    """A rollout engine failed to start, or a rollout step failed after its retries; names the
    engine's URL (and its log file when megathink launched it) and what went wrong."""


class EngineCallError(Exception):
    """One HTTP call to one engine failed."""

    def __init__(self, url: str, message: str) -> None:
        super().__init__(f"{url}: {message}")
        self.url = url


class EngineDown(EngineCallError):
    """The engine did not answer properly (unreachable, timed out, 5xx, 408/429): another engine may."""


class EngineRefused(EngineCallError):
    """The engine answered 4xx: the request is wrong for it (the message says why)."""

    def __init__(self, url: str, message: str, status: int) -> None:
        super().__init__(url, message)
        self.status = status


@dataclass(frozen=True)
class Endpoint:
    """One server: its base URL and the API key it wants (None: none)."""

    url: str
    api_key: Optional[str] = None

    def get(self, path: str, *, timeout: float) -> Any:
        return self._call("GET", path, None, timeout)

    def post(self, path: str, body: Any, *, timeout: float) -> Any:
        return self._call("POST", path, body, timeout)

    def _call(self, method: str, path: str, body: Any, timeout: float) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url.rstrip("/") + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            detail = _error_text(err)
            if err.code >= 500 or err.code in RETRYABLE_4XX:
                raise EngineDown(self.url, f"{method} {path} answered {err.code}: {detail}") from None
            raise EngineRefused(self.url, f"{method} {path} answered {err.code}: {detail}", err.code) from None
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise EngineDown(self.url, f"{method} {path} failed: {type(reason).__name__}: {reason}") from None
        if not raw:
            return None
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return raw.decode("utf-8", errors="replace")


def _error_text(err: urllib.error.HTTPError) -> str:
    try:
        raw = err.read()
    except OSError:
        return str(err.reason)
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return raw.decode("utf-8", errors="replace")[:500] or str(err.reason)
    if isinstance(body, dict):
        inner = body.get("error")
        message = body.get("message") or (inner.get("message") if isinstance(inner, dict) else inner)
        if message:
            return str(message)
    return json.dumps(body)[:500]

"""The HTTP side of `megathink serve`: SGLang's native API (the subset RL needs) and OpenAI chat
completions around one `ServedModel`, on the standard library's `ThreadingHTTPServer`.

Routes: GET /health, /health_generate, /get_model_info, /get_server_info, /v1/models; POST
/generate, /update_weights_from_disk, /flush_cache (GET too), /pause_generation,
/continue_generation, /release_memory_occupation, /resume_memory_occupation,
/v1/chat/completions. With an API key every request needs `Authorization: Bearer KEY` (401
otherwise; /health included). Every failure is a JSON error body `{"object": "error", "message",
"type", "code"}` with a 4xx status naming the field (5xx only for a server fault); bodies above
`max_body_bytes` get 413 and the connection is closed (the body read and dropped when it is at
most twice the limit, so the client reads the answer instead of a reset); a socket idle for `IDLE_TIMEOUT_S`
is dropped, so a stalled client never holds a thread. One debug log line per request.

`/generate` answers like SGLang: one object for one input given bare (with n = 1), else a list,
input-major (input i's n samples together); each item is {"text", "output_ids", "meta_info": {"id",
"finish_reason", "prompt_tokens", "completion_tokens", "cached_tokens", "weight_version",
"e2e_latency", "queue_time", "output_token_logprobs" / "input_token_logprobs" as [logprob,
token_id, text-or-null] triples when return_logprob}}. Departures from SGLang: `queue_time` (the
seconds the request waited for the model) is megathink's own; `/get_server_info` reports only
what megathink knows (`tp_size` is always 1).
"""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional
from urllib.parse import urlsplit

from megathink.rollout.chat_completions import chat_completion
from megathink.rollout.server_requests import RequestError, parse_generate, parse_update_weights, require_object
from megathink.rollout.served_model import SequenceResult, ServedModel

log = logging.getLogger(__name__)

IDLE_TIMEOUT_S = 120.0
"""Seconds a connection may sit without sending before the server drops it."""
DEFAULT_MAX_BODY_BYTES = 64 << 20
DRAIN_FACTOR = 2
"""A body up to this many times the limit is read and dropped before the 413; a larger one is not read at all."""

Route = Callable[[ServedModel, Any], tuple[int, Any]]


class RolloutHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], served: ServedModel, *, api_key: Optional[str] = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        super().__init__(address, _Handler)
        self.served = served
        self.api_key = api_key or None
        self.max_body_bytes = max_body_bytes

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def make_server(
    served: ServedModel, host: str = "127.0.0.1", port: int = 0, *, api_key: Optional[str] = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> RolloutHTTPServer:
    """A bound server (port 0: a free one, see `.url`); call `serve_forever()` to answer."""
    return RolloutHTTPServer((host, port), served, api_key=api_key, max_body_bytes=max_body_bytes)


def _generate(served: ServedModel, body: Any) -> tuple[int, Any]:
    started = time.perf_counter()
    inputs, single, text_in_logprobs = parse_generate(body, served.limits, _encoder(served), served.eos_id)
    results, queued = served.generate(inputs)
    e2e = time.perf_counter() - started
    rid = body.get("rid") if isinstance(body.get("rid"), str) else uuid.uuid4().hex
    items = [_generate_item(served, inputs[r.input_index], r, f"{rid}-{k}", e2e, queued, text_in_logprobs) for k, r in enumerate(results)]
    return 200, items[0] if single and len(items) == 1 else items


def _encoder(served: ServedModel) -> Callable[[str], list[int]]:
    return lambda text: list(served.require_tokenizer("text").encode(text))


def _generate_item(
    served: ServedModel, item: Any, result: SequenceResult, rid: str, e2e: float, queued: float, with_text: bool
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "id": rid, "finish_reason": result.finish_reason, "prompt_tokens": result.prompt_tokens,
        "completion_tokens": len(result.output_ids), "cached_tokens": 0, "weight_version": served.weight_version,
        "e2e_latency": e2e, "queue_time": queued,
    }
    if item.return_logprob:
        def text(token: int) -> Optional[str]:
            return served.decode([token], skip_special_tokens=False) if with_text else None

        meta["output_token_logprobs"] = [[lp, t, text(t)] for lp, t in zip(result.output_logprobs, result.output_ids)]
        meta["input_token_logprobs"] = [[lp, t, text(t)] for lp, t in zip(result.input_logprobs, result.input_token_ids)]
    output = result.output_ids
    if result.finish_reason["type"] == "stop" and output:  # SGLang trims the matched stop token from the text
        output = output[:-1]
    return {"text": served.decode(output, skip_special_tokens=item.skip_special_tokens), "output_ids": result.output_ids, "meta_info": meta}


def _update_weights(served: ServedModel, body: Any) -> tuple[int, Any]:
    path, version = parse_update_weights(body)
    ok, message = served.update_from_disk(path, version)
    log.info("update_weights_from_disk: %s", message)
    return (200 if ok else 400), {"success": ok, "message": message, "num_paused_requests": 0}


def _flag(action: Callable[[ServedModel], None], message: str) -> Route:
    def route(served: ServedModel, body: Any) -> tuple[int, Any]:
        if body is not None:
            require_object(body, "body")
        action(served)
        return 200, {"success": True, "message": message}

    return route


def _server_info(served: ServedModel, body: Any) -> tuple[int, Any]:
    return 200, {
        **served.info(), "tp_size": 1, "dp_size": 1, "version": "megathink-serve",
        "device": str(served.device), "max_total_num_tokens": served.limits.context,
    }


ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/health"): lambda served, body: (200, None),
    ("GET", "/health_generate"): lambda served, body: (200, None),
    ("GET", "/get_model_info"): lambda served, body: (200, served.info()),
    ("GET", "/get_server_info"): _server_info,
    ("GET", "/v1/models"): lambda served, body: (
        200, {"object": "list", "data": [{"id": served.model_path, "object": "model", "owned_by": "megathink"}]}
    ),
    ("POST", "/generate"): _generate,
    ("POST", "/update_weights_from_disk"): _update_weights,
    ("POST", "/flush_cache"): lambda served, body: (200, "Cache flushed.\n"),
    ("GET", "/flush_cache"): lambda served, body: (200, "Cache flushed.\n"),
    ("POST", "/pause_generation"): _flag(ServedModel.pause, "generation paused"),
    ("POST", "/continue_generation"): _flag(ServedModel.resume, "generation continued"),
    ("POST", "/release_memory_occupation"): _flag(ServedModel.release_memory, "memory released"),
    ("POST", "/resume_memory_occupation"): _flag(ServedModel.resume_memory, "memory resumed"),
    ("POST", "/v1/chat/completions"): lambda served, body: (200, chat_completion(served, body)),
}

_ERROR_TYPES = {400: "BadRequestError", 401: "AuthenticationError", 404: "NotFoundError", 405: "MethodNotAllowed",
                409: "ConflictError", 411: "LengthRequired", 413: "PayloadTooLarge", 503: "ServiceUnavailable"}


class _Handler(BaseHTTPRequestHandler):
    server: RolloutHTTPServer
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S

    def do_GET(self) -> None:  # noqa: N802 (the standard library's names)
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        started = time.perf_counter()
        path = urlsplit(self.path).path
        try:
            self._authorize()
            route = ROUTES.get((method, path))
            if route is None:
                other = [m for m, p in ROUTES if p == path]
                if other:
                    raise RequestError(405, f"{path} takes {' or '.join(other)}, not {method}")
                raise RequestError(404, f"no route {path}; megathink serve answers: {', '.join(sorted({p for _, p in ROUTES}))}")
            body = self._read_json() if method == "POST" else None
            status, payload = route(self.server.served, body)
        except RequestError as err:
            status, payload = err.status, _error(err.status, err.message)
        except Exception as err:  # a server fault: report it, keep serving
            log.exception("%s %s failed", method, path)
            status, payload = 500, _error(500, f"internal error: {type(err).__name__}: {err}")
        self._send(status, payload)
        log.debug("%s %s -> %d in %.3f s", method, path, status, time.perf_counter() - started)

    def _authorize(self) -> None:
        key = self.server.api_key
        if key is None:
            return
        header = self.headers.get("Authorization", "")
        given = header[len("Bearer "):] if header.startswith("Bearer ") else ""
        if not hmac.compare_digest(given.encode(), key.encode()):
            self.close_connection = True
            raise RequestError(401, "missing or wrong API key: send the header 'Authorization: Bearer <key>'")

    def _read_json(self) -> Any:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise RequestError(411, "chunked bodies are not supported: send Content-Length")
        raw_length = self.headers.get("Content-Length")
        try:
            length = int(raw_length) if raw_length is not None else 0
        except ValueError:
            self.close_connection = True
            raise RequestError(400, f"Content-Length = {raw_length!r} is invalid: must be a byte count") from None
        if length < 0:
            self.close_connection = True
            raise RequestError(400, f"Content-Length = {length} is invalid: must be >= 0")
        if length > self.server.max_body_bytes:
            self.close_connection = True
            if length <= DRAIN_FACTOR * self.server.max_body_bytes:  # read it away: the client then sees the 413, not a reset
                _discard(self.rfile, length)
            raise RequestError(413, f"the body has {length} bytes; this server takes at most {self.server.max_body_bytes}")
        data = self.rfile.read(length) if length else b""
        if len(data) < length:
            self.close_connection = True
            raise RequestError(400, f"the body ended after {len(data)} of {length} bytes")
        if not data.strip():
            return None
        try:
            return json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise RequestError(400, f"the body is not valid JSON: {err}") from None

    def _send(self, status: int, payload: Any) -> None:
        if payload is None:
            data, kind = b"", "text/plain"
        elif isinstance(payload, str):
            data, kind = payload.encode(), "text/plain; charset=utf-8"
        else:
            data, kind = json.dumps(payload).encode(), "application/json"
        try:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        """Requests are logged once, by `_dispatch`."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the standard library's name)
        log.debug("%s %s", self.address_string(), format % args)


def _discard(stream: Any, count: int) -> None:
    while count > 0:
        chunk = stream.read(min(count, 1 << 16))
        if not chunk:
            return
        count -= len(chunk)


def _error(status: int, message: str) -> dict[str, Any]:
    return {"object": "error", "message": message, "type": _ERROR_TYPES.get(status, "InternalServerError"), "code": status}

"""`megathink serve`'s HTTP protocol, served in this process: SGLang's /generate shapes, seeds,
input log-probs, weight updates, OpenAI chat completions, and 4xx answers to bad requests."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit

import pytest

from megathink_fixtures.rollout_servers import load_backend, running_server, save_tiny_model
from megathink.rollout import LocalEngine, RolloutRequest, SamplingParams
from megathink.rollout.http_server import RolloutHTTPServer

KEY = "s3cret"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("served") / "model")


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[RolloutHTTPServer]:
    with running_server(model_dir, batch_size=4) as srv:
        yield srv


def call(
    url: str, method: str, path: str, body: Any = None, *, raw: Optional[bytes] = None, headers: Optional[dict[str, str]] = None,
) -> tuple[int, Any]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    try:
        return response.status, json.loads(payload) if payload else None
    except json.JSONDecodeError:
        return response.status, payload.decode()


def test_single_input_gets_one_object_in_sglangs_shape(server: RolloutHTTPServer) -> None:
    status, out = call(server.url, "POST", "/generate", {
        "input_ids": [10, 11, 12], "sampling_params": {"max_new_tokens": 5, "ignore_eos": True, "sampling_seed": 4},
        "return_logprob": True,
    })
    assert status == 200 and isinstance(out, dict)
    meta = out["meta_info"]
    assert len(out["output_ids"]) == 5 and isinstance(out["text"], str)
    assert meta["finish_reason"] == {"type": "length", "length": 5}
    assert meta["prompt_tokens"] == 3 and meta["completion_tokens"] == 5 and meta["weight_version"] == "default"
    assert [t for _, t, _ in meta["output_token_logprobs"]] == out["output_ids"]
    assert all(lp <= 0 and text is None for lp, _, text in meta["output_token_logprobs"])
    assert meta["input_token_logprobs"] == []


def test_seeded_inputs_equal_the_in_process_engine(server: RolloutHTTPServer, model_dir: Path) -> None:
    """Input i with sampling_seed S and n samples: sample j = LocalEngine's stream seeded S + j."""
    backend, bundle = load_backend(model_dir)
    params = SamplingParams(temperature=0.8, top_p=0.9, top_k=20, max_new_tokens=6, stop_token_ids=(7, 8, 9))
    requests = [RolloutRequest([10, 11], group_id=0, forced_prefix=[5, 20]), RolloutRequest([13], group_id=1, max_new_tokens=3)]
    want = LocalEngine(backend, pad_id=bundle.pad_id).generate_seeded([requests[0], requests[0], requests[1]], [41, 42, 99], params)
    status, out = call(server.url, "POST", "/generate", {
        "input_ids": [[10, 11, 5, 20], [13]],
        "sampling_params": [
            {"temperature": 0.8, "top_p": 0.9, "top_k": 20, "max_new_tokens": 6, "stop_token_ids": [7, 8, 9], "ignore_eos": True, "n": 2, "sampling_seed": 41},
            {"temperature": 0.8, "top_p": 0.9, "top_k": 20, "max_new_tokens": 3, "stop_token_ids": [7, 8, 9], "ignore_eos": True, "sampling_seed": 99},
        ],
        "return_logprob": True, "logprob_start_len": [2, -1], "return_text_in_logprobs": True,
    })
    assert status == 200 and len(out) == 3  # input-major: input 0's two samples, then input 1's
    for got, sample in zip(out, want):
        meta = got["meta_info"]
        assert got["output_ids"] == sample.response_ids[sample.forced :]
        forced_lp = [lp for lp, _, _ in meta["input_token_logprobs"]]
        assert forced_lp + [lp for lp, _, _ in meta["output_token_logprobs"]] == pytest.approx(sample.logprobs, abs=1e-5)
        assert meta["finish_reason"]["type"] == sample.finish_reason
        assert all(isinstance(text, str) for _, _, text in meta["output_token_logprobs"])
    assert [t for _, t, _ in out[0]["meta_info"]["input_token_logprobs"]] == [5, 20]


def test_logprob_start_len_zero_has_no_logprob_for_the_first_token(server: RolloutHTTPServer) -> None:
    status, out = call(server.url, "POST", "/generate", {
        "input_ids": [10, 11, 12], "sampling_params": {"max_new_tokens": 1}, "return_logprob": True, "logprob_start_len": 0,
    })
    entries = out["meta_info"]["input_token_logprobs"]
    assert status == 200 and [t for _, t, _ in entries] == [10, 11, 12]
    assert entries[0][0] is None and all(lp < 0 for lp, _, _ in entries[1:])


def test_stop_ids_eos_and_ignore_eos(server: RolloutHTTPServer) -> None:
    inputs = [[10 + i % 50] for i in range(40)]
    sampling = {"max_new_tokens": 12, "temperature": 1.0}
    stop = list(range(30, 38))
    status, out = call(server.url, "POST", "/generate", {"input_ids": inputs, "sampling_params": {**sampling, "stop_token_ids": stop, "ignore_eos": True, "n": 1}})
    assert status == 200
    reasons = [o["meta_info"]["finish_reason"] for o in out]
    assert {r["type"] for r in reasons} == {"stop", "length"}
    for o, reason in zip(out, reasons):
        assert not set(o["output_ids"][:-1]) & set(stop)
        if reason["type"] == "stop":
            assert o["output_ids"][-1] == reason["matched"] and reason["matched"] in stop
        else:
            assert len(o["output_ids"]) == 12 and o["output_ids"][-1] not in stop
    # without ignore_eos the tokenizer's EOS (id 0) is one more stop id, as in SGLang
    def seeded(extra: dict[str, Any]) -> list[dict[str, Any]]:
        return [{**sampling, "sampling_seed": i, **extra} for i in range(len(inputs))]

    implicit = call(server.url, "POST", "/generate", {"input_ids": inputs, "sampling_params": seeded({})})[1]
    explicit = call(server.url, "POST", "/generate", {"input_ids": inputs, "sampling_params": seeded({"stop_token_ids": [0], "ignore_eos": True})})[1]
    ignored = call(server.url, "POST", "/generate", {"input_ids": inputs, "sampling_params": seeded({"ignore_eos": True})})[1]
    assert [o["output_ids"] for o in implicit] == [o["output_ids"] for o in explicit]
    assert any(o["meta_info"]["finish_reason"] == {"type": "stop", "matched": 0} for o in implicit)
    assert all(len(o["output_ids"]) == 12 for o in ignored)


def test_same_seed_same_answer_no_seed_differs_per_request(server: RolloutHTTPServer) -> None:
    body = {"input_ids": [10, 11], "sampling_params": {"max_new_tokens": 8, "ignore_eos": True, "sampling_seed": 5}}
    assert call(server.url, "POST", "/generate", body)[1]["output_ids"] == call(server.url, "POST", "/generate", body)[1]["output_ids"]
    unseeded = {"input_ids": [10, 11], "sampling_params": {"max_new_tokens": 8, "ignore_eos": True}}
    assert call(server.url, "POST", "/generate", unseeded)[1]["output_ids"] != call(server.url, "POST", "/generate", unseeded)[1]["output_ids"]


@pytest.mark.parametrize("body, status, field", [
    ({"sampling_params": {}}, 400, "input_ids"),
    ({"input_ids": []}, 400, "input_ids"),
    ({"input_ids": "10 11"}, 400, "input_ids"),
    ({"input_ids": [10, -1]}, 400, "input_ids[1]"),
    ({"input_ids": [10, 93]}, 400, "input_ids[1] = 93"),
    ({"input_ids": [[10], [11, 1.5]]}, 400, "input_ids[1][1]"),
    ({"input_ids": [10], "sampling_params": {"temperature": "hot"}}, 400, "sampling_params.temperature"),
    ({"input_ids": [10], "sampling_params": {"top_k": 0}}, 400, "sampling_params.top_k"),
    ({"input_ids": [10], "sampling_params": {"top_p": 0}}, 400, "sampling_params.top_p"),
    ({"input_ids": [10], "sampling_params": {"n": 0}}, 400, "sampling_params.n"),
    ({"input_ids": [10], "sampling_params": {"max_new_tokens": 0}}, 400, "sampling_params.max_new_tokens"),
    ({"input_ids": [10], "sampling_params": {"max_new_tokens": 600}}, 400, "context"),
    ({"input_ids": [10], "sampling_params": {"stop_token_ids": [500]}}, 400, "sampling_params.stop_token_ids[0]"),
    ({"input_ids": [10], "sampling_params": {"sampling_seed": -3}}, 400, "sampling_params.sampling_seed"),
    ({"input_ids": [10], "sampling_params": {"repetition_penalty": 1.3}}, 400, "sampling_params.repetition_penalty"),
    ({"input_ids": [10], "sampling_params": {"beam_width": 4}}, 400, "sampling_params.beam_width"),
    ({"input_ids": [[10], [11]], "sampling_params": [{}, {"n": "2"}]}, 400, "sampling_params[1].n"),
    ({"input_ids": [[10], [11]], "sampling_params": [{}]}, 400, "sampling_params"),
    ({"input_ids": [10], "return_logprob": "yes"}, 400, "return_logprob"),
    ({"input_ids": [10], "logprob_start_len": 5, "return_logprob": True}, 400, "logprob_start_len"),
    ({"input_ids": [10], "stream": True}, 400, "stream"),
    ({"input_ids": [10], "lora_path": "x"}, 400, "lora_path"),
    ({"input_ids": [10], "sampling_params": {"n": 5000}}, 413, "sequences"),
    ([10, 11], 400, "body"),
])
def test_malformed_generate_requests_get_4xx_naming_the_field(server: RolloutHTTPServer, body: Any, status: int, field: str) -> None:
    got, out = call(server.url, "POST", "/generate", body)
    assert got == status and out["object"] == "error" and out["code"] == status
    assert field in out["message"], out["message"]


def test_broken_bodies_routes_and_limits(server: RolloutHTTPServer) -> None:
    got, out = call(server.url, "POST", "/generate", raw=b'{"input_ids": [1, 2')
    assert got == 400 and "not valid JSON" in out["message"]
    got, out = call(server.url, "POST", "/generate", raw=b"\xff\xfe")
    assert got == 400 and "not valid JSON" in out["message"]
    got, out = call(server.url, "POST", "/generate", raw=b"x" * ((1 << 20) + 1))
    assert got == 413 and "at most" in out["message"]
    got, out = call(server.url, "POST", "/nowhere", {})
    assert got == 404 and "/generate" in out["message"]
    got, out = call(server.url, "GET", "/generate")
    assert got == 405 and "POST" in out["message"]
    # still serving after all that
    assert call(server.url, "POST", "/generate", {"input_ids": [3], "sampling_params": {"max_new_tokens": 2}})[0] == 200


def test_info_health_flush_pause(server: RolloutHTTPServer, model_dir: Path) -> None:
    assert call(server.url, "GET", "/health") == (200, None)
    status, info = call(server.url, "GET", "/get_model_info")
    assert status == 200 and info["model_path"] == str(model_dir) and info["is_generation"] and info["vocab_size"] == 93
    assert call(server.url, "POST", "/flush_cache")[0] == 200
    assert call(server.url, "POST", "/pause_generation", {})[1]["success"]
    assert call(server.url, "POST", "/continue_generation", {})[1]["success"]
    assert call(server.url, "POST", "/generate", {"input_ids": [3], "sampling_params": {"max_new_tokens": 1}})[0] == 200


def test_api_key_is_checked_on_every_request(model_dir: Path) -> None:
    with running_server(model_dir, api_key=KEY) as srv:
        for method, path in (("GET", "/health"), ("POST", "/generate"), ("GET", "/get_model_info")):
            assert call(srv.url, method, path, {"input_ids": [1]} if method == "POST" else None)[0] == 401
            status, out = call(srv.url, method, path, None, headers={"Authorization": "Bearer wrong"})
            assert status == 401 and "API key" in out["message"]
        assert call(srv.url, "GET", "/health", headers={"Authorization": f"Bearer {KEY}"})[0] == 200
        status, _ = call(srv.url, "POST", "/generate", {"input_ids": [1], "sampling_params": {"max_new_tokens": 1}},
                         headers={"Authorization": f"Bearer {KEY}"})
        assert status == 200


def test_update_weights_from_disk_changes_outputs(model_dir: Path, tmp_path: Path) -> None:
    other = save_tiny_model(tmp_path / "other", seed=7)
    body = {"input_ids": [[10, 11], [12]], "sampling_params": {"max_new_tokens": 8, "ignore_eos": True, "sampling_seed": 2}, "return_logprob": True}
    with running_server(model_dir) as srv:
        before = call(srv.url, "POST", "/generate", body)[1]
        status, out = call(srv.url, "POST", "/update_weights_from_disk", {"model_path": str(other), "weight_version": "3"})
        assert status == 200 and out["success"] and "weight_version 3" in out["message"]
        after = call(srv.url, "POST", "/generate", body)[1]
        assert [o["output_ids"] for o in after] != [o["output_ids"] for o in before]
        assert {o["meta_info"]["weight_version"] for o in after} == {"3"}
        with running_server(other) as fresh:  # the same answers as a server started on those weights
            assert [o["output_ids"] for o in call(fresh.url, "POST", "/generate", body)[1]] == [o["output_ids"] for o in after]
        status, out = call(srv.url, "POST", "/update_weights_from_disk", {"model_path": str(tmp_path / "missing")})
        assert status == 400 and out["success"] is False and "missing" in out["message"]
        assert call(srv.url, "POST", "/update_weights_from_disk", {"weight_version": "4"})[1]["message"].startswith("model_path")
        assert call(srv.url, "GET", "/get_model_info")[1]["weight_version"] == "3"


def test_chat_completions(server: RolloutHTTPServer) -> None:
    body = {"model": "toy", "messages": [{"role": "user", "content": "12+34"}], "max_tokens": 6, "temperature": 0.7, "n": 2, "seed": 3}
    status, out = call(server.url, "POST", "/v1/chat/completions", body)
    assert status == 200 and out["object"] == "chat.completion" and out["model"] == "toy"
    assert len(out["choices"]) == 2 and out["choices"][0]["message"]["role"] == "assistant"
    assert all(isinstance(c["message"]["content"], str) and c["finish_reason"] in ("stop", "length") for c in out["choices"])
    assert out["usage"]["total_tokens"] == out["usage"]["prompt_tokens"] + out["usage"]["completion_tokens"]
    again = call(server.url, "POST", "/v1/chat/completions", body)[1]
    assert [c["message"] for c in again["choices"]] == [c["message"] for c in out["choices"]]
    for bad, field in (
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": ["x"]}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "x"}], "stream": True}, "stream"),
        ({"messages": [{"role": "user", "content": "x"}], "tools": []}, "tools"),
    ):
        status, out = call(server.url, "POST", "/v1/chat/completions", bad)
        assert status == 400 and field in out["message"], out


def test_skip_tokenizer_init_serves_ids_only(model_dir: Path) -> None:
    with running_server(model_dir, skip_tokenizer=True) as srv:
        status, out = call(srv.url, "POST", "/generate", {"input_ids": [10], "sampling_params": {"max_new_tokens": 3, "ignore_eos": True}})
        assert status == 200 and out["text"] == "" and len(out["output_ids"]) == 3
        status, out = call(srv.url, "POST", "/generate", {"text": "12+3"})
        assert status == 400 and "--skip-tokenizer-init" in out["message"]

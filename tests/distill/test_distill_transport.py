"""transport.py and the two API clients against the scripted endpoint: retries and backoff, error kinds,
the API key header, URL joining, and how each API's answer becomes a `Completion`."""

from __future__ import annotations

import socket

import pytest
from megathink_fixtures.r1_tokenizer import build_r1_style_tokenizer_dir
from megathink_fixtures.scripted_endpoint import Reply, ScriptedEndpoint
from transformers import PreTrainedTokenizerFast

from megathink.distill.completions import build_client, endpoint_url
from megathink.distill.native_api import open_thought_tail
from megathink.distill.settings import EndpointSettings, SamplingSettings
from megathink.distill.transport import (
    EndpointRefused,
    EndpointUnreachable,
    RequestFailed,
    RetryPolicy,
    Target,
    post_json,
    probe,
)

SAMPLING = SamplingSettings(max_tokens=64, temperature=0.6, top_p=0.95)


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_r1_style_tokenizer_dir(str(tmp_path_factory.mktemp("tok")))


def _policy(sleeps: list[float] | None = None, retries: int = 2) -> RetryPolicy:
    return RetryPolicy(timeout_s=5.0, retries=retries, backoff_s=0.5,
                       sleep=(sleeps.append if sleeps is not None else lambda s: None))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_retryable_statuses_are_retried_with_doubling_backoff() -> None:
    server = ScriptedEndpoint({"q": Reply("x")}, statuses={"q": [503, 429]})
    try:
        sleeps: list[float] = []
        body = {"messages": [{"role": "user", "content": "q"}]}
        answer = post_json(Target(server.url + "/v1/chat/completions", "--x"), body, _policy(sleeps))
        assert answer["choices"][0]["message"]["content"] == "x"
        assert sleeps == [0.5, 1.0] and len(server.requests) == 3
        server.statuses["q"] = [500, 500, 500]
        with pytest.raises(RequestFailed, match="failed after 3 attempts: HTTP 500"):
            post_json(Target(server.url + "/v1/chat/completions", "--x"), body, _policy())
    finally:
        server.close()


def test_a_rejected_prompt_fails_at_once_and_refusals_stop_the_run() -> None:
    server = ScriptedEndpoint({"q": Reply("x")}, statuses={"q": [400, 404]}, api_key="s3cret")
    body = {"messages": [{"role": "user", "content": "q"}]}
    url = server.url + "/v1/chat/completions"
    try:
        with pytest.raises(RequestFailed, match="HTTP 400"):
            post_json(Target(url, "--x", api_key="s3cret"), body, _policy())
        with pytest.raises(EndpointRefused, match=r"HTTP 404.*check --x-url"):
            post_json(Target(url, "--x", api_key="s3cret"), body, _policy())
        with pytest.raises(EndpointRefused, match=r"HTTP 401.*no API key") as refused:
            post_json(Target(url, "--x"), body, _policy())
        hint = "the key from $K (--x-api-key-env)"
        with pytest.raises(EndpointRefused, match=r"HTTP 401.*\$K") as wrong:
            post_json(Target(url, "--x", api_key="wrong-key", key_hint=hint), body, _policy())
        assert "wrong-key" not in str(wrong.value) and "s3cret" not in str(refused.value)
        assert len(server.requests) == 4  # none of these was retried
        assert server.requests[0].authorization == "Bearer s3cret" and server.requests[2].authorization is None
    finally:
        server.close()


def test_a_request_without_an_answer_times_out_and_is_retried() -> None:
    server = ScriptedEndpoint({"q": Reply("x")}, hang={"q"})
    try:
        policy = RetryPolicy(timeout_s=0.3, retries=1, backoff_s=0.0)
        body = {"messages": [{"role": "user", "content": "q"}]}
        with pytest.raises(RequestFailed, match=r"failed after 2 attempts: no answer within --timeout 0.3 s"):
            post_json(Target(server.url + "/v1/chat/completions", "--x"), body, policy)
        assert len(server.requests) == 2
    finally:
        server.close()


def test_unreachable_endpoint_names_url_and_flag() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    sleeps: list[float] = []
    with pytest.raises(EndpointUnreachable) as err:
        probe(Target(url + "/health", "--reasoning"), _policy(sleeps, retries=1))
    message = str(err.value)
    assert url + "/health" in message and "--reasoning-url" in message and "after 2 attempts" in message
    assert sleeps == [0.5]


@pytest.mark.parametrize(
    "base, route, expected",
    [
        ("http://h:1", "/generate", "http://h:1/generate"),
        ("http://h:1/", "/v1/chat/completions", "http://h:1/v1/chat/completions"),
        ("https://api.x.com/v1", "/v1/chat/completions", "https://api.x.com/v1/chat/completions"),
        ("http://h:1/v1/chat/completions", "/v1/chat/completions", "http://h:1/v1/chat/completions"),
        ("http://h:1/generate", "/generate", "http://h:1/generate"),
    ],
)
def test_endpoint_url(base: str, route: str, expected: str) -> None:
    assert endpoint_url(base, route) == expected


def test_open_thought_tail() -> None:
    assert open_thought_tail("<｜Assistant｜><think>\n", "<think>") == "\n"
    assert open_thought_tail("<｜Assistant｜>", "<think>") == ""
    assert open_thought_tail("<think>x", "<think>") == ""


def test_native_client_renders_the_template_and_reads_n_answers(tok_dir: str) -> None:
    tokenizer = PreTrainedTokenizerFast.from_pretrained(tok_dir)
    script = {"2+2?": [Reply("a</think>\\boxed{4}", tokens=5), Reply("cut", finish="length", tokens=64)]}
    server = ScriptedEndpoint(script, decode=lambda ids: tokenizer.decode(ids, skip_special_tokens=False))
    try:
        settings = EndpointSettings(role="reasoning", url=server.url, api="native", tokenizer=tok_dir,
                                    sampling=SamplingSettings(max_tokens=64, temperature=0.6, top_p=0.95, n=2),
                                    system_prompt="Be brief.")
        client = build_client(settings, "Box it.", _policy(), think_token="<think>", end_think_token="</think>")
        client.check_reachable()
        completions = client.complete("2+2?")
        assert [c.text for c in completions] == ["\na</think>\\boxed{4}", "\ncut"]
        assert [(c.finished, c.tokens) for c in completions] == [(True, 5), (False, 64)]
        body = server.requests[-1].body
        assert body["sampling_params"] == {"max_new_tokens": 64, "temperature": 0.6, "top_p": 0.95, "n": 2}
        prompt = tokenizer.decode(body["input_ids"], skip_special_tokens=False)
        assert prompt == "<｜begin▁of▁sentence｜>Be brief.<｜User｜>2+2? Box it.<｜Assistant｜><think>\n"
        assert prompt.count("<｜begin▁of▁sentence｜>") == 1  # input_ids, so no second BOS
    finally:
        server.close()


def test_openai_client_rebuilds_reasoning_content_and_keeps_plain_content() -> None:
    script = {
        "split": Reply("The answer is \\boxed{4}.", reasoning="Two and two.\n", tokens=9),
        "plain": Reply("thinking</think>\\boxed{4}", finish="length"),
    }
    server = ScriptedEndpoint(script)
    try:
        settings = EndpointSettings(role="instruct", url=server.url + "/v1", api="openai", model="qwen",
                                    sampling=SAMPLING)
        client = build_client(settings, "", _policy(), think_token="<think>", end_think_token="</think>")
        client.check_reachable()
        (split,) = client.complete("split")
        assert split.text == "\nTwo and two.\n</think>\n\nThe answer is \\boxed{4}." and split.finished and split.tokens == 9
        (plain,) = client.complete("plain")
        assert plain.text == "thinking</think>\\boxed{4}" and not plain.finished
        body = server.requests[-1].body
        assert body == {"model": "qwen", "messages": [{"role": "user", "content": "plain"}], "max_tokens": 64,
                        "temperature": 0.6, "top_p": 0.95, "stream": False}
        assert server.requests[-1].path == "/v1/chat/completions"
    finally:
        server.close()

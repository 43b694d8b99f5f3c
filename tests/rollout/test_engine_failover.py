"""`SGLangEngine` over several servers (in this process, real HTTP): calls spread over every
engine, a dead engine's calls finish elsewhere, a failing call is retried up to the budget and
then fails the step naming every try, and a refused request fails at once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from megathink_fixtures.rollout_servers import load_backend, running_server, save_tiny_model
from megathink.config.rollout import SGLangConfig
from megathink.rollout import LocalEngine, RolloutRequest, SamplingParams
from megathink.rollout.http_client import RolloutServerError
from megathink.rollout.http_server import RolloutHTTPServer
from megathink.rollout.sglang_engine import SGLangEngine

REQUESTS = [RolloutRequest([10 + i, 11], group_id=i) for i in range(6)]
PARAMS = SamplingParams(temperature=1.0, max_new_tokens=6, n=4, seed=2)


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    return save_tiny_model(tmp_path / "model")


@pytest.fixture()
def servers(model_dir: Path) -> Iterator[list[RolloutHTTPServer]]:
    with ExitStack() as stack:
        yield [stack.enter_context(running_server(model_dir, pause_wait_s=0.05)) for _ in range(3)]


def _engine(model_dir: Path, urls: list[str], tmp_path: Path, **cfg: object) -> SGLangEngine:
    backend, bundle = load_backend(model_dir)
    settings = dict(urls=urls, sequences_per_request=2, retry_backoff_s=0.01, max_retries=2, health_timeout_s=5.0)
    settings.update(cfg)
    return SGLangEngine(SGLangConfig(**settings), work_dir=tmp_path, hf_config=backend.model.config, serve_dir=str(model_dir))


def _want(model_dir: Path) -> list:
    backend, bundle = load_backend(model_dir)
    return [(s.response_ids, s.finish_reason) for s in LocalEngine(backend, pad_id=bundle.pad_id).generate(REQUESTS, PARAMS)]


def test_calls_spread_over_every_engine(model_dir: Path, servers: list[RolloutHTTPServer], tmp_path: Path) -> None:
    engine = _engine(model_dir, [s.url for s in servers], tmp_path)
    assert [(s.response_ids, s.finish_reason) for s in engine.generate(REQUESTS, PARAMS)] == _want(model_dir)
    metrics = engine.drain_metrics()
    assert all(metrics[f"rollout/engine{i}/tokens_per_s"] > 0 for i in range(3)), metrics
    assert "rollout/retries" not in metrics


def test_a_dead_engines_calls_finish_on_the_others(model_dir: Path, servers: list[RolloutHTTPServer], tmp_path: Path) -> None:
    engine = _engine(model_dir, [s.url for s in servers[:2]], tmp_path)
    servers[0].shutdown()
    servers[0].server_close()
    for _ in range(2):  # the second call tries to revive it first (attached: still down) and carries on
        assert [(s.response_ids, s.finish_reason) for s in engine.generate(REQUESTS, PARAMS)] == _want(model_dir)
    assert [s.healthy for s in engine.pool.slots] == [False, True] and servers[0].url in engine.pool.slots[0].last_error
    assert engine.drain_metrics()["rollout/retries"] >= 1


def test_no_engine_left_fails_naming_every_engine(model_dir: Path, servers: list[RolloutHTTPServer], tmp_path: Path) -> None:
    engine = _engine(model_dir, [s.url for s in servers[:2]], tmp_path)
    for server in servers[:2]:
        server.shutdown()
        server.server_close()
    with pytest.raises(RolloutServerError) as err:
        engine.generate(REQUESTS, PARAMS)
    assert servers[0].url in str(err.value) and servers[1].url in str(err.value)


def test_a_failing_call_is_retried_up_to_the_budget(model_dir: Path, servers: list[RolloutHTTPServer], tmp_path: Path) -> None:
    """A paused server answers 503 (it looks busy): each try fails, the engine is probed back to
    health, and after max_retries the step fails listing every try; no partial batch."""
    engine = _engine(model_dir, [servers[0].url], tmp_path, max_retries=2)
    servers[0].served.pause()
    with pytest.raises(RolloutServerError, match=r"failed on all 3 tries.*no partial batch") as err:
        engine.generate(REQUESTS, PARAMS)
    assert str(err.value).count("answered 503") == 3
    servers[0].served.resume()
    assert len(engine.generate(REQUESTS, PARAMS)) == len(REQUESTS) * PARAMS.n  # back once it answers


def test_a_refused_request_fails_at_once(model_dir: Path, servers: list[RolloutHTTPServer], tmp_path: Path) -> None:
    engine = _engine(model_dir, [s.url for s in servers[:2]], tmp_path)
    with pytest.raises(RolloutServerError, match=r"refused /generate call .*input_ids\[0\]\[1\] = 500"):
        engine.generate([RolloutRequest([10, 500], group_id=0)], SamplingParams(max_new_tokens=2))
    assert all(s.healthy for s in engine.pool.slots) and "rollout/retries" not in engine.drain_metrics()

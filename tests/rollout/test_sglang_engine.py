"""`SGLangEngine` with launched `megathink serve` processes: equality with the in-process engine,
an engine killed mid-rollout (the step completes on the other and the dead one is restarted),
start-up failures named with the URL and the log, and the servers stopped on close.

Every server here binds 127.0.0.1 on a free port and is stopped by the engine's `close()` (the
fixtures use it as a context manager; an `atexit` hook is the last resort).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from megathink_fixtures.rollout_servers import CPU_SERVE, load_backend, running_server, save_tiny_model
from megathink.config.rollout import SGLangConfig
from megathink.rollout import LocalEngine, RolloutEngine, RolloutRequest, SamplingParams
from megathink.rollout.http_client import RolloutServerError
from megathink.rollout.sglang_engine import SGLangEngine

REQUESTS = [
    RolloutRequest([10, 11, 12], group_id=0, forced_prefix=[5, 20]),
    RolloutRequest([13, 14, 15, 16], group_id=1, max_new_tokens=4),
    RolloutRequest([17], group_id=2, forced_prefix=[4]),
    RolloutRequest([18, 19], group_id=3),
]


def _key(samples: list) -> list:
    return [(s.group_id, s.sample_index, s.prompt_ids, s.response_ids, s.forced, s.finish_reason, s.weight_version) for s in samples]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("sglang_engine") / "model")


@pytest.fixture(scope="module")
def launched(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SGLangEngine]:
    backend, bundle = load_backend(model_dir)
    cfg = SGLangConfig(launch_command=CPU_SERVE, num_engines=2, base_port=0, sequences_per_request=4,
                       health_timeout_s=120.0, retry_backoff_s=0.1, max_retries=3)
    work = tmp_path_factory.mktemp("work")
    with SGLangEngine(cfg, work_dir=work, hf_config=backend.model.config, tokenizer=bundle.tokenizer,
                      serve_dir=str(model_dir), batch_size=8) as engine:
        yield engine
    for slot in engine.pool.slots:  # close() stopped them
        assert not slot.launched.running


@pytest.mark.parametrize("params", [
    SamplingParams(temperature=1.0, max_new_tokens=10, n=3, seed=5, stop_token_ids=tuple(range(30, 40))),
    SamplingParams(temperature=0.6, top_p=0.8, top_k=12, max_new_tokens=6, n=2, seed=9, stop_token_ids=(0,)),
    SamplingParams(temperature=0.0, max_new_tokens=5, n=1),
])
def test_samples_equal_the_local_engine(launched: SGLangEngine, model_dir: Path, params: SamplingParams) -> None:
    backend, bundle = load_backend(model_dir)
    assert isinstance(launched, RolloutEngine)
    want = LocalEngine(backend, pad_id=bundle.pad_id, batch_size=7).generate(REQUESTS, params)
    got = launched.generate(REQUESTS, params)
    assert _key(got) == _key(want)
    for g, w in zip(got, want):
        assert g.logprobs == pytest.approx(w.logprobs, abs=1e-5)
    assert len(launched.urls) == 2 and launched.drain_metrics()["rollout/generate_s"] > 0


def test_an_engine_killed_mid_rollout_is_replaced(launched: SGLangEngine, model_dir: Path) -> None:
    backend, bundle = load_backend(model_dir)
    params = SamplingParams(temperature=1.0, max_new_tokens=48, n=8, seed=3)
    requests = [RolloutRequest([10 + i, 11], group_id=i) for i in range(8)]
    want = LocalEngine(backend, pad_id=bundle.pad_id).generate(requests, params)
    victim = launched.pool.slots[0].launched
    assert victim is not None and victim.running
    killer = threading.Timer(0.5, lambda: os.killpg(victim.process.pid, signal.SIGKILL))
    killer.start()
    got = launched.generate(requests, params)  # 16 calls of 4 sequences; engine 0 dies during them
    killer.join()
    assert _key(got) == _key(want)  # every sample, none lost or duplicated
    metrics = launched.drain_metrics()
    if metrics.get("rollout/retries", 0) == 0:  # the kill landed after engine 0's last call: the next call finds it dead
        got = launched.generate(requests[:2], params)
        assert _key(got) == _key(want[:16]) and launched.drain_metrics().get("rollout/retries", 0) >= 1
    launched.generate(requests[:1], SamplingParams(max_new_tokens=2))  # revives the dead engine before sampling
    assert victim.running and victim.starts == 2
    log = victim.log_path.read_text()
    assert "starting engine 0" in log and "POST /generate -> 200" in log  # one debug line per request


def test_an_attached_engine_that_dies_fails_the_step_clearly(model_dir: Path, tmp_path: Path) -> None:
    backend, _ = load_backend(model_dir)
    with running_server(model_dir) as srv:
        url = srv.url
        engine = SGLangEngine(SGLangConfig(urls=[url], max_retries=1, retry_backoff_s=0.0), work_dir=tmp_path,
                              hf_config=backend.model.config, serve_dir=str(model_dir))
    with pytest.raises(RolloutServerError) as err:  # the server is gone; attached engines are never restarted
        engine.generate(REQUESTS, SamplingParams(max_new_tokens=3))
    message = str(err.value)
    assert url in message and ("no partial batch" in message or "none could be revived" in message)


def test_start_up_failures_name_the_url_and_the_log(model_dir: Path, tmp_path: Path) -> None:
    backend, _ = load_backend(model_dir)

    def start(command: str, timeout: float) -> str:
        cfg = SGLangConfig(launch_command=command, num_engines=1, base_port=0, health_timeout_s=timeout)
        with pytest.raises(RolloutServerError) as err:
            SGLangEngine(cfg, work_dir=tmp_path, hf_config=backend.model.config, serve_dir=str(model_dir))
        return str(err.value)

    crashed = start("{python} -c \"import sys; print('no GPU here'); sys.exit(3)\" {model_path} {port}", 60.0)
    assert "exited with status 3 before answering /health" in crashed and "engine0.log" in crashed and "no GPU here" in crashed
    started = time.monotonic()
    silent = start("{python} -c \"import time; time.sleep(60)\" {model_path} {port}", 1.5)
    assert "did not answer /health within 2 s" in silent and "http://127.0.0.1:" in silent and "engine0.log" in silent
    assert time.monotonic() - started < 30  # the sleeping process was stopped, not waited for
    missing = start("no-such-program-xyz {model_path} {port}", 5.0)
    assert "cannot run 'no-such-program-xyz'" in missing

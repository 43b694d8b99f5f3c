"""Weight folders for disk sync: atomic HF layout, tied embeddings, shards, pruning; and the
SGLang engine's disk sync end to end against servers in this process: after a sync the served
model's outputs change, equal the in-process engine's on the new weights, and carry the version."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import torch

from megathink_fixtures.rollout_servers import load_backend, running_server, save_tiny_model
from megathink.config.rollout import SGLangConfig
from megathink.rollout import LocalEngine, RolloutRequest, SamplingParams
from megathink.rollout.http_server import RolloutHTTPServer
from megathink.rollout.served_model import load_model_dir
from megathink.rollout.sglang_engine import SGLangEngine
from megathink.rollout.weight_sync_disk import MARKER, WeightFolderWriter, is_global_rank_zero

REQUESTS = [
    RolloutRequest([10, 11, 12], group_id=0, forced_prefix=[5, 20]),
    RolloutRequest([13, 14], group_id=1, max_new_tokens=4),
    RolloutRequest([15], group_id=2),
]
PARAMS = SamplingParams(temperature=1.0, max_new_tokens=8, n=3, seed=11, stop_token_ids=tuple(range(30, 38)))


def _key(samples: list) -> list:
    return [(s.group_id, s.sample_index, s.response_ids, s.forced, s.finish_reason) for s in samples]


def test_writer_writes_a_loadable_hf_folder_atomically(tmp_path: Path) -> None:
    backend, bundle = load_backend(save_tiny_model(tmp_path / "start"))
    writer = WeightFolderWriter(tmp_path / "sync", backend.model.config, bundle.tokenizer, keep=2)
    with torch.no_grad():
        backend.model.model.norm.weight.add_(1.0)
    folder = writer.write(backend.state_dict(), 1)
    assert folder.name == "v00000001" and (folder / "config.json").is_file() and (folder / MARKER).is_file()
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    assert not [p for p in (tmp_path / "sync").iterdir() if p.name.startswith(".")]  # no temporary folder left
    loaded = load_model_dir(str(folder), dtype="auto", device=torch.device("cpu"))
    for name, tensor in backend.model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    for version in (2, 3, 4):
        writer.write(backend.state_dict(), version)
    assert sorted(p.name for p in (tmp_path / "sync").iterdir()) == ["v00000003", "v00000004"]
    assert is_global_rank_zero()


def test_writer_shards_large_states(tmp_path: Path) -> None:
    backend, _ = load_backend(save_tiny_model(tmp_path / "start"))
    folder = WeightFolderWriter(tmp_path / "sync", backend.model.config, max_shard_size="8KB").write(backend.state_dict(), 0)
    assert (folder / "model.safetensors.index.json").is_file() and len(list(folder.glob("model-*.safetensors"))) > 1
    loaded = load_model_dir(str(folder), dtype="auto", device=torch.device("cpu"))
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in backend.model.state_dict().items())


@pytest.fixture()
def two_servers(tmp_path: Path) -> Iterator[tuple[Path, list[RolloutHTTPServer]]]:
    model_dir = save_tiny_model(tmp_path / "start")
    with ExitStack() as stack:
        servers = [stack.enter_context(running_server(model_dir, batch_size=4)) for _ in range(2)]
        yield model_dir, servers


def test_engine_samples_equal_the_local_engine_and_follow_disk_syncs(two_servers, tmp_path: Path, monkeypatch) -> None:
    model_dir, servers = two_servers
    backend, bundle = load_backend(model_dir)
    cfg = SGLangConfig(urls=[s.url for s in servers], sequences_per_request=2, sync_dir=str(tmp_path / "sync"))
    local = LocalEngine(backend, pad_id=bundle.pad_id)
    with SGLangEngine(cfg, work_dir=tmp_path, hf_config=backend.model.config, tokenizer=bundle.tokenizer, serve_dir=str(model_dir)) as engine:
        first = engine.generate(REQUESTS, PARAMS)
        want = local.generate(REQUESTS, PARAMS)
        assert _key(first) == _key(want) and {s.weight_version for s in first} == {0}
        for got, ref in zip(first, want):
            assert got.logprobs == pytest.approx(ref.logprobs, abs=1e-5)
        metrics = engine.drain_metrics()
        assert metrics["rollout/tokens_per_s"] > 0 and "rollout/engine1/tokens_per_s" in metrics and "rollout/queue_s" in metrics
        with torch.no_grad():  # "an optimizer step"
            for p in backend.model.parameters():
                p.add_(0.3 * torch.randn_like(p))
        assert engine.sync_weights(backend) == 1 and engine.weight_version == 1
        assert (tmp_path / "sync" / "v00000001" / "config.json").is_file()
        second = engine.generate(REQUESTS, PARAMS)
        assert _key(second) != _key(first)  # the served model's outputs changed ...
        assert _key(second) == _key(local.generate(REQUESTS, PARAMS))  # ... to exactly the trained policy's
        assert {s.weight_version for s in second} == {1}
        assert {srv.served.weight_version for srv in servers} == {"1"}
        metrics = engine.drain_metrics()
        assert metrics["rollout/weight_sync_s"] > 0 and metrics["rollout/weight_write_s"] > 0
        assert engine.drain_metrics() == {}


def test_an_engine_restarted_behind_our_back_is_resynced(two_servers, tmp_path: Path) -> None:
    """An attached server that comes back on its start weights answers with another weight
    version; the engine notices, reloads the newest folder into it and retries."""
    model_dir, servers = two_servers
    backend, bundle = load_backend(model_dir)
    cfg = SGLangConfig(urls=[servers[0].url], sequences_per_request=3, retry_backoff_s=0.0)
    with SGLangEngine(cfg, work_dir=tmp_path, hf_config=backend.model.config, tokenizer=bundle.tokenizer, serve_dir=str(model_dir)) as engine:
        with torch.no_grad():
            backend.model.model.norm.weight.mul_(2.0)
        engine.sync_weights(backend)
        servers[0].served.update_from_disk(str(model_dir), "default")  # "restarted" on the start weights
        samples = engine.generate(REQUESTS, PARAMS)
        assert _key(samples) == _key(LocalEngine(backend, pad_id=bundle.pad_id).generate(REQUESTS, PARAMS))
        assert servers[0].served.weight_version == "1" and engine.drain_metrics()["rollout/retries"] >= 1


def test_api_key_comes_from_the_named_environment_variable(tmp_path: Path, monkeypatch) -> None:
    model_dir = save_tiny_model(tmp_path / "start")
    backend, bundle = load_backend(model_dir)
    with running_server(model_dir, api_key="k3y") as srv:
        monkeypatch.setenv("MY_ROLLOUT_KEY", "k3y")
        cfg = SGLangConfig(urls=[srv.url], api_key_env="MY_ROLLOUT_KEY")
        with SGLangEngine(cfg, work_dir=tmp_path, hf_config=backend.model.config, serve_dir=str(model_dir)) as engine:
            assert len(engine.generate(REQUESTS[:1], SamplingParams(max_new_tokens=2))) == 1
        monkeypatch.setenv("MY_ROLLOUT_KEY", "wrong")
        with pytest.raises(Exception, match=r"refused GET /health.*401"):
            SGLangEngine(cfg, work_dir=tmp_path, hf_config=backend.model.config, serve_dir=str(model_dir))

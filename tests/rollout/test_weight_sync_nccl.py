"""The NCCL weight-sync path's bucketing and its SGLang requests, against a mocked HTTP side.

NCCL and SGLang cannot run here (no CUDA): the engines are `FakeEndpoint`s that record the
bodies they get and answer like SGLang, and the broadcaster records what rank 0 would send.
What is checked is what megathink controls: the group geometry (rank offsets, world size from
each engine's tp size), bucket sizes and order, that each bucket's requests go out before its
broadcast, that only the last bucket flushes and sets the version, and that failures and
time-outs end in an error naming the engine instead of a hang.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import torch

from megathink.rollout.http_client import EngineDown, RolloutServerError
from megathink.rollout.weight_sync_nccl import (
    NcclWeightSync, TensorMeta, init_group_bodies, plan_buckets, tensor_meta, update_body,
)


def _meta(name: str, nbytes: int) -> TensorMeta:
    return TensorMeta(name, "float32", [nbytes // 4], nbytes)


def test_buckets_are_consecutive_and_capped() -> None:
    metas = [_meta("a", 40), _meta("b", 40), _meta("c", 30), _meta("big", 500), _meta("d", 10)]
    buckets = plan_buckets(metas, 100)
    assert [[m.name for m in b] for b in buckets] == [["a", "b"], ["c"], ["big"], ["d"]]
    assert [m for b in buckets for m in b] == metas
    assert all(sum(m.nbytes for m in b) <= 100 for b in buckets if len(b) > 1)
    assert plan_buckets([], 100) == []


def test_tensor_meta_uses_sglangs_dtype_names() -> None:
    meta = tensor_meta("w", torch.zeros(3, 4, dtype=torch.bfloat16))
    assert (meta.dtype, meta.shape, meta.nbytes) == ("bfloat16", [3, 4], 24)


def test_group_geometry_counts_every_engines_tp_ranks() -> None:
    bodies = init_group_bodies([2, 1, 4], master_addr="10.0.0.1", master_port=29600)
    assert [b["rank_offset"] for b in bodies] == [1, 3, 4]
    assert {b["world_size"] for b in bodies} == {8} and {b["backend"] for b in bodies} == {"nccl"}
    assert bodies[0]["master_address"] == "10.0.0.1" and bodies[0]["master_port"] == 29600


def test_update_body_flushes_and_versions_only_the_last_bucket() -> None:
    bucket = [_meta("x", 8), _meta("y", 4)]
    middle, last = update_body(bucket, last=False, version=3), update_body(bucket, last=True, version=3)
    assert middle["names"] == ["x", "y"] and middle["shapes"] == [[2], [1]] and middle["dtypes"] == ["float32"] * 2
    assert (middle["flush_cache"], middle["weight_version"]) == (False, None)
    assert (last["flush_cache"], last["weight_version"]) == (True, "3")


class FakeEndpoint:
    """Answers like an SGLang engine; records (path, body) in a shared log."""

    def __init__(self, url: str, tp: int, log: list[tuple[str, str, Any]], fail_on: str = "", hang_on: str = "") -> None:
        self.url, self.tp, self.log = url, tp, log
        self.fail_on, self.hang_on = fail_on, hang_on

    def get(self, path: str, *, timeout: float) -> Any:
        assert path == "/get_server_info"
        return {"tp_size": self.tp}

    def post(self, path: str, body: Any, *, timeout: float) -> Any:
        self.log.append((self.url, path, body))
        if path == self.hang_on:
            time.sleep(timeout + 0.5)
            raise EngineDown(self.url, f"POST {path} timed out")
        if path == self.fail_on:
            return {"success": False, "message": "weights of another shape"}
        return {"success": True, "message": "ok"}


class RecordingBroadcaster:
    def __init__(self, log: list[tuple[str, str, Any]]) -> None:
        self.log = log
        self.closed = False

    def broadcast(self, tensors: list[torch.Tensor], timeout_s: float) -> None:
        self.log.append(("rank0", "broadcast", [tuple(t.shape) for t in tensors]))

    def close(self) -> None:
        self.closed = True


def _sync(endpoints: list[FakeEndpoint], log: list, bucket_bytes: int = 64, timeout: float = 5.0) -> tuple[NcclWeightSync, list]:
    made: list[tuple] = []

    def factory(addr: str, port: int, world: int, group: str, timeout_s: float) -> RecordingBroadcaster:
        made.append((addr, port, world, group))
        return RecordingBroadcaster(log)

    sync = NcclWeightSync(endpoints, master_addr="10.0.0.1", master_port=29600, timeout_s=timeout,  # type: ignore[arg-type]
                          request_timeout_s=timeout, bucket_bytes=bucket_bytes, broadcaster_factory=factory)
    return sync, made


def test_push_sends_each_buckets_requests_then_broadcasts_it() -> None:
    log: list[tuple[str, str, Any]] = []
    engines = [FakeEndpoint("http://e0", 2, log), FakeEndpoint("http://e1", 1, log)]
    sync, made = _sync(engines, log)
    sync.connect()
    assert made == [("10.0.0.1", 29600, 4, "megathink_weight_sync")]
    inits = [body for _, path, body in log if path == "/init_weights_update_group"]
    assert sorted(b["rank_offset"] for b in inits) == [1, 3]
    log.clear()
    state = {"a": torch.zeros(8), "b": torch.zeros(4, 2), "c": torch.zeros(20), "d": torch.zeros(2)}  # 32, 32, 80, 8 bytes
    sync.push(state, version=5)
    broadcasts = [entry for entry in log if entry[1] == "broadcast"]
    assert [shapes for _, _, shapes in broadcasts] == [[(8,), (4, 2)], [(20,)], [(2,)]]
    updates = [(url, body) for url, path, body in log if path == "/update_weights_from_distributed"]
    assert len(updates) == 2 * len(broadcasts)
    for number, (_, _, shapes) in enumerate(broadcasts):
        bodies = [body for url, body in updates[2 * number : 2 * number + 2]]
        assert {len(b["names"]) for b in bodies} == {len(shapes)}
        assert all(b["flush_cache"] == (number == 2) and b["weight_version"] == ("5" if number == 2 else None) for b in bodies)
    position = {id(entry): i for i, entry in enumerate(log)}
    first_update = min(position[id(e)] for e in log if e[1] == "/update_weights_from_distributed")
    assert first_update < position[id(broadcasts[0])]  # the engines are listening before rank 0 sends
    sync.close()
    assert [path for _, path, _ in log[-2:]] == ["/destroy_weights_update_group"] * 2


def test_an_engine_that_fails_to_load_fails_the_sync_naming_it() -> None:
    log: list[tuple[str, str, Any]] = []
    engines = [FakeEndpoint("http://e0", 1, log), FakeEndpoint("http://e1", 1, log, fail_on="/update_weights_from_distributed")]
    sync, _ = _sync(engines, log)
    with pytest.raises(RolloutServerError, match=r"http://e1/update_weights_from_distributed: weights of another shape"):
        sync.push({"a": torch.zeros(4)}, version=1)


def test_an_engine_that_never_answers_times_out_instead_of_hanging() -> None:
    log: list[tuple[str, str, Any]] = []
    engines = [FakeEndpoint("http://e0", 1, log, hang_on="/init_weights_update_group")]
    sync, _ = _sync(engines, log, timeout=0.2)
    started = time.monotonic()
    with pytest.raises(RolloutServerError, match="http://e0"):
        sync.connect()
    assert time.monotonic() - started < 10
    assert threading.active_count() < 50

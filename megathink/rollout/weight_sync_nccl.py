"""Weight sync over NCCL for GPU clusters: trainer rank 0 broadcasts the full HF-named tensors to
every SGLang engine through SGLang's `/init_weights_update_group` and
`/update_weights_from_distributed` API (disaggregated placement only).

Set-up (`connect`): each engine's tensor-parallel size is read from GET /get_server_info
(`tp_size`, default 1); engine k joins a new NCCL group of world size 1 + sum(tp sizes) at rank
offset 1 + the tp sizes of the engines before it, trainer rank 0 being rank 0. The engines'
POSTs block until the group exists, so they run in threads while this process creates its side
(SGLang's own `init_custom_process_group` when sglang is importable here, else the same
rendezvous through torch's `_new_process_group_helper`, the protocol SGLang uses), all within
`timeout_s`.

One sync (`push`): the tensors are cut into buckets of at most `bucket_bytes` (in state-dict
order; a larger tensor is a bucket of its own). For each bucket, every engine gets one
`/update_weights_from_distributed` {names, dtypes, shapes, group_name, flush_cache,
weight_version} (in threads: the call returns once the engine has received and loaded the
bucket), while this process broadcasts the bucket's tensors from rank 0 in the same order; every
collective waits at most `timeout_s`, every HTTP call `request_timeout_s`, so a dead engine fails
the sync with a message instead of hanging it. Only the last bucket flushes the cache and sets
the weight version.

This module cannot run on a machine without CUDA and SGLang: its tests (tests/rollout/
test_weight_sync_nccl.py) check the bucketing, the request bodies and their order against a
mocked HTTP side and a recording broadcaster, not NCCL itself. torch.distributed's NCCL pieces
are imported only when a real group is created.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Optional, Protocol

import torch

from megathink.rollout.http_client import EngineCallError, Endpoint, RolloutServerError

GROUP_NAME = "megathink_weight_sync"


@dataclass(frozen=True)
class TensorMeta:
    name: str
    dtype: str
    """torch dtype name as SGLang reads it: 'bfloat16', 'float32', ..."""
    shape: list[int]
    nbytes: int


def tensor_meta(name: str, tensor: torch.Tensor) -> TensorMeta:
    return TensorMeta(name, str(tensor.dtype).removeprefix("torch."), list(tensor.shape), tensor.numel() * tensor.element_size())


def plan_buckets(metas: Sequence[TensorMeta], bucket_bytes: int) -> list[list[TensorMeta]]:
    """Consecutive runs of `metas` of at most `bucket_bytes` each (a larger tensor alone)."""
    buckets: list[list[TensorMeta]] = []
    current: list[TensorMeta] = []
    size = 0
    for meta in metas:
        if current and size + meta.nbytes > bucket_bytes:
            buckets.append(current)
            current, size = [], 0
        current.append(meta)
        size += meta.nbytes
    if current:
        buckets.append(current)
    return buckets


def init_group_bodies(tp_sizes: Sequence[int], *, master_addr: str, master_port: int, group_name: str = GROUP_NAME) -> list[dict[str, Any]]:
    """The `/init_weights_update_group` body of each engine (trainer = rank 0)."""
    world = 1 + sum(tp_sizes)
    offsets = [1 + sum(tp_sizes[:k]) for k in range(len(tp_sizes))]
    return [
        {"master_address": master_addr, "master_port": master_port, "rank_offset": offset, "world_size": world,
         "group_name": group_name, "backend": "nccl"}
        for offset in offsets
    ]


def update_body(bucket: Sequence[TensorMeta], *, last: bool, version: int, group_name: str = GROUP_NAME) -> dict[str, Any]:
    """The `/update_weights_from_distributed` body of one bucket."""
    return {
        "names": [m.name for m in bucket], "dtypes": [m.dtype for m in bucket], "shapes": [m.shape for m in bucket],
        "group_name": group_name, "flush_cache": last, "weight_version": str(version) if last else None,
    }


class Broadcaster(Protocol):
    """Rank 0's side of the weight group."""

    def broadcast(self, tensors: Sequence[torch.Tensor], timeout_s: float) -> None: ...

    def close(self) -> None: ...


BroadcasterFactory = Callable[[str, int, int, str, float], Broadcaster]
"""(master_addr, master_port, world_size, group_name, timeout_s) -> the trainer's side of the group."""


class NcclWeightSync:
    """Rank 0's NCCL weight channel to the engines at `endpoints`."""

    def __init__(
        self, endpoints: Sequence[Endpoint], *, master_addr: str, master_port: int, timeout_s: float,
        request_timeout_s: float, bucket_bytes: int, broadcaster_factory: Optional[BroadcasterFactory] = None,
    ) -> None:
        self.endpoints = list(endpoints)
        self.master_addr, self.master_port = master_addr, master_port
        self.timeout_s, self.request_timeout_s = timeout_s, request_timeout_s
        self.bucket_bytes = bucket_bytes
        self._factory = broadcaster_factory or nccl_broadcaster
        self._broadcaster: Optional[Broadcaster] = None

    def connect(self) -> None:
        tp_sizes = [self._tp_size(e) for e in self.endpoints]
        bodies = init_group_bodies(tp_sizes, master_addr=self.master_addr, master_port=self.master_port)
        calls = _Calls([(e, "/init_weights_update_group", b) for e, b in zip(self.endpoints, bodies)], self.timeout_s)
        world = bodies[0]["world_size"] if bodies else 1
        try:
            self._broadcaster = self._factory(self.master_addr, self.master_port, world, GROUP_NAME, self.timeout_s)
        except BaseException:
            calls.abandon()  # the engines' calls fail on their own once their side times out
            raise
        calls.finish("joining the NCCL weight group")

    def push(self, state: Mapping[str, torch.Tensor], version: int) -> None:
        if self._broadcaster is None:
            self.connect()
        assert self._broadcaster is not None
        names = list(state)
        buckets = plan_buckets([tensor_meta(n, state[n]) for n in names], self.bucket_bytes)
        for number, bucket in enumerate(buckets):
            body = update_body(bucket, last=number == len(buckets) - 1, version=version)
            calls = _Calls([(e, "/update_weights_from_distributed", body) for e in self.endpoints], self.request_timeout_s)
            try:
                self._broadcaster.broadcast([state[m.name] for m in bucket], self.timeout_s)
            except BaseException:
                calls.abandon()
                raise
            calls.finish(f"weight bucket {number + 1}/{len(buckets)} of version {version}")

    def close(self) -> None:
        for endpoint in self.endpoints:
            try:
                endpoint.post("/destroy_weights_update_group", {"group_name": GROUP_NAME}, timeout=30.0)
            except EngineCallError:
                pass
        if self._broadcaster is not None:
            self._broadcaster.close()
            self._broadcaster = None

    def _tp_size(self, endpoint: Endpoint) -> int:
        try:
            info = endpoint.get("/get_server_info", timeout=30.0)
        except EngineCallError as err:
            raise RolloutServerError(f"NCCL weight sync: cannot read {endpoint.url}/get_server_info: {err}") from err
        size = info.get("tp_size", 1) if isinstance(info, dict) else 1
        return int(size) if isinstance(size, int) and size > 0 else 1


class _Calls:
    """POSTs started in threads now and checked by `finish` (each must answer {"success": true})."""

    def __init__(self, calls: Sequence[tuple[Endpoint, str, dict[str, Any]]], timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.results: list[Any] = [None] * len(calls)
        self.threads = [threading.Thread(target=self._run, args=(i, *call), daemon=True) for i, call in enumerate(calls)]
        self.calls = calls
        for thread in self.threads:
            thread.start()

    def _run(self, index: int, endpoint: Endpoint, path: str, body: dict[str, Any]) -> None:
        try:
            self.results[index] = endpoint.post(path, body, timeout=self.timeout_s)
        except EngineCallError as err:
            self.results[index] = err

    def abandon(self) -> None:
        """Stop caring about the calls (daemon threads; their sockets time out on their own)."""
        self.threads = []

    def finish(self, what: str) -> None:
        for thread in self.threads:
            thread.join(self.timeout_s + 5.0)
        problems = []
        for (endpoint, path, _), thread, result in zip(self.calls, self.threads, self.results):
            if thread.is_alive():
                problems.append(f"{endpoint.url}{path}: no answer within {self.timeout_s:.0f} s")
            elif isinstance(result, Exception):
                problems.append(str(result))
            elif not (isinstance(result, dict) and result.get("success")):
                message = result.get("message") if isinstance(result, dict) else result
                problems.append(f"{endpoint.url}{path}: {message}")
        if problems:
            raise RolloutServerError(f"NCCL weight sync failed during {what}: " + "; ".join(problems))


class _NcclGroup:
    """Rank 0 of a process group that includes the engines (real NCCL; needs CUDA)."""

    def __init__(self, group: Any) -> None:
        self.group = group

    def broadcast(self, tensors: Sequence[torch.Tensor], timeout_s: float) -> None:
        import torch.distributed as dist

        works = []
        for tensor in tensors:
            data = tensor.detach().to("cuda", non_blocking=True).contiguous()
            works.append((dist.broadcast(data, src=0, group=self.group, async_op=True), data))
        for work, _ in works:
            if not work.wait(timeout=timedelta(seconds=timeout_s)):
                raise RolloutServerError(f"NCCL weight broadcast did not finish within {timeout_s:.0f} s")

    def close(self) -> None:
        import torch.distributed as dist

        dist.destroy_process_group(self.group)


def nccl_broadcaster(master_addr: str, master_port: int, world_size: int, group_name: str, timeout_s: float) -> Broadcaster:
    """Create rank 0 of the engines' weight group (the same rendezvous SGLang's engines run)."""
    if not torch.cuda.is_available():
        raise RolloutServerError("rollout.sglang.weight_sync = 'nccl' needs CUDA on trainer rank 0; use weight_sync=disk here.")
    timeout = timedelta(seconds=timeout_s)
    init_method = f"tcp://{master_addr}:{master_port}"
    try:
        from sglang.srt.utils import init_custom_process_group  # the engines' own helper: same store keys
    except ImportError:
        init_custom_process_group = None
    if init_custom_process_group is not None:
        group = init_custom_process_group(
            backend="nccl", init_method=init_method, timeout=timeout, world_size=world_size, rank=0, group_name=group_name,
        )
        return _NcclGroup(group)
    import torch.distributed as dist
    from torch.distributed import distributed_c10d as c10d

    store, _, _ = next(dist.rendezvous(init_method, 0, world_size, timeout=timeout))
    store.set_timeout(timeout)
    options_name = "backend_options" if "backend_options" in inspect.signature(c10d._new_process_group_helper).parameters else "pg_options"
    group, _ = c10d._new_process_group_helper(
        world_size, 0, [], "nccl", c10d.PrefixStore(group_name, store), group_name=group_name, timeout=timeout,
        **{options_name: None},
    )
    c10d._world.pg_group_ranks[group] = {i: i for i in range(world_size)}
    return _NcclGroup(group)

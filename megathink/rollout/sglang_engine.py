"""`SGLangEngine`: the `RolloutEngine` over HTTP servers speaking SGLang's native API: SGLang
itself on GPUs (`python -m sglang.launch_server`), or `megathink serve` on CPU.

Engines: launched from `rollout.sglang.launch_command` (each in its own session, its log under
`<work_dir>/rollout_servers/`, stopped on `close()`, on leaving a `with` block, and at exit) or
attached by URL (`rollout.sglang.urls`; never stopped or restarted). Start-up waits for every
engine's /health within `health_timeout_s`. `generate` cuts the sequences into /generate calls
of `sequences_per_request` (see `sglang_payload`: one input per sequence with its own seed, so
the samples equal `LocalEngine`'s for the same requests and seeds), spreads them over the
healthy engines and retries a failed call elsewhere (`chunk_dispatch`); a dead launched engine
is restarted on the newest weights before the next call; an engine whose answers carry another
weight version than the last sync gave it is re-synced (disk) or taken out.

Weights: the engines start on `serve_dir` (model.path or the stage's start folder), or, when
there is none (a random or resized model), on version 0 written from `initial_weights`.
`sync_weights(source)` takes `hf_state_dict(source)` on every rank (a collective for a sharded
policy); only global rank 0 writes and talks HTTP: 'disk' writes `<sync_dir>/v<version>`
atomically and has each engine pause, load it (/update_weights_from_disk), flush its cache and
continue; 'nccl' broadcasts (weight_sync_nccl.py). Colocated placement releases the engines'
memory after each rollout and resumes it before the next sync or rollout. Every `Sample` records
the engine's `weight_version` at the time it was generated. Other ranks only take part in the
weight export; `generate` runs on rank 0 (the trainer broadcasts the batch).

Metrics (`drain_metrics`): rollout/tokens_per_s, rollout/generate_s, rollout/engine<i>/tokens_per_s
(its share of the generated tokens over the generate wall time), rollout/queue_s and
rollout/queue_s_max (seconds requests waited inside the servers, where they report it),
rollout/weight_sync_s, rollout/weight_write_s, rollout/retries, rollout/engine_restarts. The
trainer-vs-engine log-prob gap is not computed here (it needs the trainer's forward pass): the
RL loop logs it as `logprob_diff`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from megathink.config.rollout import SGLangConfig
from megathink.config.validation import fail
from megathink.rollout.chunk_dispatch import run_chunks
from megathink.rollout.engine_pool import EnginePool, EngineSlot
from megathink.rollout.http_client import EngineCallError, EngineDown, EngineRefused, Endpoint, RolloutServerError
from megathink.rollout.protocol import WeightSource, hf_state_dict
from megathink.rollout.server_launcher import PYTHON, LaunchedServer, engine_env, free_port, render_command
from megathink.rollout.sglang_payload import SeqKey, expand, generate_body, parse_samples
from megathink.rollout.types import RolloutRequest, Sample, SamplingParams
from megathink.rollout.weight_sync_disk import WeightFolderWriter, is_global_rank_zero
from megathink.rollout.weight_sync_nccl import NcclWeightSync

log = logging.getLogger(__name__)

SERVER_LOG_DIR = "rollout_servers"
WEIGHTS_DIR = "rollout_weights"


class StaleEngine(EngineDown):
    """The engine answered with weights of another version than it was given."""


class SGLangEngine:
    """Rollouts from SGLang-protocol servers (implements `RolloutEngine`; a context manager)."""

    def __init__(
        self, cfg: SGLangConfig, *, work_dir: Path, hf_config: Any, tokenizer: Any = None, serve_dir: Optional[str] = None,
        initial_weights: Optional[WeightSource] = None, batch_size: int = 256, load_attached: bool = False,
    ) -> None:
        """load_attached: have attached engines (`cfg.urls`) load `serve_dir` at start, so they serve
        exactly that folder (evaluations and pre-sampling name the model they evaluate); by default
        attached engines are taken to serve it already (a run's engines start on model.path)."""
        if serve_dir is None and initial_weights is None:
            fail("SGLangEngine serve_dir", None, "give the HF folder the engines start on, or initial_weights to write one")
        self.cfg = cfg
        self.work_dir = Path(work_dir)
        self._version = 0
        self._rank0 = is_global_rank_zero()
        self._api_key = os.environ.get(cfg.api_key_env) or None
        self._writer = WeightFolderWriter(Path(cfg.sync_dir) if cfg.sync_dir else self.work_dir / WEIGHTS_DIR, hf_config, tokenizer)
        self._batch_size = batch_size
        self._load_attached = load_attached
        self._lock = threading.Lock()
        self._reset_metrics()
        self.pool: Optional[EnginePool] = None
        self._nccl: Optional[NcclWeightSync] = None
        self._launching: list[EngineSlot] = []
        state = hf_state_dict(initial_weights) if serve_dir is None else None  # type: ignore[arg-type]  # every rank
        if not self._rank0:
            return
        self._serving = str(self._writer.write(state, 0)) if state is not None else str(serve_dir)
        slots = self._attach() if cfg.urls else self._launch()
        self.pool = EnginePool(slots, self._revive_slot)
        try:
            if cfg.urls and (state is not None or load_attached):
                self._load_everywhere(self._serving, 0)
            if cfg.weight_sync == "nccl":
                self._nccl = NcclWeightSync(
                    [s.endpoint for s in slots], master_addr=cfg.nccl_master_addr or _this_host(),
                    master_port=cfg.nccl_master_port or free_port("0.0.0.0"), timeout_s=cfg.nccl_timeout_s,
                    request_timeout_s=cfg.request_timeout_s, bucket_bytes=cfg.nccl_bucket_mb << 20,
                )
                self._nccl.connect()
        except BaseException:
            self.close()
            raise

    # --- RolloutEngine -------------------------------------------------------------------
    @property
    def weight_version(self) -> int:
        return self._version

    def generate(self, requests: Sequence[RolloutRequest], params: SamplingParams) -> list[Sample]:
        """`params.n` samples per request, grouped in request order (rank 0 only)."""
        pool = self._require_pool("generate")
        _check(requests, params)
        sequences = expand(requests, params)
        if not sequences:
            return []
        pool.revive()
        self._set_memory(released=False)
        size = self.cfg.sequences_per_request
        chunks = [sequences[i : i + size] for i in range(0, len(sequences), size)]
        started = time.perf_counter()
        parts = run_chunks(
            pool, chunks, lambda slot, chunk: self._generate_chunk(slot, requests, chunk, params),
            max_retries=self.cfg.max_retries, backoff_s=self.cfg.retry_backoff_s,
        )
        with self._lock:
            self._generate_s += time.perf_counter() - started
        if self.cfg.placement == "colocated":
            self._set_memory(released=True)
        return [sample for part in parts for sample in part]

    def sync_weights(self, backend_or_state: WeightSource) -> int:
        """Push these weights to every engine; returns the new weight version."""
        started = time.perf_counter()
        state = hf_state_dict(backend_or_state)  # every rank: a collective for a sharded policy
        version = self._version + 1
        if self._rank0:
            self._set_memory(released=False)
            if self._nccl is not None:
                self._nccl.push(state, version)
                for slot in self._require_pool("sync_weights").healthy():
                    slot.expected_version = str(version)
            else:
                folder = str(self._writer.write(state, version))
                self._serving = folder
                self._load_everywhere(folder, version)
                self._write_s += self._writer.last_write_s
        self._version = version
        self._sync_s += time.perf_counter() - started
        self._syncs += 1
        return version

    def drain_metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        with self._lock:
            if self._generate_s > 0:
                out["rollout/tokens_per_s"] = self._tokens / self._generate_s
                out["rollout/generate_s"] = self._generate_s
                for slot in self.pool.slots if self.pool is not None else []:
                    out[f"rollout/engine{slot.index}/tokens_per_s"] = slot.tokens / self._generate_s
                    slot.tokens = 0
                if self._queue:
                    out["rollout/queue_s"] = sum(self._queue) / len(self._queue)
                    out["rollout/queue_s_max"] = max(self._queue)
            if self._syncs:
                out["rollout/weight_sync_s"] = self._sync_s
                if self._write_s:
                    out["rollout/weight_write_s"] = self._write_s
            if self.pool is not None:
                if self.pool.retries:
                    out["rollout/retries"] = float(self.pool.retries)
                if self.pool.restarts:
                    out["rollout/engine_restarts"] = float(self.pool.restarts)
                self.pool.retries = self.pool.restarts = 0
            self._reset_metrics()
        return out

    # --- lifetime --------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the servers this engine launched (attached ones keep running); safe to call twice."""
        if self._nccl is not None:
            self._nccl.close()
            self._nccl = None
        for slot in self.pool.slots if self.pool is not None else self._launching:
            if slot.launched is not None:
                slot.launched.stop()

    def __enter__(self) -> "SGLangEngine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def urls(self) -> list[str]:
        return [s.endpoint.url for s in self.pool.slots] if self.pool is not None else []

    # --- internals -------------------------------------------------------------------------
    def _reset_metrics(self) -> None:
        self._tokens = 0
        self._generate_s = 0.0
        self._queue: list[float] = []
        self._sync_s = self._write_s = 0.0
        self._syncs = 0

    def _require_pool(self, what: str) -> EnginePool:
        if self.pool is None:
            raise RolloutServerError(
                f"SGLangEngine.{what} runs on global rank 0 only (this is rank {_rank()}); the trainer broadcasts its results."
            )
        return self.pool

    def _generate_chunk(self, slot: EngineSlot, requests: Sequence[RolloutRequest], chunk: list[SeqKey], params: SamplingParams) -> list[Sample]:
        body = generate_body(requests, chunk, params)
        answer = slot.endpoint.post("/generate", body, timeout=self.cfg.request_timeout_s)
        samples, metas = parse_samples(slot.endpoint.url, answer, requests, chunk, params, self._version)
        if slot.expected_version is not None:
            got = {str(m.get("weight_version")) for m in metas}
            if got != {slot.expected_version}:
                raise StaleEngine(slot.endpoint.url, f"answered with weight_version {sorted(got)}, expected {slot.expected_version!r}")
        with self._lock:
            tokens = sum(s.num_generated for s in samples)
            self._tokens += tokens
            slot.tokens += tokens
            self._queue += [float(m["queue_time"]) for m in metas if isinstance(m.get("queue_time"), (int, float))]
        return samples

    def _launch(self) -> list[EngineSlot]:
        cfg = self.cfg
        reach = "127.0.0.1" if cfg.host in ("0.0.0.0", "::") else cfg.host
        for index in range(cfg.num_engines):
            port = cfg.base_port + index if cfg.base_port else free_port(reach)
            endpoint = Endpoint(f"http://{reach}:{port}", self._api_key)
            env = engine_env(os.environ, index=index, gpus_per_engine=cfg.gpus_per_engine, first_gpu=cfg.first_gpu)
            server = LaunchedServer(index, self._command(index, port), endpoint, self.work_dir / SERVER_LOG_DIR / f"engine{index}.log", env)
            self._launching.append(EngineSlot(index, endpoint, launched=server))
        try:
            for slot in self._launching:
                assert slot.launched is not None
                slot.launched.start()
            for slot in self._launching:
                assert slot.launched is not None
                slot.launched.wait_healthy(cfg.health_timeout_s)
        except BaseException:
            for slot in self._launching:
                assert slot.launched is not None
                slot.launched.stop(grace_s=5.0)
            raise
        log.info("launched %d rollout engine(s): %s", len(self._launching), ", ".join(s.endpoint.url for s in self._launching))
        return self._launching

    def _command(self, index: int, port: int) -> list[str]:
        values = dict(python=PYTHON, model_path=self._serving, host=self.cfg.host, port=port, index=index,
                      batch_size=self._batch_size, api_key=self._api_key or "")
        return render_command(self.cfg.launch_command, values)

    def _attach(self) -> list[EngineSlot]:
        slots = [EngineSlot(i, Endpoint(url.rstrip("/"), self._api_key)) for i, url in enumerate(self.cfg.urls)]
        deadline = time.monotonic() + self.cfg.health_timeout_s
        for slot in slots:
            while True:
                try:
                    slot.endpoint.get("/health", timeout=10.0)
                    break
                except EngineRefused as err:
                    raise RolloutServerError(f"rollout engine {slot.endpoint.url} refused GET /health: {err} (rollout.sglang.api_key_env?)") from err
                except EngineCallError as err:
                    if time.monotonic() > deadline:
                        raise RolloutServerError(
                            f"rollout engine {slot.endpoint.url} (rollout.sglang.urls[{slot.index}]) did not answer /health "
                            f"within {self.cfg.health_timeout_s:.0f} s: {err}"
                        ) from err
                    time.sleep(0.5)
        return slots

    def _revive_slot(self, slot: EngineSlot) -> None:
        if slot.launched is not None:
            if self._nccl is not None and self._version > 0:
                raise RolloutServerError(
                    f"{slot.describe()} died; with rollout.sglang.weight_sync = 'nccl' a restarted engine would serve "
                    "stale weights and cannot rejoin the NCCL group: use weight_sync=disk for restarts"
                )
            port = int(slot.endpoint.url.rsplit(":", 1)[1])
            slot.launched.restart(self._command(slot.index, port), self.cfg.health_timeout_s)
            slot.expected_version, slot.released = None, False
            return
        try:
            slot.endpoint.get("/health", timeout=10.0)
        except EngineCallError as err:
            raise RolloutServerError(f"{slot.describe()} is still down: {err}") from err
        if self._nccl is None and (self._version > 0 or self._load_attached or Path(self._serving).parent == self._writer.root):
            self._load(slot, self._serving, self._version)

    def _load_everywhere(self, folder: str, version: int) -> None:
        pool = self._require_pool("sync_weights")
        slots = pool.healthy()
        errors: list[Optional[BaseException]] = [None] * len(slots)

        def load(i: int) -> None:
            try:
                self._load(slots[i], folder, version)
            except (EngineDown, RolloutServerError) as err:
                errors[i] = err

        threads = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(len(slots))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for slot, err in zip(slots, errors):
            if isinstance(err, RolloutServerError):
                raise err
            if err is not None:  # unreachable now: it is restarted (or re-synced) on this folder before the next rollout
                pool.mark_down(slot, err)
        if not pool.healthy():
            pool.revive()

    def _load(self, slot: EngineSlot, folder: str, version: int) -> None:
        """Pause, load `folder` as `version`, flush, continue (pause/continue skipped where the server lacks them)."""
        endpoint, timeout = slot.endpoint, self.cfg.request_timeout_s
        _optional_post(endpoint, "/pause_generation", {}, timeout)
        try:
            answer = endpoint.post("/update_weights_from_disk", {"model_path": folder, "weight_version": str(version), "flush_cache": True}, timeout=timeout)
        except EngineRefused as err:
            raise RolloutServerError(
                f"{slot.describe()} could not load weight version {version} from {folder}: {err}; every engine must "
                "see that folder (rollout.sglang.sync_dir on a shared file system)"
            ) from err
        if not (isinstance(answer, dict) and answer.get("success")):
            raise RolloutServerError(f"{slot.describe()} did not load weight version {version} from {folder}: {answer!r}")
        endpoint.post("/flush_cache", {}, timeout=timeout)
        _optional_post(endpoint, "/continue_generation", {}, timeout)
        slot.expected_version = str(version)

    def _set_memory(self, *, released: bool) -> None:
        if self.cfg.placement != "colocated" or self.pool is None:
            return
        path = "/release_memory_occupation" if released else "/resume_memory_occupation"
        for slot in self.pool.healthy():
            if slot.released != released:
                try:
                    slot.endpoint.post(path, {}, timeout=self.cfg.request_timeout_s)
                    slot.released = released
                except EngineCallError as err:
                    self.pool.mark_down(slot, err)


def _optional_post(endpoint: Endpoint, path: str, body: dict[str, Any], timeout: float) -> None:
    try:
        endpoint.post(path, body, timeout=timeout)
    except EngineRefused as err:
        if err.status != 404:  # older SGLang versions lack pause/continue
            raise


def _check(requests: Sequence[RolloutRequest], params: SamplingParams) -> None:
    if not isinstance(params, SamplingParams):
        fail("SGLangEngine.generate params", params, "must be a SamplingParams")
    for index, request in enumerate(requests):
        if not isinstance(request, RolloutRequest):
            fail(f"requests[{index}]", request, "must be a RolloutRequest")


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _this_host() -> str:
    import socket

    return socket.getfqdn()

"""The set of rollout engines a client spreads requests over, and which of them are usable now.

Each `EngineSlot` is one server (launched by megathink or attached by URL) with its in-flight
request count, whether it is healthy, the weight version it must report, and what it produced
since the last metrics drain. `acquire` hands out the healthy engine with the fewest requests in
flight (skipping the one a retry is moving away from when another is healthy); when no engine
is healthy it first tries to revive the dead ones (`revive_slot`: restart a launched engine,
re-probe and re-sync an attached one) and fails with every engine's last error when none comes
back. `revive` is also called between rollout calls, so a dead engine is restarted before the
next step instead of leaving it short of capacity. Thread-safe.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

from megathink.rollout.http_client import Endpoint, RolloutServerError
from megathink.rollout.server_launcher import LaunchedServer

log = logging.getLogger(__name__)


@dataclass(eq=False)
class EngineSlot:
    index: int
    endpoint: Endpoint
    launched: Optional[LaunchedServer] = None
    """The process megathink runs for this engine; None for an attached URL."""
    healthy: bool = True
    inflight: int = 0
    expected_version: Optional[str] = None
    """The `weight_version` its answers must carry; None: not checked (it serves its start weights)."""
    last_error: str = ""
    tokens: int = 0
    """Generated tokens since the last metrics drain."""
    released: bool = False
    """Colocated placement: its GPU memory is released."""

    def describe(self) -> str:
        where = f"log {self.launched.log_path}" if self.launched is not None else "attached"
        return f"engine {self.index} ({self.endpoint.url}, {where})"


class EnginePool:
    def __init__(self, slots: list[EngineSlot], revive_slot: Callable[[EngineSlot], None]) -> None:
        if not slots:
            raise RolloutServerError("the rollout engine has no servers: set rollout.sglang.urls or rollout.sglang.num_engines >= 1")
        self.slots = slots
        self._revive_slot = revive_slot
        self._lock = threading.Lock()
        self._revive_lock = threading.Lock()
        self.retries = 0
        self.restarts = 0

    def healthy(self) -> list[EngineSlot]:
        with self._lock:
            return [s for s in self.slots if s.healthy]

    def acquire(self, avoid: Optional[EngineSlot] = None) -> EngineSlot:
        with self._lock:
            slot = self._pick(avoid)
            if slot is not None:
                slot.inflight += 1
                return slot
        self.revive()
        with self._lock:
            slot = self._pick(avoid)
            if slot is None:
                raise RolloutServerError(
                    "no rollout engine is healthy and none could be revived: "
                    + "; ".join(f"{s.describe()}: {s.last_error or 'unhealthy'}" for s in self.slots)
                )
            slot.inflight += 1
            return slot

    def _pick(self, avoid: Optional[EngineSlot]) -> Optional[EngineSlot]:
        healthy = [s for s in self.slots if s.healthy]
        if avoid is not None and len(healthy) > 1:
            healthy = [s for s in healthy if s is not avoid]
        return min(healthy, key=lambda s: (s.inflight, s.index), default=None)

    def release(self, slot: EngineSlot) -> None:
        with self._lock:
            slot.inflight -= 1

    def mark_down(self, slot: EngineSlot, error: object) -> None:
        with self._lock:
            if slot.healthy:
                log.warning("rollout %s failed, taking it out of rotation: %s", slot.describe(), error)
            slot.healthy = False
            slot.last_error = str(error)
            self.retries += 1

    def revive(self) -> None:
        """Try to bring every unhealthy engine back; the ones that stay down keep their error."""
        with self._revive_lock:
            for slot in [s for s in self.slots if not s.healthy]:
                try:
                    self._revive_slot(slot)
                except RolloutServerError as err:
                    slot.last_error = str(err)
                    log.warning("rollout %s could not be revived: %s", slot.describe(), err)
                    continue
                with self._lock:
                    slot.healthy = True
                    if slot.launched is not None:
                        self.restarts += 1
                log.info("rollout %s is back", slot.describe())

"""Start, watch, restart and stop the rollout servers megathink launches itself.

A `LaunchedServer` runs one command line (`SGLangConfig.launch_command` with its placeholders
filled in: the template is split like a shell would split it first, then each word is formatted,
so a path with spaces stays one argument; nothing runs through a shell) in its own session,
with stdout and stderr appended to its log file. `wait_healthy` polls GET /health until it
answers 200, failing with the URL, the log file and the log's last lines when the process exits
first or the deadline passes. `stop` sends SIGTERM to the server's process group (SGLang starts
scheduler and detokenizer children), then SIGKILL after a grace period. Every server still
running when Python exits is stopped by an `atexit` hook.
"""

from __future__ import annotations

import atexit
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

from megathink.rollout.http_client import EngineCallError, Endpoint, RolloutServerError

PYTHON = sys.executable
"""What `{python}` in a launch command stands for."""
STOP_GRACE_S = 15.0
LOG_TAIL_LINES = 15

_LIVE: set["LaunchedServer"] = set()
_LIVE_LOCK = threading.Lock()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def render_command(template: str, values: Mapping[str, object]) -> list[str]:
    """Split `template` like a shell, then fill each word's `{placeholders}` from `values`."""
    return [word.format(**values) for word in shlex.split(template)]


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    tail = text.strip().splitlines()[-lines:]
    return "\n    ".join(tail) if tail else "(empty log)"


class LaunchedServer:
    """One server process megathink started, reached at `endpoint`."""

    def __init__(self, index: int, command: list[str], endpoint: Endpoint, log_path: Path, env: Mapping[str, str]) -> None:
        self.index = index
        self.command = command
        self.endpoint = endpoint
        self.log_path = Path(log_path)
        self.env = dict(env)
        self.process: Optional[subprocess.Popen[bytes]] = None
        self.starts = 0

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== megathink: starting engine {self.index}: {shlex.join(self.command)}\n".encode())
            log.flush()
            try:
                self.process = subprocess.Popen(
                    self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env=self.env, start_new_session=True,
                )
            except OSError as err:
                raise RolloutServerError(
                    f"rollout engine {self.index}: cannot run {self.command[0]!r} ({err}); check "
                    "rollout.sglang.launch_command."
                ) from err
        self.starts += 1
        with _LIVE_LOCK:
            _LIVE.add(self)

    def exit_code(self) -> Optional[int]:
        return None if self.process is None else self.process.poll()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_healthy(self, deadline_s: float, *, poll_s: float = 0.25) -> None:
        """Return once GET /health answers 200; raise `RolloutServerError` if the process exits or `deadline_s` passes."""
        started = time.monotonic()
        last = "no answer yet"
        while True:
            code = self.exit_code()
            if code is not None:
                raise RolloutServerError(
                    f"rollout engine {self.index} ({self.endpoint.url}) exited with status {code} before answering "
                    f"/health; its log: {self.log_path}; last lines:\n    {log_tail(self.log_path)}"
                )
            try:
                self.endpoint.get("/health", timeout=min(10.0, deadline_s))
                return
            except EngineCallError as err:
                last = str(err)
            if time.monotonic() - started > deadline_s:
                raise RolloutServerError(
                    f"rollout engine {self.index} ({self.endpoint.url}) did not answer /health within {deadline_s:.0f} s "
                    f"(rollout.sglang.health_timeout_s; last try: {last}); its log: {self.log_path}; last lines:\n    "
                    f"{log_tail(self.log_path)}"
                )
            time.sleep(poll_s)

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM to the server's process group, SIGKILL after `grace_s`; safe to call twice."""
        process = self.process
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if process is None or process.poll() is not None:
            return
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait(timeout=grace_s)

    def restart(self, command: list[str], deadline_s: float) -> None:
        """Stop what is left of the process and start `command` (e.g. on newer weights); wait for /health."""
        self.stop(grace_s=5.0)
        self.command = command
        self.start()
        self.wait_healthy(deadline_s)


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(process.pid, sig)  # the server's own session: start_new_session made pid the group id
    except (ProcessLookupError, PermissionError):
        pass


def engine_env(base: Mapping[str, str], *, index: int, gpus_per_engine: int, first_gpu: int) -> dict[str, str]:
    """The environment of engine `index`: `base`, with its own CUDA_VISIBLE_DEVICES when it gets GPUs."""
    env = dict(base)
    if gpus_per_engine > 0:
        first = first_gpu + index * gpus_per_engine
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in range(first, first + gpus_per_engine))
    return env


def _stop_all_at_exit() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE)
    for server in live:
        server.stop(grace_s=5.0)


atexit.register(_stop_all_at_exit)

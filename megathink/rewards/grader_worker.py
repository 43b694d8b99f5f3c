"""One grading worker process of a `GraderPool`: start it, and the loop it runs.

`start_worker` runs a fresh Python (`sys.executable -c`) that takes the parent's `sys.path`,
caps its own address space, warms math-verify up, and then grades `(index, pred, ref)` messages
with `is_equivalent_trusted` over one end of a socket pair, answering `(index, verdict)`.

Why a plain subprocess and not `multiprocessing`'s "spawn": spawn re-imports the parent's main
script in the child, so a user script without an `if __name__ == "__main__":` guard that grades
an answer (the public `is_equivalent` starts a pool behind the caller's back) would start
workers recursively. A `-c` child imports only this module. The parent end is a
`multiprocessing.connection.Connection`, so the pool waits on many workers with
`multiprocessing.connection.wait` as before.

The worker ignores SIGINT (the pool decides when it stops) and exits on EOF (its parent is
gone). So that an answer that never finishes cannot outlive a parent that died without killing
it, each answer arrives with its deadline and the worker arms a real-time timer a little past
it with SIGALRM left at its default action: the kernel ends the process when it fires, even
inside a long C call. The pool kills the worker at the deadline itself, so the timer only acts
when the parent cannot. (No watchdog thread: under the address-space cap a thread's own malloc
arena costs ~64 MiB.)
"""

from __future__ import annotations

import json
import multiprocessing.connection
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, Optional

_SYS_PATH_ENV = "MEGATHINK_GRADER_SYS_PATH"
_BOOT = "from megathink.rewards.grader_worker import serve_from_argv; serve_from_argv()"
SELF_DESTRUCT_GRACE_S = 5.0
"""How long past an answer's deadline a worker lets itself run when its parent did not kill it."""


@dataclass
class WorkerProcess:
    """A running worker: its process and the parent's end of its socket pair."""

    process: subprocess.Popen
    conn: multiprocessing.connection.Connection

    @property
    def pid(self) -> int:
        return self.process.pid

    def exit_code(self, wait_s: float) -> Optional[int]:
        """The exit code once the process has ended (waiting up to `wait_s`), else None."""
        try:
            return self.process.wait(wait_s)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """SIGKILL (if still running), reap, close the connection."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.conn.close()


def start_worker(memory_mb: int) -> WorkerProcess:
    """Start one grading worker capped at `memory_mb` MiB of address space."""
    parent_sock, child_sock = socket.socketpair()
    env = dict(os.environ)
    env[_SYS_PATH_ENV] = json.dumps([entry for entry in sys.path if isinstance(entry, str)])
    boot = f"import json, os, sys; sys.path[:] = json.loads(os.environ[{_SYS_PATH_ENV!r}]); {_BOOT}"
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", boot, str(child_sock.fileno()), str(memory_mb)],
            pass_fds=[child_sock.fileno()],
            stdin=subprocess.DEVNULL,
            env=env,
        )
    finally:
        child_sock.close()
    return WorkerProcess(process=process, conn=multiprocessing.connection.Connection(parent_sock.detach()))


def serve_from_argv() -> None:
    """Entry of the worker process: `argv = [-c, fd, memory_mb]`."""
    fd, memory_mb = (int(arg) for arg in sys.argv[1:3])
    serve(multiprocessing.connection.Connection(fd), memory_mb)


def serve(conn: Any, memory_mb: int) -> None:
    """Cap memory, warm up, then grade `(index, pred, ref, timeout_s)` until `None` or EOF."""
    import logging
    import resource
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    try:
        limit = memory_mb * 1024 * 1024
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        # math-verify warns once that its own timeout is off: here the pool is the timeout.
        logging.getLogger("math_verify").setLevel(logging.ERROR)
        from megathink.rewards.equivalence import is_equivalent_trusted

        if not is_equivalent_trusted("\\frac{1}{2}", "0.5+x-x"):
            raise RuntimeError("math-verify warm-up gave a wrong verdict")
    except BaseException as error:  # reported to the parent, which raises ConfigError
        conn.send(("error", f"{type(error).__name__}: {error}"))
        return
    conn.send(("ready",))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        index, pred, ref, timeout_s = message
        signal.setitimer(signal.ITIMER_REAL, timeout_s + SELF_DESTRUCT_GRACE_S)
        try:
            verdict = is_equivalent_trusted(pred, ref)
        except Exception:  # MemoryError, RecursionError, parser bugs: not shown equal
            verdict = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        conn.send((index, bool(verdict)))


__all__ = ["SELF_DESTRUCT_GRACE_S", "WorkerProcess", "serve", "serve_from_argv", "start_worker"]

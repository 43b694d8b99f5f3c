"""`megathink serve` as a user runs it: bad input prints one line and exits 2 (a working server
is started the same way by test_sglang_engine.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from megathink_fixtures.rollout_servers import save_tiny_model

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def _serve(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "megathink.launch.cli", "serve", *args]
    return subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=120)


def test_bad_folder_and_busy_port_exit_2_with_one_line(tmp_path: Path) -> None:
    missing = _serve("--model-path", str(tmp_path / "nowhere"), "--port", "0")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "megathink serve: error: --model-path" in missing.stderr and "config.json" in missing.stderr
    model = save_tiny_model(tmp_path / "model")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        taken = _serve("--model-path", str(model), "--port", str(port), "--batch-size", "2")
        assert taken.returncode == 2 and "Traceback" not in taken.stderr
        assert f"--port {port}: cannot listen there" in taken.stderr
    bad_flag = _serve("--model-path", str(model), "--batch-size", "0")
    assert bad_flag.returncode == 2 and "--batch-size 0 is invalid" in bad_flag.stderr

"""`megathink distill` as a user runs it, against scripted endpoints (megathink_fixtures/scripted_endpoint.py): the
API key from the environment, an endpoint that is down, and a run killed with SIGKILL, then resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from megathink_fixtures.scripted_endpoint import Reply, ScriptedEndpoint

from megathink.data.loaders import write_jsonl
from megathink.distill.journal import journal_path, read_journal
from megathink.launch.distill_command import main

ROWS = [(f"question {i}: {i}+{i}", str(2 * i), 1 + i % 2) for i in range(6)]


@pytest.fixture
def servers():
    reasoning = ScriptedEndpoint({p: Reply("\nthought</think>\\boxed{%s}" % a) for p, a, _ in ROWS})
    instruct = ScriptedEndpoint({p: Reply("\\boxed{%s}" % a) for p, a, _ in ROWS})
    yield reasoning, instruct
    reasoning.close()
    instruct.close()


def _prompts(tmp_path: Path) -> str:
    path = tmp_path / "prompts.jsonl"
    write_jsonl(str(path), [{"problem": p, "answer": a, "level": lvl} for p, a, lvl in ROWS])
    return str(path)


def _args(prompts: str, out: Path, reasoning_url: str, instruct_url: str, *extra: str) -> list[str]:
    return [
        "--prompts", prompts, "--out", str(out), "--reasoning-url", reasoning_url, "--instruct-url", instruct_url,
        "--grader", "boxed", "--no-progress", "--retries", "1", "--backoff", "0.01", *extra,
    ]


def test_help_lists_distill() -> None:
    result = subprocess.run([sys.executable, "-m", "megathink.launch.cli", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and "distill " in result.stdout and "Thinkless stage-1" in result.stdout


def test_api_key_is_read_from_the_named_variable_and_never_written(servers, tmp_path: Path, capsys,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    reasoning, instruct = servers
    reasoning.api_key = instruct.api_key = "s3cret-key"
    out = tmp_path / "hybrid.jsonl"
    args = _args(_prompts(tmp_path), out, reasoning.url, instruct.url)
    assert main([*args, "--concurrency", "1"]) == 2  # no key given
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "HTTP 401" in err[0] and "no API key" in err[0]
    assert "(set by --instruct-url)" in err[0] and "--instruct-api-key-env" in err[0]  # the short request goes first
    assert [r.authorization for r in instruct.requests] == [None]
    instruct.requests.clear()
    monkeypatch.setenv("MY_KEY", "s3cret-key")
    keyed = [*args, "--reasoning-api-key-env", "MY_KEY", "--instruct-api-key-env", "MY_KEY"]
    assert main(keyed) == 0
    captured = capsys.readouterr()
    assert f"wrote {out} (6 questions)" in captured.out
    answered = [r for r in reasoning.requests + instruct.requests if r.path == "/v1/chat/completions"]
    assert len(answered) == 12 and all(r.authorization == "Bearer s3cret-key" for r in answered)
    written = "".join(p.read_text() for p in tmp_path.iterdir() if p.is_file())
    assert "s3cret-key" not in written + captured.out + captured.err
    monkeypatch.setenv("MY_KEY", "wrong")
    reasoning.requests.clear()
    assert main([*keyed, "--limit", "0"]) == 0 and not reasoning.requests  # all done: no request, key unused


def test_failed_requests_exit_1_and_the_rerun_finishes(servers, tmp_path: Path, capsys) -> None:
    reasoning, instruct = servers
    reasoning.statuses[ROWS[1][0]] = [500, 500]  # --retries 1: two attempts, both fail
    out = tmp_path / "hybrid.jsonl"
    args = _args(_prompts(tmp_path), out, reasoning.url, instruct.url)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "1 of 6 questions not done (1 failed this run)" in err and "Rerun the same command" in err
    assert len(out.read_text().splitlines()) == 5
    assert main(args) == 0 and len(out.read_text().splitlines()) == 6


def test_endpoint_down_exits_2_naming_the_url(servers, tmp_path: Path, capsys) -> None:
    reasoning, _ = servers
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    out = tmp_path / "hybrid.jsonl"
    assert main(_args(_prompts(tmp_path), out, reasoning.url, dead)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"megathink distill: error: cannot reach {dead}/v1/models (set by --instruct-url)")
    assert "after 2 attempts" in err[0] and not out.exists()


def test_killed_run_resumes_without_redoing_or_rewriting(servers, tmp_path: Path) -> None:
    reasoning, instruct = servers
    prompts = _prompts(tmp_path)
    reference = tmp_path / "reference.jsonl"
    assert main(_args(prompts, reference, reasoning.url, instruct.url)) == 0
    reasoning.requests.clear()
    instruct.requests.clear()

    out = tmp_path / "run" / "hybrid.jsonl"
    k = 2
    reasoning.hang.add(ROWS[k][0])  # the third question's long request never answers: kill the run there
    args = _args(prompts, out, reasoning.url, instruct.url, "--concurrency", "1")
    proc = subprocess.Popen([sys.executable, "-m", "megathink.launch.cli", "distill", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    journal = journal_path(str(out))
    try:
        assert reasoning.hanging.wait(timeout=120), "the run never reached the hanging question"
        deadline = time.monotonic() + 30
        while len(read_journal(journal).entries) < k and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    before = journal.read_bytes()
    assert len(read_journal(journal).entries) == k and not out.exists()
    reasoning.hang.clear()
    reasoning.release.set()
    asked_before = len(reasoning.problems_asked())

    assert main(args) == 0
    asked_now = reasoning.problems_asked()[asked_before:]
    assert asked_now == [p for p, _, _ in ROWS[k:]]  # the done ones are skipped, the killed one is redone
    assert journal.read_bytes().startswith(before)  # nothing written before the kill is rewritten
    assert out.read_text() == reference.read_text()

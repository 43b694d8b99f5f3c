"""`megathink distill` against two real model servers: two `megathink serve` processes, each serving a
tiny Qwen2 folder whose answer is known (megathink_fixtures/chain_model.py), then `megathink sft` on the result.

The reasoning model answers every prompt `Ok</think>\\boxed{7}` (R1-style template, prompt ending
in `<think>\\n`); the instruct model answers `\\boxed{5}` (a template that opens no thought). With
reference answers 7, 5 and 3 the three questions are: long right / short wrong, long wrong / short
right, both wrong, so each filter's output is known exactly. The reasoning server is called over
SGLang's native API (prompt rendered here, n = 2 samples), the instruct server over the OpenAI
API with an API key; grading is the default math-verify pool.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from megathink_fixtures.chain_model import INSTRUCT_TEMPLATE, build_chain_model_dir
from megathink_fixtures.r1_tokenizer import r1_reserved_token_id

from megathink.config.data import DataConfig
from megathink.data.loaders import load_hybrid_sft, write_jsonl
from megathink.data.types import HybridSFTRecord
from megathink.launch.distill_command import main

KEY_VAR = "MEGATHINK_TEST_INSTRUCT_KEY"
ENV = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", KEY_VAR: "instruct-key"}
PROMPTS = [("What is 3 + 4?", "7", 1), ("What is 2 + 3?", "5", 2), ("What is 1 + 2?", "3", 3)]
LONG, SHORT = "\nOk</think>\\boxed{7}", "\\boxed{5}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(url: str, proc: subprocess.Popen, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"megathink serve exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
        try:
            urllib.request.urlopen(url + "/health", timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answers (401 without the key)
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"megathink serve at {url} did not come up in {timeout_s} s")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    if not Path(__file__).resolve().parents[2].joinpath("megathink", "launch", "serve_command.py").is_file():
        pytest.fail("megathink serve (megathink/launch/serve_command.py) is missing; this test needs it")
    root = tmp_path_factory.mktemp("models")
    reasoning_dir = build_chain_model_dir(str(root / "reasoning"), LONG.lstrip("\n"))
    instruct_dir = build_chain_model_dir(str(root / "instruct"), SHORT, chat_template=INSTRUCT_TEMPLATE)
    procs, urls = [], []
    for model, extra in ((reasoning_dir, []), (instruct_dir, ["--api-key-env", KEY_VAR])):
        port = _free_port()
        cmd = [sys.executable, "-m", "megathink.launch.cli", "serve", "--model-path", model, "--port", str(port),
               "--threads", "1", "--log-level", "warning", *extra]
        procs.append(subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for url, proc in zip(urls, procs):
            _wait_until_up(url, proc)
        yield {"reasoning_dir": reasoning_dir, "reasoning_url": urls[0], "instruct_url": urls[1]}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def _distill(served: dict, tmp_path: Path, out: Path, *extra: str) -> int:
    prompts = tmp_path / "prompts.jsonl"
    if not prompts.exists():
        write_jsonl(str(prompts), [{"problem": p, "answer": a, "level": lvl} for p, a, lvl in PROMPTS])
    return main([
        "--prompts", str(prompts), "--out", str(out), "--no-progress", "--concurrency", "2",
        "--reasoning-url", served["reasoning_url"], "--reasoning-api", "native",
        "--reasoning-tokenizer", served["reasoning_dir"], "--reasoning-n", "2", "--reasoning-max-tokens", "32",
        "--instruct-url", served["instruct_url"], "--instruct-api", "openai", "--instruct-api-key-env", KEY_VAR,
        "--instruct-max-tokens", "16", "--grade-workers", "1", *extra,
    ])


@pytest.mark.slow
def test_two_servers_filters_and_sft(served: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_VAR, "instruct-key")
    out = tmp_path / "hybrid.jsonl"
    assert _distill(served, tmp_path, out, "--filter", "any_correct") == 0
    records = load_hybrid_sft(str(out), DataConfig())
    assert records == [
        HybridSFTRecord(problem="What is 3 + 4?", answer="7", long=LONG, short=SHORT, level=1),
        HybridSFTRecord(problem="What is 2 + 3?", answer="5", long=LONG, short=SHORT, level=2),
    ]
    summary = json.loads((tmp_path / "hybrid.summary.json").read_text())
    assert summary["kept"] == 2 and summary["dropped"] == {"both_wrong": 1} and summary["queried_now"] == 3
    assert summary["reasoning"]["accuracy"] == pytest.approx(1 / 3) and summary["reasoning"]["sample_accuracy"] == pytest.approx(1 / 3)
    assert summary["instruct"]["accuracy"] == pytest.approx(1 / 3) and summary["instruct"]["finished_share"] == 1.0
    assert summary["reasoning"]["mean_tokens"] is not None and summary["instruct"]["mean_tokens"] is not None
    assert summary["by_level"]["3"]["long_accuracy"] == 0.0 and summary["by_level"]["1"]["long_accuracy"] == 1.0

    assert _distill(served, tmp_path, out, "--filter", "both_correct") == 0  # from the journal alone
    assert json.loads((tmp_path / "hybrid.summary.json").read_text())["queried_now"] == 0
    assert not out.read_text()  # no question has both forms right
    assert _distill(served, tmp_path, out, "--filter", "long_correct") == 0
    assert [r.problem for r in load_hybrid_sft(str(out), DataConfig())] == ["What is 3 + 4?"]

    run_dir = tmp_path / "sft"
    sft = subprocess.run(
        [sys.executable, "-m", "megathink.launch.cli", "sft", "model=local_hf", f"model.path={served['reasoning_dir']}",
         "model.dtype=float32", "tokenizer.kind=pretrained", "tokenizer.control_tokens=map",
         f"tokenizer.short_token_id={r1_reserved_token_id()}", "data=files", f"data.sft_path={out}",
         "data.max_seq_len=128", "sft.max_steps=2", "sft.micro_batch_size=1", "sft.grad_accum_steps=1",
         "trainer.device=cpu", "trainer.num_threads=1", "logger.progress_bar=false", "checkpoint.save_every=0",
         f"hydra.run.dir={run_dir}"],
        env=ENV, capture_output=True, text=True, timeout=300,
    )
    assert sft.returncode == 0, sft.stderr[-3000:]
    metrics = [json.loads(line) for line in (run_dir / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert metrics and metrics[-1]["step"] == 2 and metrics[-1]["loss_think"] > 0 and metrics[-1]["loss_short"] > 0

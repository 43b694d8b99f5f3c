"""Rollout throughput on CPU: megathink's local engine in-process, the same engine behind
`megathink serve` (reached through `SGLangEngine` over HTTP), and plain `transformers.generate`.

What is measured. One random Qwen2ForCausalLM (hidden 256, 4 layers, 4 heads, MLP 1024, the
toy arithmetic tokenizer: 4.2M parameters, vocab 93, fp32) is saved once to a temporary
folder; every path loads those weights. The batch is --prompts prompts (all 24 tokens long)
x --samples samples, every sample exactly --new-tokens tokens (no stop token: megathink gets
no stop ids, transformers gets `min_new_tokens` = the cap), temperature 1.0, top-p/top-k off.

- local: `LocalEngine.generate` on the whole batch (batch_size = all sequences), per-token
  log-probs included (it always computes them).
- server: one `megathink serve` subprocess (`--threads` as below, `--batch-size` = all
  sequences), driven by `SGLangEngine` (one /generate call of all sequences, log-probs on),
  so the figure includes JSON encoding, HTTP and the per-sequence `Sample` assembly; the
  weights load and server start-up are not timed.
- transformers: `model.generate(do_sample=True)` on the same left-padded prompts with
  `num_return_sequences` = --samples, no log-probs returned (less work than the two others).

tokens/s = generated tokens / wall seconds of one call; the median of --repeats rounds after one
warm-up call each, the three paths called in turn within each round (load changes on a shared
machine then hit all three alike); --threads torch threads in this process and in the server.

Command (from the repository root):

    python benchmarks/rollout_throughput.py        # 16 prompts x 8 samples x 64 tokens
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from megathink.config import ModelConfig, TokenizerConfig  # noqa: E402
from megathink.config.rollout import SGLangConfig  # noqa: E402
from megathink.data.tokenizer import load_tokenizer  # noqa: E402
from megathink.models import build_hf_backend  # noqa: E402
from megathink.rollout import LocalEngine, RolloutRequest, SamplingParams  # noqa: E402
from megathink.rollout.sglang_engine import SGLangEngine  # noqa: E402

MODEL = ModelConfig(hidden_size=256, num_layers=4, num_heads=4, num_kv_heads=4, intermediate_size=1024)


def _interleaved(runs: dict[str, Callable[[], int]], repeats: int) -> dict[str, tuple[float, int]]:
    """One warm-up call each, then `repeats` rounds calling every path once per round (so load
    changes on a shared machine hit all paths alike); the median seconds and the tokens per path."""
    tokens = {name: run() for name, run in runs.items()}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            tokens[name] = run()
            times[name].append(time.perf_counter() - started)
    return {name: (statistics.median(times[name]), tokens[name]) for name in runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bundle = load_tokenizer(TokenizerConfig())
    backend = build_hf_backend(MODEL, bundle, device="cpu", seed=0)
    total = args.prompts * args.samples
    prompts = [[3 + (7 * p + i) % 80 for i in range(24)] for p in range(args.prompts)]
    requests = [RolloutRequest(ids, group_id=p) for p, ids in enumerate(prompts)]
    params = SamplingParams(temperature=1.0, max_new_tokens=args.new_tokens, n=args.samples, seed=1)
    local = LocalEngine(backend, pad_id=bundle.pad_id, batch_size=total)
    model = backend.model.eval()
    input_ids = torch.tensor(prompts)  # [P, 24], all the same length: no padding needed
    mask = torch.ones_like(input_ids)

    def hf_generate() -> int:
        with torch.inference_mode():
            out = model.generate(
                input_ids=input_ids, attention_mask=mask, do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
                max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, num_return_sequences=args.samples,
                pad_token_id=bundle.pad_id,
            )
        return int(out[:, input_ids.shape[1] :].numel())

    with tempfile.TemporaryDirectory() as tmp:
        folder = backend.save_hf(Path(tmp) / "model", bundle.tokenizer)
        command = (
            "{python} -m megathink.launch.cli serve --model-path {model_path} --host {host} --port {port} "
            f"--threads {args.threads} --batch-size {total} --skip-tokenizer-init --log-level warning"
        )
        cfg = SGLangConfig(launch_command=command, num_engines=1, base_port=0, sequences_per_request=total, health_timeout_s=300)
        with SGLangEngine(cfg, work_dir=Path(tmp), hf_config=backend.model.config, serve_dir=str(folder), batch_size=total) as engine:
            results = _interleaved({
                "megathink local engine (in-process)": lambda: sum(s.num_generated for s in local.generate(requests, params)),
                "megathink serve over HTTP (SGLangEngine)": lambda: sum(s.num_generated for s in engine.generate(requests, params)),
                "transformers generate (no log-probs)": hf_generate,
            }, args.repeats)

    base = results["transformers generate (no log-probs)"]
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; torch {torch.__version__}, "
          f"{args.threads} threads per process; "
          f"batch {args.prompts} prompts x {args.samples} samples x {args.new_tokens} tokens; "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")
    print(f"{'path':44s} {'seconds':>8s} {'tokens':>7s} {'tokens/s':>9s} {'vs transformers':>16s}")
    for name, (seconds, tokens) in results.items():
        assert tokens == total * args.new_tokens, (name, tokens)
        rate = tokens / seconds
        print(f"{name:44s} {seconds:8.3f} {tokens:7d} {rate:9.0f} {rate / (base[1] / base[0]):15.2f}x")


if __name__ == "__main__":
    main()

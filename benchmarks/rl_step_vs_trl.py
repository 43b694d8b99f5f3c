"""One RL step of megathink against one TRL `GRPOTrainer` step, on CPU: time and peak memory.

What is measured. The same tiny random Qwen2ForCausalLM (hidden 128, 2 layers, the toy
arithmetic tokenizer with `<short>` added) is saved once to a temporary folder; both sides
load those identical weights and the same 16 prompts (all the same length), sample 8
completions per prompt at temperature 0.6 (top-p 1, top-k off), score them with the same
trivial reward (the share of digits in the completion text), and take exactly one optimizer
step per rollout step (GRPO, clip 0.2, token-mean loss, no std normalisation of advantages,
KL coefficient 0 unless --kl is given, no entropy bonus, AdamW lr 1e-6 constant, betas
(0.9, 0.95), weight decay 0.01, grad clip 1.0, micro-batches of 16 sequences, fp32, no
gradient checkpointing).

Equal work: every completion is exactly --max-new-tokens long on both sides. megathink
samples with no stop token; TRL (which always stops at EOS) gets `min_new_tokens` equal to
the cap, so EOS cannot be sampled before it. The script checks the generated lengths.

- megathink: the library calls of one `run_rl` iteration, in its order: `LocalEngine.generate`
  -> decode + reward -> `group_advantages` -> `build_rl_batch` -> (`score_batch` of the frozen
  reference when --kl > 0) -> `rl_update` -> `engine.sync_weights`.
- TRL: `GRPOTrainer.train()` with max_steps = warm-up + repeats, one generation of 128
  completions per optimizer step (gradient_accumulation_steps 8 x per-device batch 16); a
  step is timed from the `on_step_begin` to the `on_step_end` callback (generation, reward,
  advantages, forward/backward passes, clipping, optimizer and scheduler step).

Model loading, tokenizer building and trainer construction are not timed. Time per step is
the median over --repeats (default 5) steps after one warm-up step. Peak memory is the RSS
high-water mark (`getrusage(RUSAGE_SELF).ru_maxrss`) of a separate child process that runs
only that side (imports included: TRL's import pulls in datasets, pandas and accelerate). The
parent process imports only the standard library, so nothing of it is inherited by the
children's counters (Linux carries the pre-exec high-water mark over into ru_maxrss). Both
children call torch.set_num_threads(--threads) (default 2).

Both sides skip the separate old-policy scoring pass when the step is on-policy (one optimizer
step per rollout step, as here): the training forward pass provides the old log-probs.

Needs TRL, which is not a dependency of megathink: `pip install -c constraints.txt -e ".[bench]"`
(the `bench` extra is `trl>=1.0`). Without it the script prints a message and exits 0.

Command (from the repository root):

    python benchmarks/rl_step_vs_trl.py            # 16 prompts x 8 completions x 64 tokens, ~30 s
    python benchmarks/rl_step_vs_trl.py --kl 0.001 # both sides with a KL term to the reference
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SIDES = ("megathink", "trl")
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "WANDB_MODE": "disabled",
    "TOKENIZERS_PARALLELISM": "false",
}


# ----------------------------------------------------------------------------- shared pieces


def digit_share(completions: list[str], **_: Any) -> list[float]:
    """The trivial reward both sides use: the share of digits in each completion's text."""
    return [sum(ch.isdigit() for ch in text) / max(len(text), 1) for text in completions]


def peak_rss_mib() -> float:
    """This process's RSS high-water mark (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mib() -> float:
    with open("/proc/self/status", encoding="utf-8") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def problems(count: int) -> list[str]:
    """`count` arithmetic problems of identical length, so no prompt needs padding."""
    return [f"{10 + i % 90}+{20 + (3 * i) % 80}=" for i in range(count)]


# ----------------------------------------------------------------------------- children


def prepare(cfg: dict[str, Any], workdir: Path) -> None:
    """Build the random model and tokenizer, save them, and write the rendered prompts."""
    import torch

    from megathink.config.model import ModelConfig
    from megathink.config.tokenizer import TokenizerConfig
    from megathink.data.chat_template import encode_prompt, render_prompt
    from megathink.data.tokenizer import load_tokenizer
    from megathink.models.hf_backend import build_hf_backend

    torch.set_num_threads(cfg["threads"])
    tok_cfg = TokenizerConfig()  # the toy tokenizer; control_tokens="add" adds <short>
    bundle = load_tokenizer(tok_cfg)
    model_cfg = ModelConfig(hidden_size=cfg["hidden"], num_layers=cfg["layers"], intermediate_size=4 * cfg["hidden"])
    backend = build_hf_backend(model_cfg, bundle, device="cpu", seed=0)
    backend.save_hf(workdir / "model", bundle.tokenizer)
    texts = [render_prompt(bundle, p, tok_cfg) for p in problems(cfg["prompts"])]
    ids = [encode_prompt(bundle, p, tok_cfg) for p in problems(cfg["prompts"])]
    (workdir / "prompts.json").write_text(json.dumps({"texts": texts, "ids": ids}), encoding="utf-8")
    print(json.dumps({"parameters": backend.num_parameters(), "vocab": bundle.vocab_size, "prompt_len": len(ids[0])}))


def run_megathink(cfg: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Warm-up + repeats of one megathink RL step, timed from rollout to weight sync."""
    import torch

    torch.set_num_threads(cfg["threads"])
    from megathink.algorithms import group_advantages
    from megathink.config.model import ModelConfig
    from megathink.config.rl import RLConfig
    from megathink.config.tokenizer import TokenizerConfig
    from megathink.data.tokenizer import load_tokenizer
    from megathink.methods.grpo import GRPOConfig
    from megathink.models.hf_backend import build_hf_backend
    from megathink.rollout.local_engine import LocalEngine
    from megathink.rollout.types import RolloutRequest, SamplingParams
    from megathink.trainer.lr_schedule import build_scheduler
    from megathink.trainer.optim import build_adamw
    from megathink.trainer.rl_batch import build_rl_batch
    from megathink.trainer.rl_update import rl_update, score_batch

    model_dir = str(workdir / "model")
    bundle = load_tokenizer(TokenizerConfig(kind="pretrained", path=model_dir))
    backend = build_hf_backend(ModelConfig(path=model_dir), bundle, device="cpu", seed=0)
    algorithm = GRPOConfig(agg="token_mean", kl_coef=cfg["kl"], entropy_coef=0.0, clip_eps=0.2)
    steps = 1 + cfg["repeats"]
    rl = RLConfig(max_steps=steps, prompts_per_step=cfg["prompts"], mini_batches=1, micro_batch_size=cfg["micro_batch"])
    reference = frozen_reference(backend) if algorithm.kl_coef > 0 else None
    engine = LocalEngine(backend, pad_id=bundle.pad_id, batch_size=cfg["prompts"] * cfg["samples"])
    optimizer = build_adamw(backend.named_parameters(), rl.optimizer)
    scheduler = build_scheduler(optimizer, rl.optimizer, rl.max_steps * rl.mini_batches)
    prompt_ids = json.loads((workdir / "prompts.json").read_text(encoding="utf-8"))["ids"]
    requests = [RolloutRequest(prompt_ids=ids, group_id=g) for g, ids in enumerate(prompt_ids)]
    rss_before = current_rss_mib()

    times, lengths, optimizer_steps = [], set(), 0
    for step in range(steps):
        started = time.perf_counter()
        params = SamplingParams(
            temperature=cfg["temperature"], max_new_tokens=cfg["max_new_tokens"], stop_token_ids=(),
            n=cfg["samples"], seed=step,
        )
        samples = engine.generate(requests, params)
        texts = bundle.tokenizer.batch_decode([s.response_ids for s in samples], skip_special_tokens=True)
        rewards = torch.tensor(digit_share(texts), dtype=torch.float32)
        group_ids = torch.tensor([s.group_id for s in samples])
        advantages = group_advantages(rewards, group_ids, std_normalize=algorithm.std_normalize)
        batch = build_rl_batch(samples, advantages, pad_id=bundle.pad_id)
        backend.train(False)
        score = dict(temperature=cfg["temperature"], rl=rl)
        # As run_rl: one update per rollout step is on-policy, so the update's own forward pass
        # gives the old log-probs (rl_update with old_logp=None); several would need score_batch.
        old_logp = score_batch(backend, batch, **score) if rl.mini_batches > 1 else None
        ref_logp = score_batch(reference, batch, **score) if reference is not None else None
        rl_update(
            backend, batch, old_logp, ref_logp, optimizer, scheduler,
            algorithm=algorithm, rl=rl, temperature=cfg["temperature"],
        )
        engine.sync_weights(backend)
        times.append(time.perf_counter() - started)
        lengths.update(len(s.response_ids) for s in samples)
        optimizer_steps = scheduler.last_epoch
    return _result(times, lengths, optimizer_steps / steps, rss_before, torch.get_num_threads())


def frozen_reference(backend: Any) -> Any:
    """The KL reference as run_rl builds it: the backend with a frozen deep copy of its model."""
    import copy

    reference = copy.copy(backend)
    reference.model = copy.deepcopy(backend.model).eval().requires_grad_(False)
    return reference


def run_trl(cfg: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Warm-up + repeats of one TRL GRPOTrainer step, timed between the step callbacks."""
    import torch

    torch.set_num_threads(cfg["threads"])
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.threads = 0

        def on_step_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            self.threads = torch.get_num_threads()
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            self.times.append(time.perf_counter() - self.started)

    lengths: set[int] = set()

    def reward(completions: list[str], completion_ids: list[list[int]], **kwargs: Any) -> list[float]:
        lengths.update(len(ids) for ids in completion_ids)
        return digit_share(completions)

    reward.__name__ = "digit_share"
    model_dir = str(workdir / "model")
    prompts = json.loads((workdir / "prompts.json").read_text(encoding="utf-8"))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer(text=prompts["texts"])["input_ids"] != prompts["ids"]:
        raise RuntimeError("TRL would tokenize the prompts differently from megathink; the comparison is void.")
    steps = 1 + cfg["repeats"]
    batch = cfg["prompts"] * cfg["samples"]
    args = GRPOConfig(
        output_dir=str(workdir / "trl_out"), report_to="none", use_cpu=True, bf16=False, fp16=False,
        gradient_checkpointing=False, seed=0, max_steps=steps, logging_steps=10**6, save_strategy="no",
        disable_tqdm=True, shuffle_dataset=False, dataloader_num_workers=0,
        per_device_train_batch_size=cfg["micro_batch"], gradient_accumulation_steps=batch // cfg["micro_batch"],
        num_generations=cfg["samples"], num_iterations=1, max_completion_length=cfg["max_new_tokens"],
        generation_kwargs={"min_new_tokens": cfg["max_new_tokens"]},
        temperature=cfg["temperature"], top_p=1.0, top_k=0,
        learning_rate=1e-6, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.01,
        adam_beta1=0.9, adam_beta2=0.95, max_grad_norm=1.0,
        beta=cfg["kl"], epsilon=0.2, loss_type="dapo", scale_rewards="none", entropy_coef=0.0,
    )
    timer = StepTimer()
    trainer = GRPOTrainer(
        model=model_dir, reward_funcs=[reward], args=args, processing_class=tokenizer,
        train_dataset=Dataset.from_dict({"prompt": prompts["texts"]}), callbacks=[timer],
    )
    rss_before = current_rss_mib()
    trainer.train()
    return _result(timer.times, lengths, trainer.state.global_step / steps, rss_before, timer.threads)


def _result(
    times: list[float], lengths: set[int], optimizer_steps: float, rss_before: float, threads: int
) -> dict[str, Any]:
    return {
        "times": times,
        "lengths": sorted(lengths),
        "optimizer_steps_per_step": optimizer_steps,
        "rss_before_mib": rss_before,
        "peak_rss_mib": peak_rss_mib(),
        "threads": threads,
    }


def child_main(side: str, workdir: Path) -> None:
    cfg = json.loads((workdir / "config.json").read_text(encoding="utf-8"))
    if side == "prepare":
        prepare(cfg, workdir)
        return
    result = run_megathink(cfg, workdir) if side == "megathink" else run_trl(cfg, workdir)
    (workdir / f"{side}.json").write_text(json.dumps(result), encoding="utf-8")


# ----------------------------------------------------------------------------- parent


def run_child(side: str, workdir: Path) -> None:
    env = {**os.environ, **OFFLINE_ENV}
    command = [sys.executable, os.path.abspath(__file__), "--child", side, "--workdir", str(workdir)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"the {side} child failed with exit status {done.returncode}")
    if done.stdout.strip() and side == "prepare":
        print(f"model: {done.stdout.strip().splitlines()[-1]}")


def machine() -> str:
    model = platform.processor() or "unknown cpu"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            model = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    system = f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    return f"{model}, {os.cpu_count()} cores, {system}"


def versions() -> str:
    return ", ".join(f"{name} {importlib.metadata.version(name)}" for name in ("torch", "transformers", "trl"))


def format_table(results: dict[str, dict[str, Any]]) -> str:
    mt, trl = results["megathink"], results["trl"]
    rows = [
        ("step time, median (s)", statistics.median(mt["times"][1:]), statistics.median(trl["times"][1:])),
        ("step time, min (s)", min(mt["times"][1:]), min(trl["times"][1:])),
        ("step time, max (s)", max(mt["times"][1:]), max(trl["times"][1:])),
        ("warm-up step (s)", mt["times"][0], trl["times"][0]),
        ("peak RSS (MiB)", mt["peak_rss_mib"], trl["peak_rss_mib"]),
        ("RSS before the steps (MiB)", mt["rss_before_mib"], trl["rss_before_mib"]),
        ("peak - RSS before (MiB)", _growth(mt), _growth(trl)),
    ]
    lines = [f"{'':<28}{'megathink':>11}{'TRL':>11}{'megathink/TRL':>15}"]
    for name, a, b in rows:
        lines.append(f"{name:<28}{a:>11.2f}{b:>11.2f}{a / b if b else float('nan'):>15.2f}")
    lines.append(
        f"{'completion lengths':<28}{_lengths(mt):>11}{_lengths(trl):>11}"
    )
    lines.append(
        f"{'optimizer steps per step':<28}{mt['optimizer_steps_per_step']:>11g}{trl['optimizer_steps_per_step']:>11g}"
    )
    lines.append(f"{'torch threads':<28}{mt['threads']:>11}{trl['threads']:>11}")
    return "\n".join(lines)


def _growth(result: dict[str, Any]) -> float:
    return result["peak_rss_mib"] - result["rss_before_mib"]


def _lengths(result: dict[str, Any]) -> str:
    values = result["lengths"]
    return str(values[0]) if len(values) == 1 else f"{values[0]}..{values[-1]}"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--samples", type=int, default=8, help="completions per prompt (group size)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--micro-batch", type=int, default=16, help="sequences per forward/backward pass")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps after one warm-up step")
    parser.add_argument("--kl", type=float, default=0.0, help="KL coefficient (TRL beta); > 0 loads a reference")
    parser.add_argument("--temperature", type=float, default=0.6)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", choices=("prepare",) + SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if (args.prompts * args.samples) % args.micro_batch:
        parser.error("--micro-batch must divide --prompts x --samples (TRL accumulates whole micro-batches)")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.child:
        child_main(args.child, args.workdir)
        return 0
    if importlib.util.find_spec("trl") is None:
        print("SKIP rl_step_vs_trl: trl is not installed (pip install -c constraints.txt -e '.[bench]').")
        return 0
    script = os.path.relpath(os.path.abspath(__file__))
    print(f"command: python {script} {' '.join(argv)}".rstrip())
    print(f"machine: {machine()}")
    print(f"date:    {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"versions: {versions()}")
    cfg = {k: v for k, v in vars(args).items() if k not in ("child", "workdir")}
    print(
        f"shape: {args.prompts} prompts x {args.samples} completions x {args.max_new_tokens} new tokens, "
        f"micro-batch {args.micro_batch}, kl {args.kl}, {args.repeats} timed steps after 1 warm-up, "
        f"{args.threads} threads"
    )
    with tempfile.TemporaryDirectory(prefix="rl_step_vs_trl-") as tmp:
        workdir = Path(tmp)
        (workdir / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
        run_child("prepare", workdir)
        results = {}
        for side in SIDES:
            run_child(side, workdir)
            results[side] = json.loads((workdir / f"{side}.json").read_text(encoding="utf-8"))
    print(format_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

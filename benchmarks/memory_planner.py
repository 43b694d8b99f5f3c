"""The memory planner against measured peaks: one SFT step, one RL step, one rollout, on CPU.

What is measured. For each case (a small random Qwen2: hidden 256-1024, rows of 512-4096
tokens, recompute none / selective / full, the HF backend in one process and the megatron
backend at TP1 x DP2, TP2, PP2 under torchrun on 2 gloo processes), a fresh child process
builds the run exactly as `megathink train` does (`build_policy`, the stage's AdamW and
schedule; RunConfig composed by Hydra from the same overrides) and runs the stage's real code:

- sft: `trainer.sft_step.sft_step` over `sft.grad_accum_steps` micro-batches of both answer
  forms (the long one at data.max_seq_len, the short one 7/8 of it: right padded, near the
  planner's worst case of every row at the cap);
- rl: what one RL step of `trainer.rl.run_rl` does after the rollout: the old log-probs
  (`score_batch`, rl.mini_batches > 1), the KL reference's (`policy.frozen_reference()`,
  algorithm.kl_coef > 0), then `rl_update`, on a batch from `build_rl_batch` whose prompts are
  left padded (plan.max_prompt_tokens and a few shorter) and whose responses run to the cap
  (every sample truncated: the planner's worst case);
- rollout: `LocalEngine.generate` of rollout.batch_size sequences to the cap (no stop token),
  after one RL step (so the gradients, AdamW state and KL reference exist, as in a run).

One warm-up step first on rows 8x shorter (so the gradients and the AdamW state exist, as in
every step after the first), then the peak of the measured step. Memory is the peak of live
tensor storage bytes (`megathink.planning.storage_tracker.LiveStorageTracker`: a
TorchDispatchMode that counts every storage an operator creates, from creation until the storage
is freed, with the weights, gradients, AdamW state and model copies that exist before the
measured step added), the CPU analogue of `torch.cuda.max_memory_allocated()`: every tensor the
code allocates (weights, gradients, AdamW state, fp32 masters, activations, masks, log-prob
buffers, the KL reference, rank 0's HF sampler, KV caches), nothing else (no allocator
rounding, no Python objects, no library scratch space). Each rank measures its own.

Planned: `megathink.planning.plan_run(cfg, shape, world_size=, device="cpu")` for the same
config, the largest of the phases the case ran (sft: training, optimizer step; rl: training,
scoring, optimizer step; rollout: rollout), for the rank's role (rank 0; with pp = 2 also the
last stage). A CPU plan has no CUDA overhead line. The vocabulary is 8192 (the toy tokenizer,
widened), so `kernels.logprob=auto` takes the chunked head, whose tiles are part of the
measurement.

Command (from the repository root; ~10 minutes on 2 cores):

    python benchmarks/memory_planner.py                 # every case, the table at the end
    python benchmarks/memory_planner.py --only hf_sft_256 mt_tp2_rl_full   # some cases
    python benchmarks/memory_planner.py --list          # the cases
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

GIB = float(1 << 30)
MIB = float(1 << 20)
VOCAB = 8192


class Case(NamedTuple):
    name: str
    stage: str  # 'sft' | 'rl' | 'rollout'
    nproc: int  # 1: the HF backend in one process; 2: megatron under torchrun
    overrides: tuple[str, ...]
    prompt: int = 128  # RL prompt length (plan.max_prompt_tokens)


def _model(hidden: int, layers: int, heads: int, kv: int, ffn: int) -> tuple[str, ...]:
    return (f"model.hidden_size={hidden}", f"model.num_layers={layers}", f"model.num_heads={heads}",
            f"model.num_kv_heads={kv}", f"model.intermediate_size={ffn}", "model.max_position_embeddings=8192",
            "model.tie_word_embeddings=false")


def _sft(seq: int, mbs: int, accum: int = 2) -> tuple[str, ...]:
    return ("stages=[sft]", f"data.max_seq_len={seq}", f"sft.micro_batch_size={mbs}", f"sft.grad_accum_steps={accum}")


def _rl(response: int, mbs: int, *, prompts: int = 2, samples: int = 4, mini: int = 2, kl: float = 1e-3) -> tuple[str, ...]:
    return ("stages=[rl]", f"rl.prompts_per_step={prompts}", f"rollout.n_samples={samples}", f"rl.mini_batches={mini}",
            f"rl.micro_batch_size={mbs}", f"rollout.max_new_tokens={response}", f"algorithm.kl_coef={kl}")


MEGATRON = ("parallel=megatron",)
CASES = [
    Case("hf_sft_256", "sft", 1, _model(256, 4, 4, 2, 704) + _sft(1024, 2)),
    Case("hf_sft_512_full", "sft", 1, _model(512, 4, 8, 2, 1408) + _sft(2048, 1) + ("parallel.recompute=full",)),
    Case("hf_sft_1024_bf16", "sft", 1, _model(1024, 2, 8, 4, 2816) + _sft(2048, 1) + ("model.dtype=bfloat16",)),
    Case("hf_rl_256", "rl", 1, _model(256, 4, 4, 2, 704) + _rl(896, 2)),
    Case("hf_rl_512_full_budget", "rl", 1, _model(512, 4, 8, 2, 1408) + _rl(1920, 2) + (
        "parallel.recompute=full", "rl.max_tokens_per_micro_batch=4096")),
    Case("hf_rl_1024_bf16", "rl", 1, _model(1024, 2, 8, 4, 2816) + _rl(1920, 1, kl=0.0) + ("model.dtype=bfloat16",)),
    Case("hf_rl_768_full_4k", "rl", 1, _model(768, 2, 12, 4, 2048) + _rl(3968, 1) + ("parallel.recompute=full",)),
    Case("hf_rollout_256", "rollout", 1, _model(256, 4, 4, 2, 704) + _rl(512, 2) + ("rollout.batch_size=8",)),
    Case("mt_dp2_sft_256", "sft", 2, MEGATRON + _model(256, 4, 4, 2, 704) + _sft(1024, 2, accum=4)),
    Case("mt_tp2_sft_512_bf16", "sft", 2, MEGATRON + _model(512, 4, 8, 2, 1408) + _sft(2048, 1) + (
        "parallel.tp=2", "model.dtype=bfloat16")),
    Case("mt_tp2_rl_full", "rl", 2, MEGATRON + _model(512, 4, 8, 2, 1408) + _rl(1920, 2) + (
        "parallel.tp=2", "parallel.recompute=full")),
    Case("mt_tp2_rl_1024_full", "rl", 2, MEGATRON + _model(1024, 2, 8, 4, 2816) + _rl(3968, 1, kl=0.0) + (
        "parallel.tp=2", "parallel.recompute=full")),
    Case("mt_pp2_rl_256", "rl", 2, MEGATRON + _model(256, 4, 4, 2, 704) + _rl(896, 1) + ("parallel.pp=2",)),
    Case("mt_pp2_sft_512_full", "sft", 2, MEGATRON + _model(512, 4, 8, 2, 1408) + _sft(2048, 1, accum=4) + (
        "parallel.pp=2", "parallel.recompute=full")),
    Case("mt_tp2_rl_packed_selective", "rl", 2, MEGATRON + _model(256, 4, 4, 2, 704) + _rl(1920, 2) + (
        "parallel.tp=2", "parallel.pack_sequences=true", "rl.max_tokens_per_micro_batch=4096",
        "parallel.recompute=selective")),
    Case("mt_dp2_rl_zero", "rl", 2, MEGATRON + _model(512, 4, 8, 2, 1408) + _rl(896, 2) + (
        "parallel.distributed_optimizer=true",)),
]
PHASES = {"sft": ("training", "optimizer step"), "rl": ("training", "scoring", "optimizer step"), "rollout": ("rollout",)}


# -- the child: one case, measured ------------------------------------------------------------
def compose(case: Case) -> object:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    from megathink.launch.schema import register_schema, to_run_config

    register_schema()
    rollout = () if case.stage == "rollout" else ("rollout.engine=sglang", "rollout.sglang.urls=[http://127.0.0.1:9]")
    overrides = ["output_dir=unused", "trainer.device=cpu", "logger.console=false",
                 f"plan.max_prompt_tokens={case.prompt}", "checkpoint.save_hf=false", *rollout, *case.overrides]
    with initialize_config_module(config_module="megathink.hydra_conf", version_base=None):
        return to_run_config(hydra_compose(config_name="train", overrides=overrides))


class _WideVocab:
    """The toy tokenizer with VOCAB rows: the random model gets a real-sized lm_head."""

    def __init__(self, tokenizer: object) -> None:
        self._tokenizer = tokenizer

    def __len__(self) -> int:
        return VOCAB

    def __getattr__(self, name: str) -> object:
        return getattr(self._tokenizer, name)


def _sft_batches(cfg, bundle, shrink: int = 1) -> list:
    import torch

    from megathink.data.types import SFTBatch

    seq, questions = cfg.data.max_seq_len // shrink, cfg.sft.micro_batch_size
    out = []
    for m in range(cfg.sft.grad_accum_steps):
        lengths = [seq, seq - seq // 8] * questions  # long and short form: near the cap, as planned
        ids = torch.full((len(lengths), seq), bundle.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        loss = torch.zeros(ids.shape)
        gen = torch.Generator().manual_seed(m)
        for row, n in enumerate(lengths):
            ids[row, :n] = torch.randint(0, VOCAB, (n,), generator=gen)
            mask[row, :n] = 1
            loss[row, 32:n] = 1.0
        out.append(SFTBatch(ids, mask, loss, modes=("think", "short") * questions))
    return out


def _rl_batch(cfg, bundle, prompt: int, shrink: int = 1):
    import torch

    from megathink.rollout.types import Sample
    from megathink.trainer.rl_batch import build_rl_batch

    gen = torch.Generator().manual_seed(0)
    rows = cfg.rl.prompts_per_step * cfg.rollout.n_samples
    samples = []
    for row in range(rows):
        p = prompt - 8 * (row % 4)  # left padding in every micro-batch
        r = cfg.rollout.max_new_tokens // shrink
        samples.append(Sample(
            group_id=row // cfg.rollout.n_samples, prompt_ids=torch.randint(0, VOCAB, (p,), generator=gen).tolist(),
            response_ids=torch.randint(0, VOCAB, (r,), generator=gen).tolist(), logprobs=[-1.0] * r, forced=0,
            finish_reason="length", weight_version=0, sample_index=row % cfg.rollout.n_samples,
        ))
    advantages = torch.randn(rows, generator=gen)
    return build_rl_batch(samples, advantages, pad_id=bundle.pad_id)


def _step(case: Case, cfg, policy, reference, optimizer, scheduler, bundle, *, shrink: int = 1) -> None:
    """One SFT or RL step of the case; `shrink` > 1 divides the lengths (the cheap warm-up step:
    the gradients and AdamW state it leaves are the same size)."""
    if case.stage == "sft":  # a rollout case warms up with an RL step
        from megathink.trainer.sft_step import sft_step

        sft_step(policy.backend, _sft_batches(cfg, bundle, shrink), optimizer, scheduler,
                 grad_clip=cfg.sft.optimizer.grad_clip, control=bundle.control)
        return
    from megathink.trainer.rl_update import rl_update, score_batch

    batch = _rl_batch(cfg, bundle, case.prompt, shrink)
    backend = policy.backend
    backend.train(False)
    score = dict(temperature=cfg.rollout.temperature, rl=cfg.rl)
    old = score_batch(backend, batch, **score) if cfg.rl.mini_batches > 1 else None
    ref = None
    if reference is not None:
        with reference.scoring() as reference_backend:  # trainer/parked_reference.py, as run_rl does
            ref = score_batch(reference_backend, batch, **score)
    rl_update(backend, batch, old, ref, optimizer, scheduler, algorithm=cfg.algorithm, rl=cfg.rl,
              temperature=cfg.rollout.temperature, loss_impl=cfg.kernels.policy_loss)


def _rollout(cfg, policy, bundle, prompt: int) -> None:
    from megathink.rollout.local_engine import LocalEngine
    from megathink.rollout.types import RolloutRequest, SamplingParams

    engine = LocalEngine(policy.sampler, pad_id=bundle.pad_id, batch_size=cfg.rollout.batch_size)
    requests = [RolloutRequest(prompt_ids=[5 + (i % 50)] * (prompt - 8 * (i % 4)), group_id=i)
                for i in range(cfg.rollout.batch_size // cfg.rollout.n_samples)]
    engine.generate(requests, SamplingParams(temperature=1.0, max_new_tokens=cfg.rollout.max_new_tokens,
                                             n=cfg.rollout.n_samples, seed=1))


def _explaining_tracker():
    """A tracker that also remembers which op made each storage and what was live at the peak
    (--explain: printed by the child, grouped by op, shape and dtype)."""
    import torch
    from torch.utils._pytree import tree_leaves

    from megathink.planning.storage_tracker import LiveStorageTracker

    class Explaining(LiveStorageTracker):
        def __init__(self) -> None:
            super().__init__()
            self.made: dict[int, str] = {}
            self.at_peak: dict[int, int] = {}
            self.recent: list[str] = []
            self.peak_ops: list[str] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor) and t.untyped_storage()._cdata not in self._sizes:
                    self.made[t.untyped_storage()._cdata] = f"{func.__name__} {tuple(t.shape)} {t.dtype}"
            before = self.peak_bytes
            self.track_tensors(tree_leaves(out))
            self.recent = [*self.recent[-5:], func.__name__]
            if self.peak_bytes > before:
                self.at_peak = dict(self._sizes)
                self.peak_ops = list(self.recent)
            return out

        def explain(self) -> str:
            groups: dict[str, list[int]] = {}
            for key, size in self.at_peak.items():
                groups.setdefault(self.made.get(key, "(before the step)"), []).append(size)
            rows = sorted(groups.items(), key=lambda kv: -sum(kv[1]))
            lines = [f"  {sum(v) / MIB:9.2f} MiB  {len(v):4d} x  {k}" for k, v in rows[:40]]
            return "\n".join([f"  ops up to the peak: {' < '.join(self.peak_ops)}", *lines])

    return Explaining()


def _optimizer_tensors(optimizer) -> list:
    """Every tensor an optimizer holds: its parameters (fp32 masters) and state (moments);
    ZeRO-1's local optimizer included."""
    inner = getattr(optimizer, "optim", None)
    found = []
    for opt in (optimizer, inner) if inner is not None else (optimizer,):
        for group in opt.param_groups:
            found += list(group["params"])
        for state in opt.state.values():
            found += [v for v in state.values() if hasattr(v, "untyped_storage")]
    return found


def run_child(case: Case, out: Path) -> None:
    import torch

    from megathink.data.tokenizer import load_tokenizer
    from megathink.planning import ModelShape, plan_run
    from megathink.planning.storage_tracker import LiveStorageTracker
    from megathink.planning.workload import kl_reference
    from megathink.trainer.lr_schedule import build_scheduler
    from megathink.trainer.parked_reference import ParkedReference
    from megathink.trainer.policy import build_policy
    from megathink.trainer.ranks import process_rank

    torch.manual_seed(0)
    cfg = compose(case)
    bundle = load_tokenizer(cfg.tokenizer)
    bundle.tokenizer = _WideVocab(bundle.tokenizer)
    stage_cfg = cfg.sft if case.stage == "sft" else cfg.rl
    work = Path(os.environ.get("MEMORY_PLANNER_WORK", tempfile.mkdtemp()))
    started = time.monotonic()
    policy = build_policy(cfg, cfg.model, bundle, work)
    reference = None
    if case.stage in ("rl", "rollout") and kl_reference(cfg):
        reference = ParkedReference(policy.frozen_reference(), policy.backend.device, park=cfg.rl.park_reference)
    optimizer = policy.build_optimizer(stage_cfg.optimizer)
    scheduler = build_scheduler(optimizer, stage_cfg.optimizer, 10)
    # warm-up, untracked and on rows 8x shorter: the gradients and AdamW state exist from here on,
    # as in every step but the first (a rollout case takes an RL step first, as a run's rollouts do)
    _step(case, cfg, policy, reference, optimizer, scheduler, bundle, shrink=8)
    explain = bool(os.environ.get("MEMORY_PLANNER_EXPLAIN"))
    with (_explaining_tracker() if explain else LiveStorageTracker()) as tracker:
        for holder in (policy.backend, policy.sampler, reference.backend if reference is not None else None):
            if holder is not None:
                tracker.track_module(holder.model)
        tracker.track_tensors(_optimizer_tensors(optimizer))
        before = tracker.live_bytes
        if case.stage == "rollout":
            _rollout(cfg, policy, bundle, case.prompt)
        else:
            _step(case, cfg, policy, reference, optimizer, scheduler, bundle)
        measured = tracker.peak_bytes
    seconds = time.monotonic() - started
    if explain:
        print(f"live at the peak ({measured / MIB:.1f} MiB), rank {os.environ.get('RANK', '0')}:\n{tracker.explain()}")
    plan = plan_run(cfg, ModelShape.from_model_config(cfg.model, vocab_size=VOCAB),
                    world_size=case.nproc if cfg.parallel.backend == "megatron" else None, device="cpu")
    stage = plan.stages[0].memory
    rank = process_rank()
    role = stage.ranks[0] if rank == 0 or len(stage.ranks) == 1 else stage.ranks[-1]
    phases = {p.name: p for p in role.phases}
    planned = max((phases[name] for name in PHASES[case.stage] if name in phases), key=lambda p: p.total)
    lines = dict(planned.lines)
    if rank != 0:  # the planner's rank 0 holds the HF sampler; the other ranks of its stage do not
        lines["sampler (HF copy)"] = 0.0
    result = dict(case=case.name, rank=rank, role=role.rank if rank == 0 or len(stage.ranks) > 1 else "replica",
                  measured=measured, planned=sum(lines.values()), before=before, phase=planned.name, lines=lines,
                  layout=plan.layout.describe(), seconds=seconds)
    path = out.with_name(f"{out.stem}.rank{rank}.json")
    path.write_text(json.dumps(result), encoding="utf-8")


# -- the parent: every case in its own process --------------------------------------------------
def run_case(case: Case, workdir: Path, *, explain: bool = False) -> list[dict]:
    out = workdir / f"{case.name}.json"
    env = {**os.environ, "MEMORY_PLANNER_EXPLAIN": "1" if explain else "", "MEMORY_PLANNER_WORK": str(workdir / case.name), "OMP_NUM_THREADS": "1" if case.nproc > 1 else "2"}
    script = str(Path(__file__).resolve())
    if case.nproc == 1:
        cmd = [sys.executable, script, "--child", case.name, "--out", str(out)]
    else:
        from megathink.models.megatron.distributed import free_port

        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(case.nproc),
               "--master-port", str(free_port()), script, "--child", case.name, "--out", str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        print(f"{case.name}: failed\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}", file=sys.stderr)
        return []
    if explain:
        print(proc.stdout)
    return [json.loads(p.read_text()) for p in sorted(workdir.glob(f"{case.name}.rank*.json"))]


def report(rows: list[dict]) -> str:
    lines = ["| case | rank | layout | phase | planned GiB | measured GiB | planned / measured |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = r["planned"] / r["measured"] if r["measured"] else float("nan")
        lines.append(f"| {r['case']} | {r['rank']} ({r['role']}) | {r['layout']} | {r['phase']} | "
                     f"{r['planned'] / GIB:.3f} | {r['measured'] / GIB:.3f} | {ratio:.3f} |")
    worst = max((abs(r["planned"] / r["measured"] - 1) for r in rows if r["measured"]), default=0.0)
    lines.append(f"\nlargest deviation: {100 * worst:.1f}% over {len(rows)} rows")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="case names (default: all)")
    parser.add_argument("--list", action="store_true", help="print the cases and exit")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--detail", action="store_true", help="print each row's planned components")
    parser.add_argument("--explain", action="store_true", help="print what was live at each measured peak")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    by_name = {case.name: case for case in CASES}
    if args.child:
        run_child(by_name[args.child], args.out)
        return 0
    if args.list:
        for case in CASES:
            print(f"{case.name:32s} {case.stage:8s} nproc {case.nproc}  {' '.join(case.overrides)}")
        return 0
    chosen = [by_name[name] for name in args.only] if args.only else CASES
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, python {platform.python_version()}")
    rows = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for case in chosen:
            case_started = time.monotonic()
            got = run_case(case, Path(tmp), explain=args.explain)
            for row in got:
                ratio = row["planned"] / row["measured"]
                print(f"{case.name:30s} rank {row['rank']}: planned {row['planned'] / MIB:9.1f} MiB, measured "
                      f"{row['measured'] / MIB:9.1f} MiB, ratio {ratio:.3f} ({time.monotonic() - case_started:.0f} s)",
                      flush=True)
                if args.detail:
                    print("    " + ", ".join(f"{k} {v / MIB:.1f}" for k, v in row["lines"].items() if v))
            rows += got
    print(f"\n{report(rows)}\ntotal {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0 if rows and all(abs(r["planned"] / r["measured"] - 1) <= 0.15 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

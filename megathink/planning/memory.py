"""Per-GPU memory of a stage, by component, in each phase of its step, for the ranks that differ.

A stage step goes through phases that never overlap in time, so a rank's peak is the largest
phase, not their sum:

- training: a forward / backward of the largest micro-batch (activations.py), with the
  log-prob head's backward buffers on the last stage (logprob_memory.py); the backward working
  set is whichever is larger, the head's buffers or one layer's backward (with recompute: its
  recomputation), on top of everything kept. The gradients are all there from the second
  micro-batch of an optimizer step on; with one micro-batch per step (per replica) only the
  first ones the backward makes (the output layer's and a decoder layer's) exist at its peak;
- scoring: forward-only passes (old and reference log-probs; the KL reference is on the GPU);
- optimizer step: the fp32 gradient copies of the master-weight AdamW, megatron's fp64 clip;
- rollout / evaluation (rank 0): generation with the local engine or `model.generate`
  (generation_memory.py), with megatron's HF sampler on the GPU.

Every phase holds the static state (static_memory.py). The ranks planned: rank 0, which holds
the first pipeline stage (embedding, the most micro-batches in flight with 1F1B) and the
sampler and generation; and, with pp > 1, the last stage (output layer, log-prob head). Other
data-parallel replicas hold less than rank 0. A GPU plan adds `plan.overhead_gib` to every
phase (CUDA context, workspaces, fragmentation); a CPU plan does not.

Model copies follow trainer/parked_reference.py and trainer/megatron_policy.py: the KL
reference is on the GPU only in the scoring phase with `rl.park_reference` (the default), in
every phase without it; megatron rank 0's HF sampler only in the generation phases. A CPU plan
counts both in every phase (they are in the one memory a CPU run has).
"""

from __future__ import annotations

from dataclasses import dataclass

from megathink.config.run import RunConfig
from megathink.planning.activations import activation_bytes, layer_cost
from megathink.planning.generation_memory import decode_workspace_bytes, kv_cache_bytes
from megathink.planning.layout import Layout
from megathink.planning.logprob_memory import logprob_bytes
from megathink.planning.model_shape import ModelShape
from megathink.planning.static_memory import StaticBytes, static_bytes
from megathink.planning.workload import StageWork, kl_reference

GIB = float(1 << 30)

COMPONENTS = (
    "weights",
    "gradients",
    "fp32 master weights",
    "AdamW moments",
    "optimizer-step transients",
    "activations kept",
    "backward working set",
    "forward workspace",
    "KL reference",
    "sampler (HF copy)",
    "KV cache",
    "decode workspace",
    "CUDA context + allocator",
)
"""Table rows, in order."""


@dataclass(frozen=True)
class Phase:
    name: str
    lines: dict[str, float]  # component -> bytes
    note: str = ""

    @property
    def total(self) -> float:
        return sum(self.lines.values())


@dataclass(frozen=True)
class RankPlan:
    rank: str
    phases: tuple[Phase, ...]

    @property
    def peak(self) -> Phase:
        return max(self.phases, key=lambda p: p.total)


@dataclass(frozen=True)
class StagePlan:
    stage: str
    work: StageWork
    ranks: tuple[RankPlan, ...]

    @property
    def worst(self) -> tuple[RankPlan, Phase]:
        rank = max(self.ranks, key=lambda r: r.peak.total)
        return rank, rank.peak


def _state(static: StaticBytes, *, optimizer: bool = True) -> dict[str, float]:
    lines = {"weights": static.weights}
    if optimizer:
        lines.update({
            "gradients": static.gradients, "fp32 master weights": static.master_weights, "AdamW moments": static.moments,
        })
    return lines


def plan_stage(cfg: RunConfig, shape: ModelShape, layout: Layout, work: StageWork) -> StagePlan:
    """Every phase of `work` on rank 0 and, with pp > 1, on the last stage."""
    overhead = cfg.plan.overhead_gib * GIB if layout.device == "cuda" else 0.0
    roles = [("rank 0", True, layout.pp == 1)]
    if layout.pp > 1:
        roles.append((f"last stage (rank {layout.world - layout.world // layout.pp})", False, True))
    ranks = []
    for name, first, last in roles:
        phases = _phases(cfg, shape, layout, work, first=first, last=last, main=first)
        if overhead:
            phases = [Phase(p.name, {**p.lines, "CUDA context + allocator": overhead}, p.note) for p in phases]
        ranks.append(RankPlan(rank=name, phases=tuple(phases)))
    return StagePlan(stage=work.stage, work=work, ranks=tuple(ranks))


def _phases(
    cfg: RunConfig, shape: ModelShape, layout: Layout, work: StageWork, *, first: bool, last: bool, main: bool
) -> list[Phase]:
    static = static_bytes(shape, layout, first=first, last=last)
    host = layout.device == "cpu"  # a CPU run: every copy lives in the one memory measured
    # megatron rank 0's HF copy is parked on the CPU during training and visits the GPU for
    # local-engine rollouts and evaluations (`policy.sampling()`)
    sampler = static.sampler if host else 0.0
    kl = kl_reference(cfg) and work.stage == "rl"
    # the KL reference waits in host memory between its scoring passes with rl.park_reference
    resident_ref = static.reference if kl and (host or not cfg.rl.park_reference) else 0.0
    extra = {"sampler (HF copy)": sampler, "KL reference": resident_ref}
    phases: list[Phase] = []
    if work.largest is not None:
        mb = work.largest
        acts = activation_bytes(shape, layout, mb, work.micro_batches, first=first, last=last)
        head = logprob_bytes(shape, layout, cfg.kernels, mb.tokens / layout.cp, entropy=work.entropy) if last else None
        layer_backward = acts.backward
        working = max(layer_backward, head.backward if head else 0.0)
        note = f"{mb.describe()}, {acts.in_flight:g} in flight x {acts.layers} layers"
        if head is not None and head.backward > layer_backward:
            note += "; backward peak in the log-prob head"
        state = _state(static)
        if work.micro_batches == 1:
            # one micro-batch per optimizer step: the step began with zero_grad(set_to_none), so at
            # the backward's peak only the gradients of the output layer and one decoder layer exist
            state["gradients"] = static.first_gradients
        phases.append(Phase("training", {
            **state, "activations kept": acts.kept, "backward working set": working, **extra,
        }, note))
        if work.scoring_passes:
            transient = layer_cost(shape, layout, mb).forward_transient + (head.forward if head else 0.0)
            ref = static.reference if kl else 0.0
            phases.append(Phase("scoring", {
                **_state(static), "forward workspace": transient, **extra, "KL reference": ref,
            }, "forward-only log-probs" + (" (KL reference on the GPU)" if kl else "")))
        phases.append(Phase("optimizer step", {
            **_state(static), "optimizer-step transients": static.step_transient, **extra,
        }, "fp32 gradient copies / fp64 clip"))
    if main:
        for gen in work.generations:  # generation on this GPU (workload.py says which happen here)
            optimizer = work.largest is not None
            phases.append(Phase(gen.what, {
                **_state(static, optimizer=optimizer), **extra, "sampler (HF copy)": static.sampler,
                "KV cache": kv_cache_bytes(shape, gen),
                "decode workspace": decode_workspace_bytes(shape, gen, min(cfg.plan.max_prompt_tokens, gen.length)),
            }, f"{gen.sequences} sequences x {gen.length} tokens"))
    return phases

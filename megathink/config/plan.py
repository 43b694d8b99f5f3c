"""What the memory planner (`megathink plan`, and the check `megathink train` / `sft` run at
start-up) assumes about the GPUs and the data it cannot see.

The planner (`megathink.planning`) computes each trainer GPU's memory by component from the
model's `config.json` and the run's layout, compares the worst rank with `gpu_memory_gib`
less `headroom`, and estimates a step's time from its FLOPs at `mfu` of `peak_tflops`. The
lengths of the real prompts and responses are not read: `max_prompt_tokens` bounds the
prompts, the rollout caps bound the responses, and `length_fill` sets the mean length the
step time uses.
"""

from __future__ import annotations

from dataclasses import dataclass

from megathink.config.validation import check_float, check_int, fail


@dataclass(kw_only=True)
class PlanConfig:
    gpu_memory_gib: float = 80.0
    """Memory of one trainer GPU in GiB (an 80 GB H100: 80). The plan fits when the worst rank's
    peak, overhead included, is at most gpu_memory_gib * (1 - headroom)."""

    headroom: float = 0.10
    """Share of gpu_memory_gib kept free for what the plan does not model (allocator spikes,
    library workspaces, a longer prompt than max_prompt_tokens), in [0, 1)."""

    overhead_gib: float = 3.0
    """Fixed per-GPU memory outside the modelled tensors, in GiB: the CUDA context and loaded
    kernels (~0.6), cuBLAS / NCCL workspaces and communication buffers (~1), caching-allocator
    fragmentation (~1.5). Not counted in a CPU plan (trainer.device=cpu)."""

    mfu: float = 0.35
    """Model FLOPs utilisation the step-time estimate assumes: the share of peak_tflops the
    training and scoring passes reach (megatron-core dense bf16 training on H100s reports
    0.35-0.45 at long sequences; padding, pipeline bubbles and recompute are counted separately)."""

    peak_tflops: float = 989.0
    """Peak dense throughput of one GPU in TFLOP/s in the model dtype: 989 for an H100 SXM in
    bf16 (no sparsity); an H100 PCIe: 756; fp32 runs get the fp32/TF32 rate you give here."""

    world_size: int = 0
    """Trainer processes (GPUs) the plan assumes for `megathink plan`; 0: tp * pp * cp * dp with
    parallel.dp, else tp * pp * cp (one replica). A torchrun job's own WORLD_SIZE takes precedence
    in the start-up check."""

    max_prompt_tokens: int = 1024
    """Longest RL prompt in tokens (chat template applied) the plan assumes; the prompt files are
    not read. RL micro-batches are planned at this plus the response cap."""

    length_fill: float = 0.5
    """Mean length of an RL response (and of an SFT pair) as a share of its cap, for the
    step-time estimate only (memory is planned at the caps)."""

    transformer_engine: bool = True
    """Whether the GPU nodes have Transformer Engine, so the megatron backend runs TE's layers
    (flash attention, fused norms); false plans megatron-core's local layers with torch SDPA."""

    enforce: bool = True
    """`megathink train` / `sft` on a GPU refuse (exit 2) a layout the planner says does not fit,
    before any weights load; false only prints the plan and the knobs. A CPU run is never checked."""

    def __post_init__(self) -> None:
        check_float("plan.gpu_memory_gib", self.gpu_memory_gib, low=0.0, low_inclusive=False)
        check_float("plan.headroom", self.headroom, low=0.0, high=1.0, high_inclusive=False)
        check_float("plan.overhead_gib", self.overhead_gib, low=0.0)
        check_float("plan.mfu", self.mfu, low=0.0, high=1.0, low_inclusive=False)
        check_float("plan.peak_tflops", self.peak_tflops, low=0.0, low_inclusive=False)
        check_int("plan.world_size", self.world_size, low=0)
        check_int("plan.max_prompt_tokens", self.max_prompt_tokens, low=1)
        check_float("plan.length_fill", self.length_fill, low=0.0, high=1.0, low_inclusive=False)
        for key in ("transformer_engine", "enforce"):
            if not isinstance(getattr(self, key), bool):
                fail(f"plan.{key}", getattr(self, key), "must be true or false")

"""Which backend trains the policy and how it is sharded.

The HF backend is single-process (tp = pp = cp = 1); the sizes only matter to the Megatron
backend, where the world size must be a multiple of tp * pp * cp (the rest is data parallel).
"""

from __future__ import annotations

from dataclasses import dataclass

from megathink.config.validation import ConfigError, check_choice, check_int

BACKENDS = ("hf", "megatron")
RECOMPUTE = ("none", "selective", "full")


@dataclass(kw_only=True)
class ParallelConfig:
    backend: str = "hf"
    """'hf': one-process transformers model (CPU or one GPU); 'megatron': megatron-core."""

    tp: int = 1
    """Tensor-parallel size."""

    pp: int = 1
    """Pipeline-parallel size."""

    cp: int = 1
    """Megatron backend: context-parallel size. Each row (rollout, SFT example) is split over cp
    ranks in megatron's load-balanced layout and padded to a multiple of 2 * cp; attention runs
    as Transformer Engine's ring attention where TE is installed, else megathink's all-gather
    attention (models/megatron/context_parallel.py). For sequences too long for one GPU's
    activations (long thinking rollouts); 1 disables it."""

    vpp: int = 1
    """Megatron backend: virtual pipeline stages (model chunks) per pipeline rank, for megatron's
    interleaved 1F1B schedule (a smaller pipeline bubble for more p2p traffic); needs pp > 1 and
    the layers to divide into pp * vpp chunks. 1 disables interleaving."""

    dp: int = 0
    """Data-parallel size; 0 derives it as world_size / (tp * pp * cp)."""

    pack_sequences: bool = False
    """Megatron backend: put each micro-batch's samples end to end in one THD row (megatron's
    packed format: attention and RoPE per sample, no compute on padding; the losses still see
    one row per sample). Transformer Engine's THD attention where TE is installed, torch SDPA
    with a per-sample mask otherwise."""

    distributed_optimizer: bool = False
    """Megatron backend: shard the AdamW state over the ranks that hold the same model shard (the
    data-parallel replicas x the cp ranks; ZeRO stage 1, torch's ZeroRedundancyOptimizer): each
    keeps and updates the moments of about 1/(dp cp) of the shard's parameters and broadcasts
    the updated weights. Checkpoints keep the same format
    either way (a run resumes with or without it, at any layout). Off: every replica holds the
    whole state of its shard."""

    recompute: str = "none"
    """Activation recomputation: 'none' keeps every layer's activations for the backward pass;
    'full' keeps only each decoder layer's input and recomputes the layer in the backward pass
    (megatron-core: recompute_granularity='full', method 'uniform', one layer per group; HF
    backend: non-reentrant gradient checkpointing of the decoder layers); 'selective' (megatron
    backend only) recomputes the core attention alone (megatron-core's selective recompute of
    'core_attn'), the largest activations per FLOP on the local layers (Transformer Engine's
    fused attention keeps no score matrix, so it gains little there). Training passes only; the
    same losses and gradients either way; 'full' costs about one more forward pass per step.
    What each mode keeps per layer: docs/MEGATRON.md, "Activation memory"."""

    sequence_parallel: bool = False
    """Megatron backend with tp > 1: split the activations outside the tensor-parallel linears
    (norms, residuals, the layer inputs that 'full' recompute keeps) along the sequence over
    the tensor-parallel ranks (megatron-core's sequence parallelism), which divides them by tp;
    rows are padded to a multiple of tp. Needs Transformer Engine on a CUDA GPU (megatron's
    local layers use torch norms that refuse it): refused at model build otherwise, naming the
    package."""

    fp8: bool = False
    """Megatron backend: FP8 Transformer Engine layers (needs transformer_engine, a CUDA GPU and
    model.dtype=bfloat16). Otherwise the precision is model.dtype's (float32 or bfloat16)."""

    def __post_init__(self) -> None:
        check_choice("parallel.backend", self.backend, BACKENDS)
        for name in ("tp", "pp", "cp", "vpp"):
            check_int(f"parallel.{name}", getattr(self, name), low=1)
        check_int("parallel.dp", self.dp, low=0)
        check_choice("parallel.recompute", self.recompute, RECOMPUTE)
        if not isinstance(self.sequence_parallel, bool):
            raise ConfigError(f"parallel.sequence_parallel = {self.sequence_parallel!r} is invalid: must be true or false.")
        if self.sequence_parallel and self.tp == 1:
            raise ConfigError(
                "parallel.sequence_parallel = true is invalid with parallel.tp = 1: sequence parallelism splits "
                "activations over the tensor-parallel ranks; set parallel.tp > 1 or sequence_parallel=false."
            )
        if self.vpp > 1 and self.pp == 1:
            raise ConfigError(f"parallel.vpp = {self.vpp} is invalid: interleaving needs parallel.pp > 1.")
        if self.backend == "hf" and (self.fp8 or self.pack_sequences or self.distributed_optimizer):
            name = "fp8" if self.fp8 else "pack_sequences" if self.pack_sequences else "distributed_optimizer"
            raise ConfigError(f"parallel.{name} = true is invalid with parallel.backend='hf': it is a megatron backend option.")
        if self.backend == "hf" and self.recompute == "selective":
            raise ConfigError(
                "parallel.recompute = 'selective' is invalid with parallel.backend='hf': the HF backend recomputes "
                "whole decoder layers (gradient checkpointing); use parallel.recompute=full."
            )
        if self.backend == "hf":
            for name in ("tp", "pp", "cp", "vpp"):
                if getattr(self, name) != 1:
                    raise ConfigError(
                        f"parallel.{name} = {getattr(self, name)} is invalid with parallel.backend='hf': "
                        "the HF backend runs in one process; use parallel.backend=megatron to shard."
                    )

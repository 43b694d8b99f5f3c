"""Where the trainer's work lands: world size, tp / pp / cp / dp, vpp, recompute, and which
layer implementation each rank runs.

`resolve_layout(cfg, shape, world_size=, device=)` fixes the layout the planner plans for.
The world size is, in order: `world_size` (torchrun's WORLD_SIZE at start-up), then
`plan.world_size`, then tp * pp * cp * parallel.dp, then tp * pp * cp (one replica). The HF
backend is one process (world 1). The data-parallel size is what is left of the world over
tp * pp * cp; `parallel.dp`, when set, must match it (as the megatron backend requires).

`device` is the trainer's: 'cuda' (a GPU plan, the default for trainer.device auto / cuda) or
'cpu' (what the CPU benchmark measures: no CUDA overhead line, CPU kernels). The layer
implementation (`Layout.layers`) is:

- 'transformers' with the HF backend;
- 'megatron_te' with the megatron backend on a GPU with Transformer Engine (plan.transformer_engine);
- 'megatron_local' otherwise: megatron-core's local spec with megathink's LocalCoreAttention
  (torch SDPA), what runs on CPU and on GPUs without Transformer Engine.

ZeRO-1 (`parallel.distributed_optimizer`, megatron) shards the fp32 master weights and the
AdamW moments over the dp * cp ranks holding the same shard (trainer/optim.py); `zero` is that
count (1 without it).
"""

from __future__ import annotations

from dataclasses import dataclass

from megathink.config.run import RunConfig
from megathink.errors import ConfigError
from megathink.planning.model_shape import ModelShape


@dataclass(frozen=True)
class Layout:
    backend: str  # 'hf' | 'megatron'
    device: str  # 'cuda' | 'cpu'
    layers: str  # 'transformers' | 'megatron_local' | 'megatron_te'
    world: int
    tp: int
    pp: int
    cp: int
    dp: int
    vpp: int
    recompute: str  # 'none' | 'selective' | 'full'
    sequence_parallel: bool
    pack: bool  # megatron THD packing
    zero: int  # ranks sharing one copy of the optimizer state (ZeRO-1), 1 without

    def describe(self) -> str:
        if self.backend == "hf":
            return f"HF backend, 1 process, recompute {self.recompute}"
        parts = [f"world {self.world} = tp {self.tp} x pp {self.pp}"]
        if self.vpp > 1:
            parts[-1] += f" (vpp {self.vpp})"
        parts[-1] += f" x cp {self.cp} x dp {self.dp}"
        parts.append(f"recompute {self.recompute}")
        if self.sequence_parallel:
            parts.append("sequence parallel")
        if self.pack:
            parts.append("THD packing")
        if self.zero > 1:
            parts.append(f"ZeRO-1 over {self.zero}")
        parts.append({"megatron_te": "Transformer Engine layers", "megatron_local": "megatron local layers"}[self.layers])
        return ", ".join(parts)


def resolve_layout(cfg: RunConfig, shape: ModelShape, *, world_size: int | None = None, device: str = "cuda") -> Layout:
    """The layout of `cfg` (see the module docstring); ConfigError naming the field when the
    world does not divide or the model cannot be split."""
    p = cfg.parallel
    if device not in ("cuda", "cpu"):
        raise ValueError(f"resolve_layout: device = {device!r}; use 'cuda' or 'cpu'.")
    if p.backend == "hf":
        return Layout(
            backend="hf", device=device, layers="transformers", world=1, tp=1, pp=1, cp=1, dp=1, vpp=1,
            recompute=p.recompute, sequence_parallel=False, pack=False, zero=1,
        )
    model_parallel = p.tp * p.pp * p.cp
    world = world_size or cfg.plan.world_size or model_parallel * max(p.dp, 1)
    if world % model_parallel:
        raise ConfigError(
            f"plan.world_size = {world} is invalid with parallel.tp = {p.tp}, pp = {p.pp}, cp = {p.cp}: the world "
            f"size must be a multiple of tp * pp * cp = {model_parallel}."
        )
    dp = world // model_parallel
    if p.dp and p.dp != dp:
        raise ConfigError(
            f"parallel.dp = {p.dp} is invalid with {world} trainer processes at tp={p.tp}, pp={p.pp}, cp={p.cp}: "
            f"that leaves {dp} data-parallel replicas; set parallel.dp=0 (derived) or plan.world_size."
        )
    if shape.heads % p.tp or shape.kv_heads % p.tp or shape.ffn % p.tp:
        raise ConfigError(
            f"parallel.tp = {p.tp} is invalid for this model: {shape.heads} heads, {shape.kv_heads} KV heads and "
            f"the FFN width {shape.ffn} must all divide by it."
        )
    if shape.layers % (p.pp * p.vpp):
        raise ConfigError(
            f"parallel.pp = {p.pp} (vpp {p.vpp}) is invalid for this model: its {shape.layers} layers must divide "
            f"into pp * vpp = {p.pp * p.vpp} stages."
        )
    te = device == "cuda" and cfg.plan.transformer_engine
    return Layout(
        backend="megatron", device=device, layers="megatron_te" if te else "megatron_local", world=world,
        tp=p.tp, pp=p.pp, cp=p.cp, dp=dp, vpp=p.vpp, recompute=p.recompute, sequence_parallel=p.sequence_parallel,
        pack=p.pack_sequences, zero=dp * p.cp if p.distributed_optimizer else 1,
    )

"""AdamW from `OptimizerConfig` and global-norm gradient clipping.

Weight decay applies to matrices only: every parameter with fewer than two dimensions (biases,
RMSNorm weights) is in a no-decay group, as in the usual LLM recipes. Embedding matrices are
decayed like other matrices (the Thinkless recipe does not exempt them).

Implementation: torch's fused AdamW kernel (one launch per step for all parameters) when every
parameter is on a CUDA GPU, torch's default otherwise (CPU runs and tests);
`adamw_implementation` says which, and the stage logs it. Given a `shard_group` of several
processes (the megatron backend's data-parallel replicas with `parallel.distributed_optimizer`),
the AdamW is wrapped in torch's `ZeroRedundancyOptimizer` (ZeRO stage 1): each process keeps the
state of its part of the parameters and broadcasts them after its update. Models kept in bf16 /
fp16 get fp32 master weights (`master_weights.MasterWeightAdamW`): without them RL-sized
updates round away.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Optional

import torch

from megathink.config.optimizer import OptimizerConfig
from megathink.trainer.master_weights import MasterWeightAdamW


log = logging.getLogger(__name__)


def adamw_implementation(params: Iterable[torch.nn.Parameter]) -> str:
    """'fused' when every parameter is on a CUDA GPU, else 'default' (torch's choice)."""
    devices = {param.device.type for param in params}
    return "fused" if devices == {"cuda"} else "default"


def build_adamw(
    named_parameters: Iterable[tuple[str, torch.nn.Parameter]], cfg: OptimizerConfig, *, shard_group: Optional[Any] = None
) -> torch.optim.Optimizer:
    """AdamW with two groups: decayed (>= 2-D) and not decayed (biases and norm weights); its
    state sharded over `shard_group` (ZeRO-1) when that group has more than one process."""
    decay, no_decay = [], []
    for _, param in named_parameters:
        if param.requires_grad:
            (decay if param.dim() >= 2 else no_decay).append(param)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    impl = adamw_implementation(decay + no_decay)
    options: dict[str, Any] = dict(lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, fused=impl == "fused" or None)
    groups = [g for g in groups if g["params"]]
    # bf16 / fp16 weights: the update runs on fp32 master copies (master_weights.py)
    low_precision = any(p.dtype in (torch.bfloat16, torch.float16) for p in decay + no_decay)
    adamw: type[torch.optim.Optimizer] = MasterWeightAdamW if low_precision else torch.optim.AdamW
    what = f"torch AdamW, {impl} implementation" + (", fp32 master weights" if low_precision else "")
    if shard_group is not None and torch.distributed.get_world_size(shard_group) > 1:
        from torch.distributed.optim import ZeroRedundancyOptimizer

        replicas = torch.distributed.get_world_size(shard_group)
        log.info("optimizer: %s, state sharded over %d ranks holding the same weights (ZeRO-1)", what, replicas)
        return ZeroRedundancyOptimizer(groups, optimizer_class=adamw, process_group=shard_group, **options)
    log.info("optimizer: %s", what)
    return adamw(groups, **options)


def clip_gradients(parameters: Iterable[torch.nn.Parameter], max_norm: float) -> float:
    """Clip the global L2 gradient norm to `max_norm` (0 = no clipping); return the norm before clipping."""
    limit = max_norm if max_norm > 0 else float("inf")
    params = [p for p in parameters if p.grad is not None]
    if not params:
        return 0.0
    return float(torch.nn.utils.clip_grad_norm_(params, limit))


def clip_backend_gradients(backend: object, max_norm: float) -> float:
    """`clip_gradients` over the backend's parameters, or the backend's own global-norm clip when
    its parameters are shards of a larger model (megatron: the norm spans every TP / PP rank)."""
    own = getattr(backend, "clip_grad_norm", None)
    if own is not None:
        return float(own(max_norm))
    return clip_gradients(backend.parameters(), max_norm)  # type: ignore[attr-defined]

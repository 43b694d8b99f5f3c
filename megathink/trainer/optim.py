"""AdamW from `OptimizerConfig` and global-norm gradient clipping.

Weight decay applies to matrices only: every parameter with fewer than two dimensions (biases,
RMSNorm weights) is in a no-decay group, as in the usual LLM recipes. Embedding matrices are
decayed like other matrices (the Thinkless recipe does not exempt them).

Implementation: torch's fused AdamW kernel (one launch per step for all parameters) when every
parameter is on a CUDA GPU, torch's default otherwise (CPU runs and tests);
`adamw_implementation` says which, and the stage logs it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch

from megathink.config.optimizer import OptimizerConfig


log = logging.getLogger(__name__)


def adamw_implementation(params: Iterable[torch.nn.Parameter]) -> str:
    """'fused' when every parameter is on a CUDA GPU, else 'default' (torch's choice)."""
    devices = {param.device.type for param in params}
    return "fused" if devices == {"cuda"} else "default"


def build_adamw(named_parameters: Iterable[tuple[str, torch.nn.Parameter]], cfg: OptimizerConfig) -> torch.optim.AdamW:
    """AdamW with two groups: decayed (>= 2-D) and not decayed (biases and norm weights)."""
    decay, no_decay = [], []
    for _, param in named_parameters:
        if param.requires_grad:
            (decay if param.dim() >= 2 else no_decay).append(param)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    impl = adamw_implementation(decay + no_decay)
    log.info("optimizer: torch AdamW, %s implementation", impl)
    return torch.optim.AdamW(
        [g for g in groups if g["params"]], lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, fused=impl == "fused" or None
    )


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

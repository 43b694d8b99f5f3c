"""Run megatron-core on CPU over gloo: patches for its hard-coded CUDA calls, applied only without CUDA.

megatron-core assumes a GPU in a handful of places. On a machine without CUDA (CI, laptops)
`apply_cpu_compat()` replaces exactly those, and nothing on a machine with CUDA, so the same
megathink code runs on gloo here and on NCCL on clusters:

- `torch.cuda.current_device()` is used as a device (`.to(device=...)`, `torch.empty(...,
  device=...)`): it returns "cpu".
- the tensor-parallel RNG tracker reads and sets CUDA RNG states (`get_rng_state`,
  `set_rng_state`, `manual_seed`): they act on the CPU generator's state instead, so each
  tracker still forks its own reproducible stream. Activation recomputation
  (`parallel.recompute`: megatron's `tensor_parallel.checkpoint`, for 'full' and 'selective')
  needs nothing more: its `CheckpointFunction` saves and restores the RNG states through the
  same `_get_cuda_rng_state` / `_set_cuda_rng_state` and the tracker.
- `torch.cuda.synchronize()` after pipeline p2p and `torch.cuda.current_stream()` (0.19):
  a no-op and a stream stand-in whose `synchronize` / `wait_stream` do nothing.
- literal `device="cuda"` in the pipeline schedules and optimizer utilities, and the
  `torch.cuda.FloatTensor` type check in grad clipping: `torch.tensor`, `torch.zeros`,
  `torch.empty`, `torch.ones` and `torch.full` called with a CUDA device get the CPU instead,
  and lose `pin_memory=True` (context parallelism's RoPE slicing asks for it), which raises
  without an accelerator.

Not covered (they need GPUs): Transformer Engine layers (and with them sequence parallelism,
whose gathers and reduce-scatters run on gloo but whose norms megathink takes from TE only),
the distributed optimizer, fused kernels, FP8. `apply_cpu_compat()` is idempotent and returns whether it
patched anything. Modules that `torch.jit.script` at import (torch.distributed.optim) are
imported before the factories are wrapped, since TorchScript cannot compile the wrappers.
"""

from __future__ import annotations

import functools
import importlib
import logging
from typing import Any, Callable

import torch

log = logging.getLogger(__name__)

_APPLIED = False
_FACTORIES = ("tensor", "zeros", "empty", "ones", "full", "arange")


class _CPUStream:
    """What megatron needs from `torch.cuda.current_stream()` on CPU: nothing to wait for."""

    def synchronize(self) -> None:
        return None

    def wait_stream(self, stream: Any) -> None:
        return None

    def record_event(self, event: Any = None) -> None:
        return None


def _is_cuda(device: Any) -> bool:
    if isinstance(device, torch.device):
        return device.type == "cuda"
    if isinstance(device, str):
        return device.startswith("cuda")
    return isinstance(device, int)  # a bare index means a CUDA ordinal


def _cpu_device_factory(factory: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    @functools.wraps(factory)
    def wrapped(*args: Any, **kwargs: Any) -> torch.Tensor:
        if "device" in kwargs and _is_cuda(kwargs["device"]):
            kwargs["device"] = "cpu"
        kwargs.pop("pin_memory", None)  # no pinned-memory allocator without an accelerator
        return factory(*args, **kwargs)

    return wrapped


def _tensor_to_cpu(original: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    @functools.wraps(original)
    def wrapped(self: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if "device" in kwargs and _is_cuda(kwargs["device"]):
            kwargs["device"] = "cpu"
        if args and _is_cuda(args[0]) and not isinstance(args[0], int):
            args = ("cpu",) + args[1:]
        return original(self, *args, **kwargs)

    return wrapped


def apply_cpu_compat() -> bool:
    """Patch torch's CUDA entry points megatron-core calls, when CUDA is absent. True if patched."""
    global _APPLIED
    if torch.cuda.is_available():
        return False
    if _APPLIED:
        return True
    # Modules that torch.jit.script functions at import time cannot compile calls to the wrapped
    # factories below: load them first (torch's ZeRO optimizer, `parallel.distributed_optimizer`).
    importlib.import_module("torch.distributed.optim")

    cuda = torch.cuda
    cuda.current_device = lambda: "cpu"  # type: ignore[assignment]
    cuda.get_rng_state = lambda device="cuda": torch.get_rng_state()  # type: ignore[assignment]
    cuda.set_rng_state = lambda state, device="cuda": torch.set_rng_state(state)  # type: ignore[assignment]
    cuda.manual_seed = lambda seed: torch.manual_seed(seed)  # type: ignore[assignment]
    cuda.random.get_rng_state = cuda.get_rng_state  # type: ignore[assignment]
    from megatron.core.tensor_parallel import random as mcore_random

    mcore_random._get_cuda_rng_state = lambda device="cuda", clone=False, graph_safe=False: torch.get_rng_state()
    mcore_random._set_cuda_rng_state = lambda new_state, device=-1, graph_safe=False: torch.set_rng_state(new_state)
    cuda.synchronize = lambda device=None: None  # type: ignore[assignment]
    cuda.current_stream = lambda device=None: _CPUStream()  # type: ignore[assignment]
    cuda.FloatTensor = torch.FloatTensor  # type: ignore[attr-defined]
    for name in _FACTORIES:
        setattr(torch, name, _cpu_device_factory(getattr(torch, name)))
    torch.Tensor.to = _tensor_to_cpu(torch.Tensor.to)  # type: ignore[method-assign]
    torch.Tensor.cuda = lambda self, *args, **kwargs: self  # type: ignore[method-assign]
    _APPLIED = True
    log.info("megatron CPU compatibility layer applied (no CUDA): gloo, CPU RNG tracker, no streams")
    return True

"""`LiveStorageTracker`: the peak of live tensor storage bytes in this process, on the CPU.

The CPU analogue of `torch.cuda.max_memory_allocated()`, used to check the memory planner
against what the code really allocates (`benchmarks/memory_planner.py`, tests/planning). A
`TorchDispatchMode` sees every tensor an operator returns (factories, matmuls, autograd's
backward ops, collectives' receive buffers); each new storage is counted once, by its
`nbytes()`, from its creation until the storage itself is freed (a `weakref.finalize` on the
storage: torch keeps one Python object per live storage, so the finalizer runs exactly when
the last tensor or view of it dies). Storages that existed before the tracker started (model
weights built outside it) are added with `track_tensors` / `track_module`.

What it does not count, as `max_memory_allocated` does not: the allocator's rounding and
caching, Python objects, library workspaces outside torch tensors (oneDNN scratch pads, gloo
buffers). Views, in-place ops and `out=` writes allocate nothing and add nothing.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class LiveStorageTracker(TorchDispatchMode):
    """`with LiveStorageTracker() as tracker: ...` then `tracker.peak_bytes`, `tracker.live_bytes`."""

    def __init__(self) -> None:
        super().__init__()
        self._sizes: dict[int, int] = {}  # storage id (its StorageImpl address) -> bytes counted
        self.live_bytes = 0
        self.peak_bytes = 0

    # -- counting --------------------------------------------------------------------------
    def _free(self, key: int) -> None:
        self.live_bytes -= self._sizes.pop(key, 0)

    def track_tensors(self, tensors: Iterable[Any]) -> None:
        """Count the storages of `tensors` (non-tensors are skipped) if they are not counted yet."""
        for tensor in tensors:
            if not isinstance(tensor, torch.Tensor) or tensor.device.type == "meta":
                continue
            storage = tensor.untyped_storage()
            key = storage._cdata
            size = storage.nbytes()
            if key in self._sizes:  # counted already; an `out=` write may have resized it
                grown = size - self._sizes[key]
                if grown:
                    self._sizes[key] = size
                    self.live_bytes += grown
                    self.peak_bytes = max(self.peak_bytes, self.live_bytes)
                continue
            self._sizes[key] = size
            self.live_bytes += size
            self.peak_bytes = max(self.peak_bytes, self.live_bytes)
            weakref.finalize(storage, self._free, key)

    def track_module(self, module: torch.nn.Module) -> None:
        """Count a module's parameters, their gradients and its buffers."""
        self.track_tensors(p for p in module.parameters())
        self.track_tensors(p.grad for p in module.parameters() if p.grad is not None)
        self.track_tensors(module.buffers())

    def reset_peak(self) -> None:
        """Start a new peak from the bytes live now."""
        self.peak_bytes = self.live_bytes

    # -- the dispatch hook ---------------------------------------------------------------------
    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        self.track_tensors(tree_leaves(out))
        return out

"""Which `linear_logprob` implementation runs: 'fused' (Triton), 'chunked' (torch) or 'naive'.

`resolve_impl(impl, device)` turns a request into an implementation that can run there:

* 'auto' -> 'fused' on CUDA tensors when triton imports, else 'chunked' (never 'naive');
* 'fused' -> 'fused', or a `RuntimeError` naming what is missing (the triton package, or a
  CUDA device): a fused request never silently falls back, so a run configured for the
  Triton kernels does not quietly train at the chunked path's speed;
* 'chunked' and 'naive' run anywhere.

On CPU the fused kernels run only under Triton's interpreter (`TRITON_INTERPRET=1` set before
triton is first imported): slow, for the tests. `kernel_ops` imports the Triton module lazily,
so megathink itself imports without triton.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Callable, NamedTuple, Optional

import torch

IMPLS = ("fused", "chunked", "naive")
"""The implementations `kernels.logprob` may name."""

_TRITON_MODULE = "megathink.kernels.linear_logprob_triton"


class KernelOps(NamedTuple):
    row_stats: Callable  # (hidden, weight, targets, *, vocab_start, temperature, entropy, chunk_tokens) -> RowStats
    dlogits: Callable  # (hidden, weight, targets, lse, entropy, g, g_ent, *, vocab_start, temperature, out) -> [N, w]
    chunk_tokens: Callable[[int, torch.dtype], int]  # default tile buffer (in tokens of V logits) for (vocab, dtype)
    fused: bool


def _interpreting() -> bool:
    loaded = sys.modules.get(_TRITON_MODULE)
    if loaded is not None:  # the kernels were built when the module was imported
        return bool(loaded.INTERPRETING)
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "yes", "on")


def fused_unavailable_reason(device: torch.device | str) -> Optional[str]:
    """Why the fused Triton kernels cannot run on `device`, or None when they can."""
    device = torch.device(device)
    if importlib.util.find_spec("triton") is None:
        return "the 'triton' package is not installed (pip install -c constraints.txt triton)"
    if device.type == "cuda" or (device.type == "cpu" and _interpreting()):
        return None
    return (
        f"the fused Triton kernels need a CUDA device, and this run's device is {device.type!r} "
        "(on CPU they run only under TRITON_INTERPRET=1, for tests)"
    )


def resolve_impl(impl: str, device: torch.device | str) -> str:
    """'auto' / 'fused' / 'chunked' / 'naive' -> the implementation to run on `device`."""
    if impl not in IMPLS + ("auto",):
        raise ValueError(f"linear_logprob impl = {impl!r} is invalid: must be one of 'auto', " + ", ".join(map(repr, IMPLS)))
    reason = fused_unavailable_reason(device) if impl in ("auto", "fused") else None
    if impl == "auto":
        return "chunked" if reason else "fused"
    if impl == "fused" and reason:
        raise RuntimeError(f"linear_logprob impl='fused' cannot run: {reason}; use 'chunked'.")
    return impl


def kernel_ops(impl: str) -> KernelOps:
    """The row-statistics and dlogits functions of 'fused' or 'chunked'."""
    if impl == "fused":
        triton_impl = importlib.import_module(_TRITON_MODULE)
        blocks = triton_impl._blocks("dlogits")["BLOCK_N"]
        return KernelOps(
            triton_impl.fused_row_stats,
            triton_impl.fused_dlogits,
            lambda vocab, dtype: triton_impl.default_chunk_tokens(vocab, dtype, blocks),
            True,
        )
    if impl == "chunked":
        from megathink.kernels import linear_logprob_chunked as chunked

        return KernelOps(
            chunked.chunked_row_stats,
            chunked.chunked_dlogits,
            lambda vocab, dtype: chunked.default_chunk_tokens(vocab),
            False,
        )
    raise ValueError(f"kernel_ops: impl = {impl!r} has no chunk kernels; use 'fused' or 'chunked'.")

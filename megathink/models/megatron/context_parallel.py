"""Context parallelism: each rank of a `parallel.cp` group holds 1/cp of every sequence.

The layout is megatron's load-balanced one (the one its RoPE slicing and Transformer Engine's
ring attention expect): a sequence of L tokens (L a multiple of 2 cp) is cut into 2 cp equal
chunks and cp rank r holds chunks r and 2 cp - 1 - r, so every rank gets the same share of
causal attention work. An unpacked row is one sequence; a packed THD row (`packing.py`) splits
every slot this way, as Transformer Engine's `thd_get_partitioned_indices` does.
`cp_token_index(L, cp, r)` lists the columns rank r holds, in order.

`ContextSplit` is one micro-batch's split, used by `forward.run_schedule` and
`local_attention.LocalCoreAttention`:

- `split.local(x)`: this rank's columns of a `[b, S, ...]` tensor (ids, positions, targets).
- `split.gather(local)`: per-token results (log-probs, entropies) put back together on every
  cp rank, `[b, S / cp] -> [b, S]`, so the shared loss functions see whole rows. Autograd:
  every cp rank computes the same loss from the same gathered values, so the backward pass
  keeps this rank's columns of the gradient and sends nothing; the parameter gradients of the
  cp ranks are then partial sums, added up by the all-reduce over data x context parallel
  ranks (`MegatronBackend._finish_grads`).
- `split.gather_sequence(local)`: keys and values `[S / cp, ...] -> [S, ...]` for the local
  attention (the all-gather scheme of Llama 3's long-context training); backward sums every
  rank's gradient and keeps this rank's rows.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.distributed as dist


def cp_token_index(width: int, cp: int, cp_rank: int) -> torch.Tensor:
    """The columns [L / cp] of a sequence of L = `width` tokens that cp rank `cp_rank` holds:
    chunks r and 2 cp - 1 - r of 2 cp."""
    if width % (2 * cp):
        raise ValueError(f"context parallelism: the sequence length {width} must be a multiple of 2 * cp = {2 * cp}")
    chunk = width // (2 * cp)
    first = torch.arange(cp_rank * chunk, (cp_rank + 1) * chunk)
    second = torch.arange((2 * cp - 1 - cp_rank) * chunk, (2 * cp - cp_rank) * chunk)
    return torch.cat([first, second])


def padded_width(width: int, cp: int) -> int:
    """`width` rounded up to a multiple of 2 cp (1 cp: unchanged)."""
    multiple = 2 * cp if cp > 1 else 1
    return -(-width // multiple) * multiple


def slot_edges(bounds: torch.Tensor | Sequence[int]) -> tuple[int, ...]:
    """Slot boundaries as python ints (one device sync for a CUDA tensor)."""
    return tuple(int(b) for b in (bounds.tolist() if isinstance(bounds, torch.Tensor) else bounds))


def slot_token_index(bounds: torch.Tensor | Sequence[int], cp: int, cp_rank: int) -> torch.Tensor:
    """The columns of a row of slots (boundaries `bounds` [n + 1]) that cp rank `cp_rank` holds:
    its share of every slot, slot after slot."""
    edges = slot_edges(bounds)
    return torch.cat([start + cp_token_index(end - start, cp, cp_rank) for start, end in zip(edges, edges[1:]) if end > start])


@functools.lru_cache(maxsize=16)
def _held_indices(edges: tuple[int, ...], cp: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(every cp rank's columns [cp, S / cp], the inverse order [S]): one micro-batch's layout is
    asked for by every layer, so it is computed once (read-only tensors)."""
    held = torch.stack([slot_token_index(edges, cp, rank) for rank in range(cp)])
    return held, torch.argsort(held.reshape(-1))


@dataclass(frozen=True)
class ContextSplit:
    """How one micro-batch's row is split over the cp group (see the module note)."""

    index: torch.Tensor  # [S / cp] long, the global columns this rank holds
    order: torch.Tensor  # [S] long, each global column's place in the cp-rank-order concatenation
    group: Any

    @classmethod
    def of(cls, bounds: torch.Tensor | Sequence[int], cp: int, cp_rank: int, group: Any) -> "ContextSplit":
        """The split of a row whose sequences (slots) end at `bounds` ([0, S] for an unpacked row)."""
        held, order = _held_indices(slot_edges(bounds), cp)
        return cls(index=held[cp_rank], order=order, group=group)

    def local(self, x: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """This rank's columns of `x` along `dim`."""
        return x.index_select(dim, self.index.to(x.device))

    def gather(self, local: torch.Tensor) -> torch.Tensor:
        """[b, S / cp, ...] of every cp rank -> [b, S, ...]; backward keeps this rank's columns."""
        return _Gather.apply(local, self, 1, False)

    def gather_sequence(self, local: torch.Tensor) -> torch.Tensor:
        """[S / cp, ...] of every cp rank -> [S, ...]; backward all-reduces and keeps this rank's rows."""
        return _Gather.apply(local, self, 0, True)


def _all_gather_cat(local: torch.Tensor, group: Any, dim: int) -> torch.Tensor:
    """Every cp rank's `local`, concatenated along `dim` in cp-rank order."""
    parts = [torch.empty_like(local) for _ in range(dist.get_world_size(group))]
    dist.all_gather(parts, local.contiguous(), group=group)
    return torch.cat(parts, dim=dim)


class _Gather(torch.autograd.Function):
    """Every cp rank's share along `dim`, in global order. Backward: with `summed`, every rank's
    gradient is summed first (keys and values: each rank's queries used them all); without,
    this rank's part of its own gradient is kept (every rank computed the same loss)."""

    @staticmethod
    def forward(ctx: Any, local: torch.Tensor, split: ContextSplit, dim: int, summed: bool) -> torch.Tensor:
        ctx.split, ctx.dim, ctx.summed = split, dim, summed
        return _all_gather_cat(local, split.group, dim=dim).index_select(dim, split.order.to(local.device))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Optional[torch.Tensor], None, None, None]:
        if ctx.summed:
            grad = grad.contiguous().clone()
            dist.all_reduce(grad, group=ctx.split.group)
        return ctx.split.local(grad, dim=ctx.dim), None, None, None

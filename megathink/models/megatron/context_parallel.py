"""Context parallelism: each rank of a `parallel.cp` group holds 1/cp of every sequence.

The layout is megatron's load-balanced one (the one its RoPE slicing and Transformer Engine's
ring attention expect): a row of S tokens (S a multiple of 2 cp) is cut into 2 cp equal chunks
and cp rank r holds chunks r and 2 cp - 1 - r, so every rank gets the same share of causal
attention work. `cp_token_index(S, cp, r)` lists the global columns rank r holds, in order.

Three pieces, used by `forward.run_schedule` and the layer spec of `model.py`:

- `split_columns(x, index)`: this rank's columns of a `[b, S, ...]` tensor (ids, targets, and
  the query rows of a packed block mask).
- `gather_columns(local, index, group)`: the `[b, S]` per-token results (log-probs, entropies)
  put back together on every cp rank, so the shared loss functions see whole rows. Autograd:
  every cp rank computes the same loss from the same gathered values, so the backward pass
  keeps this rank's columns of the gradient and sends nothing; the parameter gradients of the
  cp ranks are then partial sums, added up by the data-parallel all-reduce that runs over
  data x context parallel ranks (`MegatronBackend._finish_grads`).
- `ContextParallelAttention`: the core attention of megatron's local layer spec when cp > 1
  (megatron's own `DotProductAttention` refuses cp; with Transformer Engine, TE's ring
  attention is used instead). Keys and values are all-gathered over the cp group (the
  all-gather scheme of Llama 3's long-context training; backward: all-reduce and keep this
  rank's rows) and this rank's queries attend to them under a causal mask in global columns,
  or under a packed block mask whose query rows are this rank's (`[b, 1, S / cp, S]`).

Departure from TE: TE passes key/value chunks around a ring and never holds the full keys;
the all-gather holds `[S, b, groups, head_dim]` per layer, which is small next to the
activations at the sequence lengths this path is for (CPU tests, GPUs without TE).
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
import torch.distributed as dist


def cp_token_index(width: int, cp: int, cp_rank: int) -> torch.Tensor:
    """The global columns [S / cp] that cp rank `cp_rank` holds: chunks r and 2 cp - 1 - r of 2 cp."""
    if width % (2 * cp):
        raise ValueError(f"context parallelism: the row width {width} must be a multiple of 2 * cp = {2 * cp}")
    chunk = width // (2 * cp)
    first = torch.arange(cp_rank * chunk, (cp_rank + 1) * chunk)
    second = torch.arange((2 * cp - 1 - cp_rank) * chunk, (2 * cp - cp_rank) * chunk)
    return torch.cat([first, second])


def padded_width(width: int, cp: int) -> int:
    """`width` rounded up to a multiple of 2 cp (1 cp: unchanged)."""
    multiple = 2 * cp if cp > 1 else 1
    return -(-width // multiple) * multiple


def split_columns(x: torch.Tensor, index: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """This rank's columns of `x` along `dim` (`index` from `cp_token_index`)."""
    return x.index_select(dim, index.to(x.device))


def _all_gather_cat(local: torch.Tensor, group: Any, dim: int) -> torch.Tensor:
    """Every cp rank's `local`, concatenated along `dim` in cp-rank order."""
    parts = [torch.empty_like(local) for _ in range(dist.get_world_size(group))]
    dist.all_gather(parts, local.contiguous(), group=group)
    return torch.cat(parts, dim=dim)


def _global_order(width: int, cp: int) -> torch.Tensor:
    """For each global column, its place in the rank-order concatenation of the cp ranks' pieces."""
    held = torch.cat([cp_token_index(width, cp, rank) for rank in range(cp)])  # [S]: rank-order columns
    return torch.argsort(held)


class _GatherColumns(torch.autograd.Function):
    """[b, S / cp] -> [b, S]; backward keeps this rank's columns (every rank's loss is the same)."""

    @staticmethod
    def forward(ctx: Any, local: torch.Tensor, index: torch.Tensor, group: Any) -> torch.Tensor:
        cp = dist.get_world_size(group)
        width = local.shape[1] * cp
        ctx.save_for_backward(index)
        return _all_gather_cat(local, group, dim=1).index_select(1, _global_order(width, cp).to(local.device))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Optional[torch.Tensor], None, None]:
        (index,) = ctx.saved_tensors
        return grad.index_select(1, index.to(grad.device)), None, None


class _GatherSequence(torch.autograd.Function):
    """[S / cp, ...] -> [S, ...] in global order; backward sums every rank's gradient (each rank's
    queries used all the keys) and keeps this rank's rows."""

    @staticmethod
    def forward(ctx: Any, local: torch.Tensor, index: torch.Tensor, group: Any) -> torch.Tensor:
        cp = dist.get_world_size(group)
        ctx.save_for_backward(index)
        ctx.group = group
        order = _global_order(local.shape[0] * cp, cp).to(local.device)
        return _all_gather_cat(local, group, dim=0).index_select(0, order)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Optional[torch.Tensor], None, None]:
        (index,) = ctx.saved_tensors
        total = grad.contiguous().clone()
        dist.all_reduce(total, group=ctx.group)
        return total.index_select(0, index.to(grad.device)), None, None


def gather_columns(local: torch.Tensor, index: torch.Tensor, group: Any) -> torch.Tensor:
    """Per-token values [b, S / cp, ...] of every cp rank -> [b, S, ...] in global columns (see the module note)."""
    return _GatherColumns.apply(local, index, group)


def _cp_group() -> Any:
    from megatron.core import parallel_state

    return parallel_state.get_context_parallel_group()


class ContextParallelAttention(torch.nn.Module):
    """Core attention over a context-parallel group for megatron's local layer spec (plain torch).

    Takes megatron's core-attention arguments: query [S / cp, b, heads, d], key / value
    [S / cp, b, groups, d] (GQA not expanded) in this rank's load-balanced columns; returns
    [S / cp, b, heads * d]. `attention_mask` None means causal; a bool mask (True = masked)
    must be [b, 1, S / cp, S]: this rank's query rows over every key column.
    """

    def __init__(
        self, config: Any, layer_number: int, attn_mask_type: Any, attention_type: str,
        attention_dropout: Optional[float] = None, softmax_scale: Optional[float] = None,
        cp_comm_type: Optional[str] = None, pg_collection: Any = None,
    ) -> None:
        super().__init__()
        from megatron.core import parallel_state

        self.config = config
        tp = parallel_state.get_tensor_model_parallel_world_size()
        self.heads = config.num_attention_heads // tp
        self.groups = config.num_query_groups // tp
        self.softmax_scale = softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(config.kv_channels)
        dropout = config.attention_dropout if attention_dropout is None else attention_dropout
        if dropout:
            raise ValueError("ContextParallelAttention: attention dropout is not supported (megathink trains with 0).")

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: Optional[torch.Tensor],
        attn_mask_type: Any = None, attention_bias: Any = None, packed_seq_params: Any = None,
    ) -> torch.Tensor:
        if attention_bias is not None or packed_seq_params is not None:
            raise ValueError("ContextParallelAttention: attention bias and THD packed sequences are not supported.")
        group = _cp_group()
        cp = dist.get_world_size(group)
        local, b = query.shape[0], query.shape[1]
        width = local * cp
        index = cp_token_index(width, cp, dist.get_rank(group)).to(query.device)  # [S / cp]
        key = _GatherSequence.apply(key, index, group)  # [S, b, groups, d]
        value = _GatherSequence.apply(value, index, group)
        repeat = self.heads // self.groups
        q = query.permute(1, 2, 0, 3)  # [b, heads, S / cp, d]
        k = key.repeat_interleave(repeat, dim=2).permute(1, 2, 3, 0)  # [b, heads, d, S]
        v = value.repeat_interleave(repeat, dim=2).permute(1, 2, 0, 3)  # [b, heads, S, d]
        scores = torch.matmul(q, k).float() * self.softmax_scale  # [b, heads, S / cp, S]
        if attention_mask is None:
            columns = torch.arange(width, device=query.device)
            masked = columns[None, :] > index[:, None]  # [S / cp, S]: keys after the query
        else:
            masked = attention_mask.to(torch.bool)  # [b, 1, S / cp, S]
        scores = scores.masked_fill(masked, float("-inf"))
        probs = torch.softmax(scores, dim=-1).to(v.dtype)
        out = torch.matmul(probs, v)  # [b, heads, S / cp, d]
        return out.permute(2, 0, 1, 3).reshape(local, b, self.heads * query.shape[-1])

"""Core attention of megatron's local layer spec: torch's SDPA, with THD-packed rows and
context parallelism.

megatron-core's `DotProductAttention` refuses both (they live in Transformer Engine's
attention) and materialises the scores itself; `LocalCoreAttention` takes the same arguments,
does both, and calls `torch.nn.functional.scaled_dot_product_attention` (flash / memory-
efficient kernels on GPUs without TE, the math kernel on CPU). So the whole THD / CP path of
megatron (the THD RoPE, the per-slot cp split, the pipeline shapes, the loss gathers) runs on
CPU and on GPUs without TE. With Transformer Engine, TE's attention runs instead and this
module is not built.

- THD (`packed_seq_params` with `qkv_format='thd'`): queries, keys and values arrive as
  `[t, heads, d]`; each token sees the tokens of its own slot (`cu_seqlens_q_padded`, else
  `cu_seqlens_q`) up to itself.
- CP (cp > 1): the tokens are this rank's share (`context_parallel.ContextSplit`); keys and
  values are all-gathered over the cp group and the mask is built in global columns.
- Neither: plain causal attention over `[s, b, heads, d]` (SDPA's causal kernels, no mask).

Departures from TE: with THD or CP the mask is dense (`[S / cp, S]` per layer; TE never builds
one), and the cp scheme is Llama 3's all-gather rather than TE's ring exchange, which holds the
full keys `[S, b, groups, d]` per layer. Both are small at the lengths this path serves (CPU tests,
GPUs without TE). Attention dropout is refused (megathink trains with 0).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, Optional

import torch
import torch.nn.functional as F

from megathink.models.megatron.context_parallel import ContextSplit, slot_edges


@functools.lru_cache(maxsize=16)
def _slot_positions(edges: tuple[int, ...], width: int) -> tuple[torch.Tensor, torch.Tensor]:
    columns = torch.arange(width)
    bounds = torch.tensor(edges, dtype=torch.long)
    slot = torch.bucketize(columns, bounds[1:], right=True)  # [S]
    return slot, columns - bounds[slot]


def slot_positions(bounds: torch.Tensor | Sequence[int], width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(slot id [S], position within the slot [S]) of every column of a row with slot ends
    `bounds` (computed once per layout: every layer asks; read-only tensors)."""
    return _slot_positions(slot_edges(bounds), width)


class LocalCoreAttention(torch.nn.Module):
    """megatron core attention (same constructor and forward arguments): causal rows, THD rows, cp > 1."""

    def __init__(
        self, config: Any, layer_number: int, attn_mask_type: Any, attention_type: str,
        attention_dropout: Optional[float] = None, softmax_scale: Optional[float] = None,
        cp_comm_type: Optional[str] = None, pg_collection: Any = None,
    ) -> None:
        super().__init__()
        from megatron.core import parallel_state

        tp = parallel_state.get_tensor_model_parallel_world_size()
        self.heads = config.num_attention_heads // tp
        self.groups = config.num_query_groups // tp
        self.softmax_scale = softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(config.kv_channels)
        dropout = config.attention_dropout if attention_dropout is None else attention_dropout
        if dropout:
            raise ValueError("LocalCoreAttention: attention dropout is not supported (megathink trains with 0).")

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: Optional[torch.Tensor],
        attn_mask_type: Any = None, attention_bias: Any = None, packed_seq_params: Any = None,
    ) -> torch.Tensor:
        from megatron.core import parallel_state

        if attention_bias is not None or attention_mask is not None:
            raise ValueError("LocalCoreAttention: attention masks and biases are not supported (pack with THD slots).")
        thd = packed_seq_params is not None
        if thd:  # [t, heads, d] -> [t, 1, heads, d]
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        local, b = query.shape[0], query.shape[1]
        cp = parallel_state.get_context_parallel_world_size()
        width = local * cp
        if thd:
            padded = packed_seq_params.cu_seqlens_q_padded
            bounds = slot_edges(packed_seq_params.cu_seqlens_q if padded is None else padded)
        else:
            bounds = (0, width)
        visible = None  # one causal sequence per row: SDPA's causal kernels, no mask
        if thd or cp > 1:
            slot, position = slot_positions(bounds, width)  # [S] each
            index = torch.arange(width)
            if cp > 1:
                split = ContextSplit.of(
                    bounds, cp, parallel_state.get_context_parallel_rank(), parallel_state.get_context_parallel_group()
                )
                key, value = split.gather_sequence(key), split.gather_sequence(value)  # [S, b, groups, d]
                index = split.index
            # a query sees the keys of its own slot up to itself: [S / cp, S], True = attend
            visible = (slot[None, :] == slot[index][:, None]) & (position[None, :] <= position[index][:, None])
            visible = visible.to(query.device)
        repeat = self.heads // self.groups
        q = query.permute(1, 2, 0, 3)  # [b, heads, S / cp, d]
        k = key.repeat_interleave(repeat, dim=2).permute(1, 2, 0, 3)  # [b, heads, S, d]
        v = value.repeat_interleave(repeat, dim=2).permute(1, 2, 0, 3)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=visible, is_causal=visible is None, scale=self.softmax_scale
        )
        # out: [b, heads, S / cp, d]
        return out.permute(2, 0, 1, 3).reshape(local, b, self.heads * query.shape[-1])

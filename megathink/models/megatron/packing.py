"""Sequence packing for the megatron backend: a micro-batch's samples end to end in one THD row.

`pack_stream(ids, mask, slot_multiple=, total=, pad_id=)` puts the samples of a trainer
micro-batch (`[b, T]`, left or right padded) one after another into a single row of `total`
tokens, megatron's THD layout (`[1, t]` tokens with cumulative sequence lengths): each sample
in a slot rounded up to `slot_multiple` tokens (2 cp with context parallelism, which splits
every slot load-balanced over the cp ranks; 1 otherwise), the rest of the row one padding
slot. It returns the ids `[1, total]`, positions restarting at 0 in every slot, and a
`PackedLayout` whose `cu_seqlens` (slot boundaries, int32) become megatron's
`PackedSeqParams`: Transformer Engine's THD attention, or `local_attention.LocalCoreAttention`
on the local layer spec, keeps every slot to itself, and megatron's THD RoPE restarts in each.
Attention costs the sum of each sample's own square, and no layer computes on padding beyond
the slot rounding.

`unpack_values` maps per-token results of the packed row back to the caller's `[b, T]`
columns, so the loss functions (DeGRPO's control-token position included: it is the first
response column of the caller's row) never see the packing. A value at a sample's first
packed position would be the previous slot's prediction across the boundary: it is dropped
(column 0 of every sample is 0, as without packing).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PackedLayout:
    """Where each caller row went in the packed row, and the slot boundaries."""

    offsets: torch.Tensor  # [b] long, packed column of each sample's first token
    lengths: torch.Tensor  # [b] long, real tokens of each sample
    starts: torch.Tensor  # [b] long, first real column in the caller's row
    cu_seqlens: torch.Tensor  # [slots + 1] int32, slot boundaries (the samples', then the tail padding's)


def slot_lengths(lengths: list[int], slot_multiple: int) -> list[int]:
    """Each sample's slot: its length (at least 1) rounded up to a multiple of `slot_multiple`."""
    return [-(-max(n, 1) // slot_multiple) * slot_multiple for n in lengths]


def stream_length(lengths: list[int], slot_multiple: int) -> int:
    """Tokens the samples of one micro-batch take in a packed row."""
    return sum(slot_lengths(lengths, slot_multiple))


def pack_stream(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, *, slot_multiple: int, total: int, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, PackedLayout]:
    """ids / mask [b, T] -> (ids [1, total], positions [1, total], layout)."""
    real = attention_mask != 0  # [b, T]
    lengths = real.sum(dim=1)  # [b]
    starts = torch.where(lengths > 0, real.float().argmax(dim=1), torch.zeros_like(lengths))  # [b]
    slots = slot_lengths(lengths.tolist(), slot_multiple)
    used = sum(slots)
    if used > total or (total - used) % slot_multiple:
        raise ValueError(f"pack_stream: {used} packed tokens do not fill a row of {total} in slots of {slot_multiple}")
    ids = torch.full((1, total), pad_id, dtype=input_ids.dtype)
    positions = torch.zeros((1, total), dtype=torch.long)
    bounds = [0]
    for i, slot in enumerate(slots):
        offset, n, s = bounds[-1], int(lengths[i]), int(starts[i])
        ids[0, offset : offset + n] = input_ids[i, s : s + n]
        positions[0, offset : offset + slot] = torch.arange(slot)
        bounds.append(offset + slot)
    if total > used:  # the tail: one padding slot
        positions[0, used:] = torch.arange(total - used)
        bounds.append(total)
    layout = PackedLayout(
        offsets=torch.tensor(bounds[: len(slots)], dtype=torch.long),
        lengths=lengths,
        starts=starts,
        cu_seqlens=torch.tensor(bounds, dtype=torch.int32),
    )
    return ids, positions, layout


def unpack_values(values: torch.Tensor, layout: PackedLayout, width: int) -> torch.Tensor:
    """Per-token values of the packed row [1, total] (column t scores packed token t) -> [b, width]
    in the caller's columns; zero outside each sample and at its first token."""
    total = values.shape[1]
    columns = torch.arange(total, device=values.device)[None, :]  # [1, total]
    source = (layout.offsets.to(values.device)[:, None] + columns).clamp(max=total - 1)  # [b, total]
    per_sample = values[0][source]  # [b, total]: each sample's values from column 0
    lengths = layout.lengths.to(values.device)[:, None]
    keep = (columns >= 1) & (columns < lengths)  # drop the boundary prediction at column 0
    aligned = torch.where(keep, per_sample, torch.zeros((), dtype=values.dtype, device=values.device))
    out_cols = torch.arange(width, device=values.device)[None, :]  # [1, width]
    offset = out_cols - layout.starts.to(values.device)[:, None]  # [b, width]
    inside = (offset >= 0) & (offset < lengths)
    gathered = aligned.gather(1, offset.clamp(min=0, max=total - 1))
    return torch.where(inside, gathered, torch.zeros((), dtype=values.dtype, device=values.device))

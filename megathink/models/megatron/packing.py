"""Sequence packing for the megatron backend: several samples per row, none seeing another.

`pack_rows(ids, mask, capacity=, rows=)` places each sample of a trainer micro-batch (`[b, T]`,
left or right padded) into rows of `capacity` tokens, first-fit by decreasing length, and
returns the packed ids `[p, C]`, positions restarting at 0 for every sample, and a
block-diagonal causal attention mask `[p, 1, C, C]` (True = masked, megatron's convention), so
attention within a packed row is exactly each sample's own causal attention. `unpack_values`
maps per-token results of the packed rows back to the caller's `[b, T]` columns, so the loss
functions (DeGRPO's control-token position included: it is the first response column of the
caller's row) never see the packing.

A value at a sample's first packed position would be the previous sample's prediction across
the boundary: it is dropped (column 0 of every sample is 0, as without packing).

Departure from THD packing (Transformer Engine's `cu_seqlens`): the block mask is dense, so
attention still costs `C^2` per packed row; the linear layers, which dominate at these
lengths, stop spending compute on padding. With Transformer Engine layers packing is refused
for now (THD is the planned GPU path).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PackedLayout:
    """Where each caller row went: its packed row, its first column there, and its extent."""

    rows: torch.Tensor  # [b] long, packed row of each sample
    offsets: torch.Tensor  # [b] long, packed column of each sample's first token
    lengths: torch.Tensor  # [b] long, real tokens of each sample
    starts: torch.Tensor  # [b] long, first real column in the caller's row


def first_fit(lengths: list[int], capacity: int) -> list[tuple[int, int]]:
    """(packed row, offset) for each length, first-fit by decreasing length; rows = bins of `capacity`."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    used: list[int] = []
    place: list[tuple[int, int]] = [(0, 0)] * len(lengths)
    for i in order:
        need = max(lengths[i], 1)
        if need > capacity:
            raise ValueError(f"pack_rows: a sample of {need} tokens does not fit rows of capacity {capacity}")
        for row, fill in enumerate(used):
            if fill + need <= capacity:
                place[i] = (row, fill)
                used[row] += need
                break
        else:
            place[i] = (len(used), 0)
            used.append(need)
    return place


def count_rows(lengths: list[int], capacity: int) -> int:
    return 1 + max((row for row, _ in first_fit(lengths, capacity)), default=0)


def pack_rows(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, *, capacity: int, rows: int, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, PackedLayout]:
    """ids / mask [b, T] -> (ids [rows, C], positions [rows, C], mask [rows, 1, C, C], layout)."""
    real = attention_mask != 0  # [b, T]
    lengths = real.sum(dim=1)  # [b]
    starts = torch.where(lengths > 0, real.float().argmax(dim=1), torch.zeros_like(lengths))  # [b]
    place = first_fit(lengths.tolist(), capacity)
    if rows < 1 + max(row for row, _ in place):
        raise ValueError(f"pack_rows: {rows} packed rows are too few for this micro-batch")
    ids = torch.full((rows, capacity), pad_id, dtype=input_ids.dtype)
    positions = torch.zeros((rows, capacity), dtype=torch.long)
    segment = torch.full((rows, capacity), -1, dtype=torch.long)  # sample index of each packed column
    for i, (row, offset) in enumerate(place):
        n, s = int(lengths[i]), int(starts[i])
        ids[row, offset : offset + n] = input_ids[i, s : s + n]
        positions[row, offset : offset + n] = torch.arange(n)
        segment[row, offset : offset + n] = i
    same = (segment[:, :, None] == segment[:, None, :]) & (segment[:, :, None] >= 0)  # [p, C, C]
    causal = torch.ones(capacity, capacity, dtype=torch.bool).tril()  # [C, C]
    masked = ~(same & causal)  # True = the query may not see the key
    masked |= torch.eye(capacity, dtype=torch.bool) & (segment[:, :, None] < 0)  # empty slots see themselves (no NaN)
    masked = torch.where((segment < 0)[:, :, None], ~torch.eye(capacity, dtype=torch.bool), masked)
    layout = PackedLayout(
        rows=torch.tensor([row for row, _ in place], dtype=torch.long),
        offsets=torch.tensor([offset for _, offset in place], dtype=torch.long),
        lengths=lengths,
        starts=starts,
    )
    return ids, positions, masked[:, None], layout


def unpack_values(values: torch.Tensor, layout: PackedLayout, width: int) -> torch.Tensor:
    """Per-token values of packed rows [p, C] (column t scores packed token t) -> [b, width] in
    the caller's columns; zero outside each sample and at its first token."""
    capacity = values.shape[1]
    columns = torch.arange(capacity, device=values.device)[None, :]  # [1, C]
    source = (layout.offsets.to(values.device)[:, None] + columns).clamp(max=capacity - 1)  # [b, C]
    per_sample = values.index_select(0, layout.rows.to(values.device)).gather(1, source)  # [b, C]
    lengths = layout.lengths.to(values.device)[:, None]
    keep = (columns >= 1) & (columns < lengths)  # drop the boundary prediction at column 0
    aligned = torch.where(keep, per_sample, torch.zeros((), dtype=values.dtype, device=values.device))  # [b, C]
    out_cols = torch.arange(width, device=values.device)[None, :]  # [1, width]
    offset = out_cols - layout.starts.to(values.device)[:, None]  # [b, width]
    inside = (offset >= 0) & (offset < lengths)
    gathered = aligned.gather(1, offset.clamp(min=0, max=capacity - 1))
    return torch.where(inside, gathered, torch.zeros((), dtype=values.dtype, device=values.device))

"""How the vocabulary is cut into tiles: the chunked forward and every backward take `W` a
slice of rows (vocabulary columns of the logits) at a time, for all N tokens at once.

A tile's logits buffer `[N, w]` holds at most as many elements as `[chunk_tokens, V]` (the
memory bound `chunk_tokens` sets), so `w = chunk_tokens * V // N`, cut down to a multiple of
TILE_ALIGN when wider than it and never below one column. Tiling the vocabulary rather than
the tokens keeps every matmul's token dimension at N: on CPU the `[N, H] x [H, w]` logits
matmul runs ~10% faster than `[C, H] x [H, V]` with C ~ 441 (measured, benchmarks/RESULTS.md),
and in the backward each row of grad_weight is one matmul over all N tokens, written once.
"""

from __future__ import annotations

TILE_ALIGN = 128
"""Vocabulary tiles are a multiple of this many columns (when wider than it)."""


def tile_columns(rows: int, vocab: int, chunk_tokens: int) -> int:
    """Columns per vocabulary tile, so that its `[rows, w]` buffer holds no more elements than a
    `[chunk_tokens, vocab]` one (at least one column, a multiple of TILE_ALIGN when wider)."""
    width = chunk_tokens * vocab // max(rows, 1)
    if width >= vocab:
        return vocab
    return max(1, width // TILE_ALIGN * TILE_ALIGN if width >= TILE_ALIGN else width)

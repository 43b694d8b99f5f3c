"""The context-parallel token layout: megatron's load-balanced split of a row (or of every THD
slot of a packed row) over cp ranks.

Pure index arithmetic (no process group): the parity tests run the attention and the gathers
under torchrun (test_megatron_parity.py, test_backend_parity.py).
"""

from __future__ import annotations

import pytest
import torch

from megathink.models.megatron.context_parallel import ContextSplit, cp_token_index, padded_width, slot_token_index


def test_each_rank_holds_chunk_r_and_its_mirror() -> None:
    assert cp_token_index(8, 2, 0).tolist() == [0, 1, 6, 7]
    assert cp_token_index(8, 2, 1).tolist() == [2, 3, 4, 5]
    assert cp_token_index(12, 3, 1).tolist() == [2, 3, 8, 9]


@pytest.mark.parametrize("cp", [1, 2, 4])
def test_ranks_cover_every_column_once_with_equal_causal_work(cp: int) -> None:
    width = 16 * cp
    held = [cp_token_index(width, cp, rank) for rank in range(cp)]
    assert sorted(torch.cat(held).tolist()) == list(range(width))
    work = {int((index + 1).sum()) for index in held}  # keys each rank's queries attend to
    assert len(work) == 1


def test_widths_are_padded_to_twice_cp() -> None:
    assert [padded_width(w, 2) for w in (1, 4, 5, 9)] == [4, 4, 8, 12]
    assert padded_width(9, 1) == 9
    with pytest.raises(ValueError, match="multiple of 2 \\* cp = 4"):
        cp_token_index(9, 2, 0)


def test_packed_rows_split_every_slot_and_gather_back_in_order() -> None:
    bounds = torch.tensor([0, 4, 12, 16], dtype=torch.int32)  # slots of 4, 8 and 4 tokens
    assert slot_token_index(bounds, 2, 0).tolist() == [0, 3, 4, 5, 10, 11, 12, 15]
    assert slot_token_index(bounds, 2, 1).tolist() == [1, 2, 6, 7, 8, 9, 13, 14]
    split = ContextSplit.of(bounds, 2, 1, group=None)
    assert torch.equal(split.index, slot_token_index(bounds, 2, 1))
    pieces = torch.cat([slot_token_index(bounds, 2, rank) for rank in range(2)])  # what the all-gather concatenates
    assert pieces[split.order].tolist() == list(range(16))
    row = torch.arange(16)[None] * 10  # [1, S]
    assert split.local(row).tolist() == [[10, 20, 60, 70, 80, 90, 130, 140]]

"""The context-parallel token layout: megatron's load-balanced split of a row over cp ranks.

Pure index arithmetic (no process group): the parity tests run the attention and the gathers
under torchrun (test_megatron_parity.py, test_backend_parity.py).
"""

from __future__ import annotations

import pytest
import torch

from megathink.models.megatron.context_parallel import cp_token_index, padded_width


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

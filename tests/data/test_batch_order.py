"""EpochOrder: the batch rule every SFT reader shares, and its jump-ahead `advance`."""

from __future__ import annotations

import pytest

from megathink.data.batch_order import EpochOrder, epoch_order
from megathink.errors import DataError


@pytest.mark.parametrize("size, per_batch", [(20, 4), (18, 4), (7, 7), (9, 2)])
def test_advance_equals_taking_batches_one_by_one(size, per_batch):
    order = EpochOrder(size, per_batch, seed=3)
    for start in [(0, 0), (2, 1), (1, size), (4, size - per_batch)]:
        order.load_state_dict({"epoch": start[0], "position": start[1]})
        for taken in range(3 * order.batches_per_epoch + 2):
            assert order.advance(*start, taken) == (order.epoch, order.position), (start, taken)
            expected = order.indices_at(order.epoch, order.position)
            assert order.next_indices() == expected


def test_epochs_cover_every_question_once_in_a_fresh_order():
    order = EpochOrder(18, 4, seed=0)
    first = [order.next_indices() for _ in range(4)]
    assert len({i for batch in first for i in batch}) == 16  # 2 questions skipped at the epoch's end
    assert order.state_dict() == {"epoch": 0, "position": 16}
    second = order.next_indices()
    assert order.state_dict() == {"epoch": 1, "position": 4}
    assert second == epoch_order(18, 0, 1)[:4].tolist() != first[0]


def test_bad_sizes_and_states_are_refused():
    with pytest.raises(DataError, match="questions_per_batch = 0"):
        EpochOrder(10, 0, seed=0)
    with pytest.raises(DataError, match="only 3 SFT questions for 4 questions per batch"):
        EpochOrder(3, 4, seed=0)
    with pytest.raises(DataError, match="does not fit 10 questions"):
        EpochOrder(10, 2, seed=0).load_state_dict({"epoch": 0, "position": 11})

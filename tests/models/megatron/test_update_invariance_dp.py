"""The RL update at DP = 2 (megatron, 2 gloo processes) equals DP = 1 (HF backend, one micro-batch).

Micro-batches of one sequence spread over two replicas, and token-budget micro-batches of packed
rows balanced over them (update_invariance_worker.py), give the DP = 1 update's loss, grad norm,
metrics and updated weights, with one and with two mini-batches: the loss's token and sequence
counts are the whole mini-batch's (rl.loss_normalization='mini_batch').
"""

from __future__ import annotations

import pytest
from conftest import read_json, torchrun

pytestmark = [pytest.mark.megatron, pytest.mark.slow]


def test_update_is_the_same_at_dp1_and_dp2_for_any_split(tmp_path) -> None:
    out = tmp_path / "invariance.json"
    torchrun("update_invariance_worker.py", 2, str(out))
    rows = read_json(out)
    assert len(rows) == 2 * 2 * 2  # algorithms x mini-batch counts x variants
    for row in rows:
        label = f"{row['algorithm']} mini_batches={row['mini_batches']} {row['variant']}"
        assert row["weights_moved"] > 1e-4, label  # the update did something
        assert row["weight_diff"] < 1e-6 + 1e-4 * row["weights_moved"], label
        for key, (want, got) in row["metrics"].items():
            assert got == pytest.approx(want, rel=1e-5, abs=1e-7), f"{label}: {key}"

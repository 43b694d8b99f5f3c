"""The megatron backend trains like the HF backend: same SFT loss curve and same DeGRPO updates.

Both backends start from the same random toy Qwen2 weights and see the same batches through the
same trainer code (`sft_step`, `score_batch` + `rl_update`, via `models.run_micro_batches`); the
megatron side runs real megatron-core schedules on 1-2 gloo processes at TP=1, TP=2, PP=2 and
PP=2 with two model chunks per rank (the interleaved schedule, a 4-layer model), and CP=2
(context parallelism, with and without packing).
"""

from __future__ import annotations

import pytest
from conftest import read_json, torchrun

pytestmark = [pytest.mark.megatron, pytest.mark.slow]
# (tp, pp, dp, kernels.logprob, packing): the logits route ('naive') and the hidden-state route
# ('chunked', megathink.kernels.vocab_parallel_linear_logprob), on both backends; dp=2 splits
# the micro-batches over two replicas and sums their gradients; 'pack' puts each micro-batch's
# samples end to end in one THD row (the loss sees the caller's columns either way); 'vpp=2'
# gives each pipeline rank two model chunks (interleaved 1F1B; the RL update's single
# micro-batch is topped up to pp by a zero-loss filler); 'cp=2' splits every row over two
# context-parallel ranks (all-gather attention; their partial gradients summed; unpacked CP
# rows train in tests/trainer/test_megatron_stages.py, the naive route's logits are checked in
# test_megatron_parity.py).
LAYOUTS = [
    (1, 1, 1, "chunked", ""), (2, 1, 1, "chunked", ""), (1, 2, 1, "chunked", ""), (2, 1, 1, "naive", ""),
    (1, 1, 2, "chunked", ""), (1, 2, 1, "chunked", "pack"), (1, 2, 1, "naive", "vpp=2"), (1, 2, 1, "chunked", "vpp=2"),
    (1, 1, 1, "chunked", "pack cp=2"),
]


def processes(tp: int, pp: int, dp: int, extra: str) -> int:
    cp = next((int(word[3:]) for word in extra.split() if word.startswith("cp=")), 1)
    return tp * pp * dp * cp


@pytest.mark.parametrize("tp, pp, dp, impl, extra", LAYOUTS)
def test_sft_loss_curve_matches_hf(tmp_path, tp, pp, dp, impl, extra) -> None:
    out = tmp_path / "sft.json"
    torchrun("sft_parity_worker.py", processes(tp, pp, dp, extra), str(tp), str(pp), "4", str(out), impl, *extra.split())
    result = read_json(out)
    for (hf_loss, hf_norm), (mc_loss, mc_norm) in zip(result["hf"], result["megatron"], strict=True):
        assert mc_loss == pytest.approx(hf_loss, rel=1e-5)
        assert mc_norm == pytest.approx(hf_norm, rel=1e-5)


@pytest.mark.parametrize("tp, pp, dp, impl, extra", LAYOUTS)
def test_first_rl_updates_match_hf(tmp_path, tp, pp, dp, impl, extra) -> None:
    out = tmp_path / "rl.json"
    torchrun("rl_parity_worker.py", processes(tp, pp, dp, extra), str(tp), str(pp), str(out), impl, *extra.split())
    result = read_json(out)
    for hf_row, mc_row in zip(result["hf"], result["megatron"], strict=True):
        assert hf_row.keys() == mc_row.keys()
        for key, value in hf_row.items():
            assert mc_row[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key

"""parallel.recompute on the megatron backend: none / selective / full train identically, and recompute runs.

One torchrun launch (recompute_worker.py, 2 gloo processes) builds the same 4-layer model at
TP=2 (chunked log-probs) and at PP=2 (naive log-probs, THD-packed rows) once per mode. The
losses, every gradient of every rank's shard and the global grad norm equal recompute none's;
pre-hooks show that 'full' reruns every decoder layer in the backward pass (its input norm
runs twice per layer and micro-batch) and 'selective' only the core attention, and that a
no-grad scoring pass reruns nothing. A broken mapping of the mode (recompute silently off, or
the wrong granularity) changes the counts; a wrong recompute changes the gradients.
"""

from __future__ import annotations

import json

import pytest
from conftest import torchrun

from megathink.errors import ConfigError
from megathink.models.megatron.model import recompute_options


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = tmp_path_factory.mktemp("recompute")
    torchrun("recompute_worker.py", 2, str(out))
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in (0, 1)]


# (calls of each layer's input norm, of each core attention) per layer and micro-batch in training
EXPECTED_CALLS = {"none": (1, 1), "selective": (1, 2), "full": (2, 2)}


@pytest.mark.megatron
@pytest.mark.slow
@pytest.mark.parametrize("layout", ["tp2", "pp2"])
def test_recompute_modes_train_identically(results: list[dict], layout: str) -> None:
    for rank_results in results:
        modes = rank_results[layout]
        plain = modes["none"]
        assert plain["grad_max"] > 0
        for mode, got in modes.items():
            assert got["recompute_granularity"] == (None if mode == "none" else mode)
            assert got["losses"] == pytest.approx(plain["losses"], rel=1e-6), mode
            assert got["grad_names"], mode
            assert got["grad_max_diff"] <= 1e-6 * plain["grad_max"], mode
            assert got["grad_norm"] == pytest.approx(plain["grad_norm"], rel=1e-6), mode
            assert got["scored_max_diff"] <= 1e-6, mode


@pytest.mark.megatron
@pytest.mark.slow
@pytest.mark.parametrize("layout", ["tp2", "pp2"])
def test_recompute_reruns_what_the_mode_says(results: list[dict], layout: str) -> None:
    for rank_results in results:
        for mode, got in rank_results[layout].items():
            per_pass = got["layers_here"] * got["micro_batches"]
            layer, attention = EXPECTED_CALLS[mode]
            assert got["train_calls"] == {"layer": layer * per_pass, "attention": attention * per_pass}, mode
            # a forward-only scoring pass (one micro-batch) never recomputes
            assert got["score_calls"] == {"layer": got["layers_here"], "attention": got["layers_here"]}, mode


def test_recompute_options_map_onto_megatron_fields() -> None:
    assert recompute_options("none") == {}
    assert recompute_options("full") == {
        "recompute_granularity": "full", "recompute_method": "uniform", "recompute_num_layers": 1,
    }
    assert recompute_options("selective") == {"recompute_granularity": "selective", "recompute_modules": ["core_attn"]}
    with pytest.raises(ConfigError, match="parallel.recompute = 'block'"):
        recompute_options("block")

"""parallel.sequence_parallel on the megatron backend.

Without Transformer Engine (and CUDA) it is refused at model build, naming the package and the
way out, before the policy builds or writes anything. The machinery around TE's norms runs on
CPU (sequence_parallel_worker.py, one 2-process torchrun launch at TP=2): megatron's sequence
scatter / gathers, megathink's row padding to a multiple of tp, the hidden-state route's
gather and the norm-gradient sum over TP give the losses, gradients, log-probs and entropies of
TP=2 without sequence parallelism, on both log-prob routes, packed and with full recompute.
Dropping any of the three megathink pieces fails it (the padding and the gather crash; without
the gradient sum the norm gradients are 1/tp partial sums).
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import torchrun

from megathink.config import ParallelConfig, RunConfig
from megathink.errors import ConfigError
from megathink.models.megatron.gpt_spec import GPTSpec
from megathink.models.megatron.model import (
    Implementations,
    build_gpt_chunks,
    choose_implementations,
    have_transformer_engine,
    transformer_config,
)
from megathink.trainer.megatron_policy import build_megatron_policy

without_te = pytest.mark.skipif(
    have_transformer_engine() and torch.cuda.is_available(),
    reason="Transformer Engine with CUDA: sequence parallelism is allowed",
)
REFUSAL = (
    r"parallel\.sequence_parallel = true needs the transformer_engine package"
    r".*megathink\[gpu\].*parallel\.sequence_parallel=false"
)
SPEC = GPTSpec.from_hf_config(
    dict(model_type="qwen2", vocab_size=93, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
)


@without_te
def test_sequence_parallel_without_transformer_engine_is_refused_at_model_build() -> None:
    with pytest.raises(ConfigError, match=REFUSAL):
        choose_implementations("fp32", sequence_parallel=True)
    with pytest.raises(ConfigError, match=REFUSAL):  # before any parallel state is needed
        build_gpt_chunks(SPEC, tp=2, pp=1, sequence_parallel=True)
    assert choose_implementations("fp32").layers == "local"


@without_te
def test_the_megatron_policy_refuses_before_building_anything(tmp_path) -> None:
    cfg = RunConfig(parallel=ParallelConfig(backend="megatron", tp=2, sequence_parallel=True))
    with pytest.raises(ConfigError, match=REFUSAL):
        build_megatron_policy(cfg, cfg.model, None, tmp_path / "stage")  # type: ignore[arg-type]
    assert not (tmp_path / "stage").exists()


def test_transformer_config_passes_sequence_parallel_and_recompute_through() -> None:
    impl = Implementations(layers="local", precision="fp32", cuda=False)
    config = transformer_config(SPEC, tp=2, pp=1, impl=impl, recompute="full", sequence_parallel=True)
    assert config.sequence_parallel and config.recompute_granularity == "full"
    assert (config.recompute_method, config.recompute_num_layers) == ("uniform", 1)
    plain = transformer_config(SPEC, tp=2, pp=1, impl=impl)
    assert not plain.sequence_parallel and plain.recompute_granularity is None


@pytest.mark.megatron
@pytest.mark.slow
def test_sequence_parallel_trains_like_tensor_parallel(tmp_path) -> None:
    torchrun("sequence_parallel_worker.py", 2, str(tmp_path))
    for rank in (0, 1):
        cases = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert set(cases) == {"chunked", "naive", "chunked_packed", "chunked_full_recompute"}
        for name, got in cases.items():
            assert got["sequence_parallel"], name
            assert got["marked"] == 2 * SPEC.num_layers + 1, name  # two norms per layer and the final norm
            want_losses, sp_losses = got["losses"]
            assert sp_losses == pytest.approx(want_losses, rel=1e-6), name
            assert got["grad_names"], name
            assert got["grad_max_diff"] <= 1e-5 * got["grad_max"], name
            assert got["marked_grad_max_diff"] <= 1e-5 * got["grad_max"], name
            assert got["logp_max_diff"] <= 1e-5 and got["entropy_max_diff"] <= 1e-5, name
            assert got["logp_shape"] == [3, 15], name  # the caller's columns, padding removed

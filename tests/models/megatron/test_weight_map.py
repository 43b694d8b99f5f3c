"""HF <-> megatron layouts without processes: bit-exact round trips, and errors that name tensors."""

from __future__ import annotations

import pytest
import torch

from megathink.errors import ConfigError, DataError
from megathink.models.megatron.gpt_spec import GPTSpec
from megathink.models.megatron.weight_map import hf_to_megatron, megatron_to_hf


def _hf(kind: str, layers: int = 4):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    common = dict(vocab_size=93, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                  num_attention_heads=4, num_key_value_heads=2)
    torch.manual_seed(0)
    if kind == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(tie_word_embeddings=False, **common))
    else:
        model = LlamaForCausalLM(LlamaConfig(tie_word_embeddings=True, **common))
    return GPTSpec.from_hf_config(model.config.to_dict()), model.state_dict()


def _shards(hf, spec, tp, pp, te=False):
    return [[hf_to_megatron(hf, spec, tp_rank=t, tp_size=tp, pp_rank=p, pp_size=pp, te=te) for t in range(tp)]
            for p in range(pp)]


@pytest.mark.parametrize("kind", ["qwen2", "llama"])
@pytest.mark.parametrize("tp, pp, te", [(1, 1, False), (2, 1, False), (1, 2, False), (2, 2, True), (4, 1, False)])
def test_round_trip_is_bit_exact(kind, tp, pp, te) -> None:
    spec, hf = _hf(kind)
    if spec.tied_embeddings:
        hf = {k: v for k, v in hf.items() if k != "lm_head.weight"}
    shards = _shards(hf, spec, tp, pp, te)
    back = megatron_to_hf(shards, spec, te=te)
    assert set(back) == set(hf)
    for name, tensor in hf.items():
        assert torch.equal(back[name], tensor), name
    embed = shards[0][0]["embedding.word_embeddings.weight"]
    assert embed.shape[0] == spec.padded_vocab(tp) // tp  # vocab padded to a multiple of tp, split


def test_qkv_layout_groups_queries_with_their_kv_head() -> None:
    spec, hf = _hf("qwen2", layers=1)
    qkv = hf_to_megatron(hf, spec, tp_rank=0, tp_size=1, pp_rank=0, pp_size=1)["decoder.layers.0.self_attention.linear_qkv.weight"]
    d = spec.head_dim
    q, k, v = (hf[f"model.layers.0.self_attn.{x}_proj.weight"] for x in "qkv")
    group1 = qkv[4 * d : 8 * d]  # group 1: query heads 2, 3, then k_1, v_1
    assert torch.equal(group1[: 2 * d], q[2 * d : 4 * d])
    assert torch.equal(group1[2 * d : 3 * d], k[d : 2 * d]) and torch.equal(group1[3 * d :], v[d : 2 * d])


def test_unknown_missing_and_extra_tensors_are_named() -> None:
    spec, hf = _hf("qwen2", layers=1)
    with pytest.raises(DataError, match="'model.layers.0.mlp.up_proj.weight' is missing"):
        hf_to_megatron({k: v for k, v in hf.items() if "up_proj" not in k}, spec, tp_rank=0, tp_size=1, pp_rank=0, pp_size=1)
    with pytest.raises(DataError, match="'model.extra.weight' has no place"):
        hf_to_megatron({**hf, "model.extra.weight": torch.zeros(1)}, spec, tp_rank=0, tp_size=1, pp_rank=0, pp_size=1)
    shards = _shards(hf, spec, 1, 1)
    shards[0][0]["decoder.layers.0.mystery.weight"] = torch.zeros(1)
    with pytest.raises(DataError, match="'decoder.layers.0.mystery.weight'.*refusing to drop it"):
        megatron_to_hf(shards, spec)


def test_spec_reads_transformers_5_rope_and_refuses_what_it_cannot_express() -> None:
    spec, _ = _hf("qwen2", layers=1)
    base = {"model_type": "qwen2", "num_hidden_layers": 2, "hidden_size": 32, "intermediate_size": 64,
            "num_attention_heads": 4, "vocab_size": 10}
    assert GPTSpec.from_hf_config({**base, "rope_parameters": {"rope_theta": 1e6, "rope_type": "default"}}).rope_theta == 1e6
    assert GPTSpec.from_hf_config({**base, "rope_theta": 5e5}).rope_theta == 5e5
    with pytest.raises(ConfigError, match="model_type = 'gpt2'"):
        GPTSpec.from_hf_config({**base, "model_type": "gpt2"})
    with pytest.raises(ConfigError, match="rope scaling"):
        GPTSpec.from_hf_config({**base, "rope_parameters": {"rope_type": "yarn", "factor": 4.0}})
    with pytest.raises(ConfigError, match="parallel.tp = 3"):
        spec.check_parallel(3, 1)
    with pytest.raises(ConfigError, match="parallel.pp = 2"):
        GPTSpec.from_hf_config({**base, "num_hidden_layers": 3}).check_parallel(1, 2)

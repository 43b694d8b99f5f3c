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
    with pytest.raises(ConfigError, match="parallel.vpp = 2 is invalid: the 6 layers"):
        GPTSpec.from_hf_config({**base, "num_hidden_layers": 6}).check_parallel(1, 2, 2)
    GPTSpec.from_hf_config({**base, "num_hidden_layers": 8}).check_parallel(1, 2, 2)


def test_virtual_stages_are_a_finer_pipeline() -> None:
    """With vpp, chunk c of pipeline rank r is virtual stage c * pp + r of pp * vpp: the weight map
    slices the model as if the pipeline had pp * vpp stages, and the round trip is exact."""
    spec, hf = _hf("llama", layers=4)  # tied: the last virtual stage keeps the embedding copy
    pp, vpp = 2, 2
    rank0_chunk1 = hf_to_megatron(hf, spec, tp_rank=0, tp_size=1, pp_rank=1 * pp + 0, pp_size=pp * vpp)
    assert rank0_chunk1["decoder.layers.0.self_attention.linear_proj.weight"].equal(hf["model.layers.2.self_attn.o_proj.weight"])
    assert "embedding.word_embeddings.weight" not in rank0_chunk1 and "output_layer.weight" not in rank0_chunk1
    last = hf_to_megatron(hf, spec, tp_rank=0, tp_size=1, pp_rank=pp * vpp - 1, pp_size=pp * vpp)
    assert "output_layer.weight" in last and "decoder.layers.0.mlp.linear_fc2.weight" in last
    back = megatron_to_hf(_shards(hf, spec, 1, pp * vpp), spec)
    assert set(back) == set(hf) - {"lm_head.weight"}
    for name, tensor in back.items():
        assert torch.equal(tensor, hf[name]), name


def test_a_stage_reads_only_the_tensors_it_holds() -> None:
    """The loaders pass lazily-read tensors (`LazyHFTensors`): a later pipeline stage of an untied
    model never asks for the embedding, nor for other stages' layers."""
    spec, hf = _hf("qwen2", layers=4)

    class Counting(dict):
        def __init__(self, items):
            super().__init__(items)
            self.read = set()

        def __getitem__(self, name):
            self.read.add(name)
            return super().__getitem__(name)

    tensors = Counting(hf)
    hf_to_megatron(tensors, spec, tp_rank=0, tp_size=1, pp_rank=1, pp_size=2)
    assert "model.embed_tokens.weight" not in tensors.read and "lm_head.weight" in tensors.read
    assert {name.split(".")[2] for name in tensors.read if name.startswith("model.layers.")} == {"2", "3"}


def test_lazy_hf_tensors_read_a_folder(tmp_path) -> None:
    from megathink.models.megatron.weights_io import read_hf_dir

    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=93, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False))
    model.save_pretrained(tmp_path, max_shard_size="20KB")  # several shards and an index
    assert (tmp_path / "model.safetensors.index.json").is_file()
    spec, config, tensors = read_hf_dir(tmp_path)
    assert spec.num_layers == 2 and config["model_type"] == "qwen2"
    state = model.state_dict()
    assert set(tensors) == set(state) and len(tensors) == len(state)
    for name, tensor in state.items():
        assert torch.equal(tensors[name], tensor), name
    tensors.close()

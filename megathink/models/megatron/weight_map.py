"""HF <-> megatron tensor layouts for Qwen2 / Llama, per tensor-parallel and pipeline rank.

Pure tensor functions (no process groups) shared by the converter, the backend's loading and
the streaming exporter. Layouts (GPTSpec: n_q heads, n_kv groups, head dim d):

- `linear_qkv.weight [(n_q + 2 n_kv) d, H]`: per KV group g, its n_q / n_kv query heads, then
  k_g, then v_g; a TP rank holds n_kv / tp whole groups (a contiguous slice). Bias likewise.
- `linear_fc1.weight [2 F, H]` = [gate; up]; a TP rank holds [gate slice; up slice].
- column-parallel tensors (qkv, fc1, word embeddings, output layer) split along dim 0;
  row-parallel ones (`linear_proj`, `linear_fc2`) along dim 1; norms are replicated.
- the vocabulary is padded with zero rows to `GPTSpec.padded_vocab(tp)`; export drops them.
- pipeline stage s holds layers [s L / pp, (s + 1) L / pp) under local indices 0..; the first
  stage holds the embedding, the last the final norm and output layer (a tied model's last
  stage keeps a copy of the embedding as `output_layer.weight` when pp > 1).
- `te=True` names the Transformer Engine spec's fused norms (`linear_qkv.layer_norm_weight`,
  `linear_fc1.layer_norm_weight`) instead of the local spec's `input_layernorm` /
  `pre_mlp_layernorm`.

Every HF tensor must be consumed and every megatron tensor produced: an unknown, missing or
mis-shaped tensor raises `DataError` naming it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence

import torch

from megathink.errors import DataError
from megathink.models.megatron.gpt_spec import GPTSpec

_HF_LAYER = re.compile(r"model\.layers\.(\d+)\.(.+)")


def _mc_layer_names(te: bool) -> dict[str, str]:
    return {
        "attn_norm": "self_attention.linear_qkv.layer_norm_weight" if te else "input_layernorm.weight",
        "mlp_norm": "mlp.linear_fc1.layer_norm_weight" if te else "pre_mlp_layernorm.weight",
    }


def stage_layers(spec: GPTSpec, pp_rank: int, pp_size: int) -> range:
    """Global indices of the layers pipeline stage `pp_rank` holds."""
    per = spec.num_layers // pp_size
    return range(pp_rank * per, (pp_rank + 1) * per)


def _pad_vocab(weight: torch.Tensor, padded: int) -> torch.Tensor:
    if weight.shape[0] == padded:
        return weight
    pad = torch.zeros((padded - weight.shape[0], *weight.shape[1:]), dtype=weight.dtype)
    return torch.cat([weight, pad])


def _qkv_full(spec: GPTSpec, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """HF q [n_q d, ...], k/v [n_kv d, ...] -> megatron's grouped layout [(n_q + 2 n_kv) d, ...]."""
    per_group = spec.num_heads // spec.num_kv_heads
    d = spec.head_dim
    rest = q.shape[1:]
    q = q.reshape(spec.num_kv_heads, per_group * d, *rest)
    k = k.reshape(spec.num_kv_heads, d, *rest)
    v = v.reshape(spec.num_kv_heads, d, *rest)
    return torch.cat([q, k, v], dim=1).reshape(-1, *rest)


def _qkv_split(spec: GPTSpec, qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    per_group = spec.num_heads // spec.num_kv_heads
    d = spec.head_dim
    rest = qkv.shape[1:]
    grouped = qkv.reshape(spec.num_kv_heads, (per_group + 2) * d, *rest)
    q, k, v = grouped.split([per_group * d, d, d], dim=1)
    return q.reshape(-1, *rest), k.reshape(-1, *rest), v.reshape(-1, *rest)


def _take(hf: Mapping[str, torch.Tensor], name: str) -> torch.Tensor:
    if name not in hf:
        raise DataError(f"HF tensor {name!r} is missing from the checkpoint: it does not match the model config.")
    return hf[name]


def hf_to_megatron(
    hf: Mapping[str, torch.Tensor], spec: GPTSpec, *, tp_rank: int, tp_size: int, pp_rank: int, pp_size: int,
    te: bool = False,
) -> dict[str, torch.Tensor]:
    """The megatron state dict (model weights only) of rank (tp_rank, pp_rank) from full HF tensors."""
    out: dict[str, torch.Tensor] = {}
    names = _mc_layer_names(te)
    first, last = pp_rank == 0, pp_rank == pp_size - 1
    padded = spec.padded_vocab(tp_size)

    def col(t: torch.Tensor) -> torch.Tensor:
        return t.chunk(tp_size, dim=0)[tp_rank].clone()

    def row(t: torch.Tensor) -> torch.Tensor:
        return t.chunk(tp_size, dim=1)[tp_rank].clone()

    if first:  # the embedding is read only by the stages that hold it (`hf` may read lazily)
        out["embedding.word_embeddings.weight"] = col(_pad_vocab(_take(hf, "model.embed_tokens.weight"), padded))
    for local, layer in enumerate(stage_layers(spec, pp_rank, pp_size)):
        src, dst = f"model.layers.{layer}.", f"decoder.layers.{local}."
        attn = src + "self_attn."
        q, k, v = (_take(hf, f"{attn}{x}_proj.weight") for x in "qkv")
        out[dst + "self_attention.linear_qkv.weight"] = _tp_groups(_qkv_full(spec, q, k, v), tp_rank, tp_size)
        if spec.qkv_bias:
            qb, kb, vb = (_take(hf, f"{attn}{x}_proj.bias") for x in "qkv")
            out[dst + "self_attention.linear_qkv.bias"] = _tp_groups(_qkv_full(spec, qb, kb, vb), tp_rank, tp_size)
        out[dst + "self_attention.linear_proj.weight"] = row(_take(hf, attn + "o_proj.weight"))
        out[dst + names["attn_norm"]] = _take(hf, src + "input_layernorm.weight").clone()
        out[dst + names["mlp_norm"]] = _take(hf, src + "post_attention_layernorm.weight").clone()
        gate, up = _take(hf, src + "mlp.gate_proj.weight"), _take(hf, src + "mlp.up_proj.weight")
        out[dst + "mlp.linear_fc1.weight"] = torch.cat([col(gate), col(up)])
        out[dst + "mlp.linear_fc2.weight"] = row(_take(hf, src + "mlp.down_proj.weight"))
    if last:
        out["decoder.final_layernorm.weight"] = _take(hf, "model.norm.weight").clone()
        if not spec.tied_embeddings or pp_size > 1:  # a tied model's last stage keeps its own copy
            head = _take(hf, "model.embed_tokens.weight" if spec.tied_embeddings else "lm_head.weight")
            out["output_layer.weight"] = col(_pad_vocab(head, padded))
    unknown = sorted(set(hf) - hf_names(spec))  # other stages' tensors are someone else's, not unknown
    if unknown:
        raise DataError(f"HF tensor {unknown[0]!r} has no place in the megatron model ({len(unknown)} unknown in all).")
    return out


def hf_names(spec: GPTSpec) -> set[str]:
    """Every HF tensor name the whole model may hold (`lm_head.weight` also when tied)."""
    per_layer = [f"self_attn.{x}_proj.weight" for x in "qkvo"] + [
        "input_layernorm.weight", "post_attention_layernorm.weight",
        "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
    ]
    if spec.qkv_bias:
        per_layer += [f"self_attn.{x}_proj.bias" for x in "qkv"]
    names = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"}
    names.update(f"model.layers.{layer}.{name}" for layer in range(spec.num_layers) for name in per_layer)
    return names


def _tp_groups(qkv: torch.Tensor, tp_rank: int, tp_size: int) -> torch.Tensor:
    return qkv.chunk(tp_size, dim=0)[tp_rank].clone()


def megatron_to_hf(
    shards: Sequence[Sequence[Mapping[str, torch.Tensor]]], spec: GPTSpec, *, te: bool = False
) -> dict[str, torch.Tensor]:
    """Full HF tensors from `shards[pp_rank][tp_rank]` (model weights; `_extra_state` ignored)."""
    return dict(iter_megatron_to_hf(shards, spec, te=te))


def iter_megatron_to_hf(
    shards: Sequence[Sequence[Mapping[str, torch.Tensor]]], spec: GPTSpec, *, te: bool = False
) -> Iterator[tuple[str, torch.Tensor]]:
    """(HF name, full tensor) pairs, one at a time, from `shards[pp_rank][tp_rank]`, in HF order."""
    for stage, stage_shards in enumerate(shards):
        yield from iter_stage_to_hf(stage_shards, spec, stage=stage, stages=len(shards), te=te)


def iter_stage_to_hf(
    shards: Sequence[Mapping[str, torch.Tensor]], spec: GPTSpec, *, stage: int, stages: int, te: bool = False
) -> Iterator[tuple[str, torch.Tensor]]:
    """(HF name, full tensor) pairs of one pipeline stage from its `shards[tp_rank]`: the embedding
    (first stage), its layers, the final norm and lm_head (last stage). A tensor of the stage that
    has no HF name is an error naming it; the streaming exporter calls this one stage at a time."""
    tp_size = len(shards)
    names = _mc_layer_names(te)
    used: list[set[str]] = [set() for _ in range(tp_size)]

    def gather(name: str, dim: int) -> torch.Tensor:
        parts = []
        for tp in range(tp_size):
            if name not in shards[tp]:
                raise DataError(f"megatron tensor {name!r} is missing on pipeline stage {stage}, TP rank {tp}.")
            used[tp].add(name)
            parts.append(shards[tp][name])
        return torch.cat(parts, dim=dim) if dim >= 0 else parts[0]

    if stage == 0:
        yield "model.embed_tokens.weight", gather("embedding.word_embeddings.weight", 0)[: spec.vocab_size].clone()
    for local, layer in enumerate(stage_layers(spec, stage, stages)):
        src, dst = f"decoder.layers.{local}.", f"model.layers.{layer}."
        qkv = gather(src + "self_attention.linear_qkv.weight", 0)  # whole KV groups per rank
        for x, t in zip("qkv", _qkv_split(spec, qkv)):
            yield f"{dst}self_attn.{x}_proj.weight", t.clone()
        if spec.qkv_bias:
            bias = gather(src + "self_attention.linear_qkv.bias", 0)
            for x, t in zip("qkv", _qkv_split(spec, bias)):
                yield f"{dst}self_attn.{x}_proj.bias", t.clone()
        yield f"{dst}self_attn.o_proj.weight", gather(src + "self_attention.linear_proj.weight", 1)
        yield f"{dst}input_layernorm.weight", gather(src + names["attn_norm"], -1).clone()
        yield f"{dst}post_attention_layernorm.weight", gather(src + names["mlp_norm"], -1).clone()
        fc1 = [shards[tp][src + "mlp.linear_fc1.weight"].chunk(2) for tp in range(tp_size)]
        gather(src + "mlp.linear_fc1.weight", 0)
        yield f"{dst}mlp.gate_proj.weight", torch.cat([g for g, _ in fc1])
        yield f"{dst}mlp.up_proj.weight", torch.cat([u for _, u in fc1])
        yield f"{dst}mlp.down_proj.weight", gather(src + "mlp.linear_fc2.weight", 1)
    if stage == stages - 1:
        yield "model.norm.weight", gather("decoder.final_layernorm.weight", -1).clone()
        if not spec.tied_embeddings:
            yield "lm_head.weight", gather("output_layer.weight", 0)[: spec.vocab_size].clone()
        elif stages > 1:
            gather("output_layer.weight", 0)  # the tied copy: the same values as the embedding
    for tp in range(tp_size):
        extra = sorted(n for n in shards[tp] if n not in used[tp] and not n.endswith("_extra_state"))
        if extra:
            raise DataError(f"megatron tensor {extra[0]!r} (stage {stage}, TP rank {tp}) has no HF name: refusing to drop it.")

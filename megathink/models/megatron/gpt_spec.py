"""The shape of a Qwen2 / Llama decoder as megatron needs it, read from an HF `config.json`.

`GPTSpec.from_hf_config(dict)` reads what megatron's `GPTModel` needs from a HuggingFace
config (Qwen2 and Llama families): layers, hidden and FFN sizes, heads and KV groups (GQA),
head dim, RMSNorm eps, RoPE theta, qkv bias (Qwen2 always, Llama when `attention_bias`), tied
embeddings, vocabulary. Anything megatron's local spec cannot express (rope scaling, sliding
windows that are on, MoE, non-SiLU activations) is refused with the HF key named, never
silently approximated. Plain python: no torch, no megatron.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from megathink.errors import ConfigError

SUPPORTED_MODEL_TYPES = ("qwen2", "llama")
VOCAB_MULTIPLE = 128


@dataclass(frozen=True)
class GPTSpec:
    """A decoder-only transformer with RMSNorm, SwiGLU MLP and RoPE (Qwen2 / Llama)."""

    model_type: str
    num_layers: int
    hidden_size: int
    ffn_hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    max_position_embeddings: int
    rms_norm_eps: float
    rope_theta: float
    qkv_bias: bool
    tied_embeddings: bool

    @classmethod
    def from_hf_config(cls, config: Mapping[str, Any]) -> "GPTSpec":
        model_type = config.get("model_type")
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise ConfigError(
                f"config.json model_type = {model_type!r} is not supported by the megatron backend: "
                f"use one of {', '.join(SUPPORTED_MODEL_TYPES)} (Qwen2 / Llama families)."
            )
        rope = dict(config.get("rope_parameters") or {})  # transformers 5 nests RoPE settings here
        scaling = config.get("rope_scaling") or (rope if rope.get("rope_type", "default") != "default" else None)
        if scaling:
            raise ConfigError(f"config.json rope scaling = {scaling!r}: RoPE scaling is not supported yet.")
        rope_theta = float(rope.get("rope_theta", config.get("rope_theta", 10000.0)))
        if config.get("use_sliding_window"):
            raise ConfigError("config.json use_sliding_window = true: sliding-window attention is not supported.")
        act = config.get("hidden_act", "silu")
        if act != "silu":
            raise ConfigError(f"config.json hidden_act = {act!r}: only SwiGLU ('silu') MLPs are supported.")
        heads = int(config["num_attention_heads"])
        hidden = int(config["hidden_size"])
        head_dim = int(config.get("head_dim") or hidden // heads)
        return cls(
            model_type=model_type,
            num_layers=int(config["num_hidden_layers"]),
            hidden_size=hidden,
            ffn_hidden_size=int(config["intermediate_size"]),
            num_heads=heads,
            num_kv_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=head_dim,
            vocab_size=int(config["vocab_size"]),
            max_position_embeddings=int(config.get("max_position_embeddings", 4096)),
            rms_norm_eps=float(config.get("rms_norm_eps", 1e-6)),
            rope_theta=rope_theta,
            qkv_bias=model_type == "qwen2" or bool(config.get("attention_bias", False)),
            tied_embeddings=bool(config.get("tie_word_embeddings", False)),
        )

    def padded_vocab(self, tp: int) -> int:
        """The vocabulary rounded up to a multiple of 128 (of 128 * tp when tp does not divide 128).

        Every TP rank holds an equal slice, and for tp in 1, 2, 4, ..., 128 the padded size does
        not depend on tp, so a checkpoint saved at one TP size loads at another.
        """
        multiple = VOCAB_MULTIPLE if VOCAB_MULTIPLE % tp == 0 else VOCAB_MULTIPLE * tp
        return -(-self.vocab_size // multiple) * multiple

    def check_parallel(self, tp: int, pp: int, vpp: int = 1) -> None:
        """Refuse TP / PP sizes this model cannot be split into, naming the parallel field."""
        if self.num_kv_heads % tp or self.num_heads % tp:
            raise ConfigError(
                f"parallel.tp = {tp} is invalid for this model: {self.num_heads} attention heads and "
                f"{self.num_kv_heads} KV heads must both divide by it."
            )
        if self.ffn_hidden_size % tp:
            raise ConfigError(f"parallel.tp = {tp} is invalid: the FFN size {self.ffn_hidden_size} must divide by it.")
        if self.num_layers % pp:
            raise ConfigError(f"parallel.pp = {pp} is invalid: the {self.num_layers} layers must divide by it.")
        if self.num_layers % (pp * vpp):
            raise ConfigError(
                f"parallel.vpp = {vpp} is invalid: the {self.num_layers} layers must divide into pp * vpp = "
                f"{pp * vpp} virtual stages; choose a vpp that divides {self.num_layers // pp}."
            )

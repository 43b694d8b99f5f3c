"""The shape of the policy model, as the planner needs it: from `config.json`, never the weights.

`ModelShape.from_hf_config(config, dtype=)` reads a Qwen2 / Llama HF `config.json` (the keys the
HF and megatron backends read: layers, hidden and FFN sizes, heads, KV heads, head size,
vocabulary, tied embeddings, qkv bias); `ModelShape.from_model_config(model, vocab_size=)`
describes the random model that `ModelConfig` builds when `model.path` is unset (the toy
task), whose vocabulary is the tokenizer's (the caller passes it). `read_model_shape(cfg,
vocab_size=)` picks one of the two: `model.path`'s `config.json` (a missing file is a
`MissingPathError` naming `model.path`) or the `model` section.

Parameter counts follow the modules that exist (per decoder layer: q, k, v with biases for
Qwen2, o, gate, up, down, two RMSNorm weights; the embedding `[V, h]`; an untied lm_head
`[V, h]`; the final norm). The planner never rounds the vocabulary except where the megatron
backend pads it (`megatron_vocab`: a multiple of 128, as `gpt_spec.padded_vocab`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from megathink.config.model import ModelConfig
from megathink.config.run import RunConfig
from megathink.errors import ConfigError, MissingPathError

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
"""Bytes per element of `model.dtype`."""

VOCAB_MULTIPLE = 128
"""The megatron backend pads the vocabulary to a multiple of this (of 128 tp when tp does not divide it)."""


@dataclass(frozen=True)
class ModelShape:
    """A decoder-only Qwen2 / Llama transformer (RMSNorm, SwiGLU, RoPE, GQA)."""

    layers: int
    hidden: int  # h
    ffn: int  # i, SwiGLU inner width
    heads: int  # a
    kv_heads: int  # g
    head_dim: int  # d
    vocab: int  # V, embedding rows
    tied: bool
    qkv_bias: bool
    dtype: str  # model.dtype: 'float32' | 'bfloat16' | 'float16'

    @classmethod
    def from_hf_config(cls, config: Mapping[str, Any], *, dtype: str) -> ModelShape:
        """From a HF `config.json` dict (Qwen2 or Llama); `dtype` is `model.dtype`."""
        model_type = config.get("model_type")
        if model_type not in ("qwen2", "llama"):
            raise ConfigError(
                f"config.json model_type = {model_type!r}: the planner knows the Qwen2 and Llama families only."
            )
        heads = int(config["num_attention_heads"])
        hidden = int(config["hidden_size"])
        return cls(
            layers=int(config["num_hidden_layers"]),
            hidden=hidden,
            ffn=int(config["intermediate_size"]),
            heads=heads,
            kv_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or hidden // heads),
            vocab=int(config["vocab_size"]),
            tied=bool(config.get("tie_word_embeddings", False)),
            qkv_bias=model_type == "qwen2" or bool(config.get("attention_bias", False)),
            dtype=dtype,
        )

    @classmethod
    def from_model_config(cls, model: ModelConfig, *, vocab_size: int) -> ModelShape:
        """The random model `ModelConfig` describes (model.path unset), with the tokenizer's vocabulary."""
        return cls(
            layers=model.num_layers,
            hidden=model.hidden_size,
            ffn=model.intermediate_size,
            heads=model.num_heads,
            kv_heads=model.num_kv_heads,
            head_dim=model.hidden_size // model.num_heads,
            vocab=vocab_size,
            tied=model.tie_word_embeddings,
            qkv_bias=model.arch == "qwen2",
            dtype=model.dtype,
        )

    # -- sizes ------------------------------------------------------------------------------------
    @property
    def bytes(self) -> int:
        """Bytes per parameter / activation element in the model dtype."""
        return DTYPE_BYTES[self.dtype]

    @property
    def q_width(self) -> int:
        return self.heads * self.head_dim  # a d

    @property
    def kv_width(self) -> int:
        return self.kv_heads * self.head_dim  # g d

    def layer_params(self, tp: int = 1) -> int:
        """Parameters of one decoder layer on one of `tp` tensor-parallel ranks (norms replicated)."""
        h = self.hidden
        qkv = h * (self.q_width + 2 * self.kv_width) + (self.q_width + 2 * self.kv_width if self.qkv_bias else 0)
        out = self.q_width * h
        mlp = 3 * h * self.ffn
        return (qkv + out + mlp) // tp + 2 * h

    def megatron_vocab(self, tp: int) -> int:
        """Embedding rows of the megatron backend: V padded to 128 (128 tp when tp does not divide 128)."""
        multiple = VOCAB_MULTIPLE if VOCAB_MULTIPLE % tp == 0 else VOCAB_MULTIPLE * tp
        return -(-self.vocab // multiple) * multiple

    def total_params(self) -> int:
        """All parameters of the HF model (embedding, layers, final norm, lm_head unless tied)."""
        head = 0 if self.tied else self.vocab * self.hidden
        return self.vocab * self.hidden + self.layers * self.layer_params() + self.hidden + head

    def matmul_params(self) -> int:
        """Parameters that take part in a matmul per token (layers + lm_head; not the embedding lookup)."""
        return self.layers * self.layer_params() + self.vocab * self.hidden

    def describe(self) -> str:
        total = self.total_params()
        size = f"{total / 1e9:.2f}B" if total >= 1e9 else f"{total / 1e6:.2f}M"
        return (
            f"{size} parameters: {self.layers} layers, hidden {self.hidden}, "
            f"FFN {self.ffn}, {self.heads} heads / {self.kv_heads} KV heads x {self.head_dim}, "
            f"vocab {self.vocab}{', tied' if self.tied else ''}, {self.dtype}"
        )


def read_model_shape(cfg: RunConfig, *, vocab_size: int | None = None) -> ModelShape:
    """The policy's shape: `model.path`/config.json (weights are never read), or the `model`
    section's random model with `vocab_size` (the tokenizer's; required then)."""
    if cfg.model.path is not None:
        path = Path(cfg.model.path) / "config.json"
        if not path.is_file():
            raise MissingPathError(
                f"model.path = {cfg.model.path!r} has no config.json: the planner reads the model's shape from it "
                "(the weights are not needed); point model.path at the HF checkpoint folder."
            )
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"model.path = {cfg.model.path!r}: cannot read config.json ({err}).") from err
        return ModelShape.from_hf_config(config, dtype=cfg.model.dtype)
    if vocab_size is None:
        raise ValueError("read_model_shape: a random model (model.path unset) needs vocab_size (the tokenizer's).")
    return ModelShape.from_model_config(cfg.model, vocab_size=vocab_size)

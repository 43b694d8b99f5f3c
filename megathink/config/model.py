"""Which policy model to train: a local HF checkpoint directory, or a fresh random one.

With `path` set, the architecture comes from the checkpoint's own `config.json` and the
architecture fields below are ignored. With `path` unset, a randomly initialised model of the
given family and size is built (the toy task and the tests use this; nothing is downloaded).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from megathink.config.validation import ConfigError, check_choice, check_float, check_int

ARCHITECTURES = ("qwen2", "llama")
DTYPES = ("float32", "bfloat16", "float16")
ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager")


@dataclass(kw_only=True)
class ModelConfig:
    path: Optional[str] = None
    """Local HF checkpoint directory (config.json + safetensors). None builds a random model."""

    arch: str = "qwen2"
    """Model family for a random model: 'qwen2' (qkv bias) or 'llama'."""

    hidden_size: int = 128
    """Width of the residual stream (random model only)."""

    num_layers: int = 2
    """Number of transformer blocks (random model only)."""

    num_heads: int = 4
    """Attention heads; must divide hidden_size (random model only)."""

    num_kv_heads: int = 4
    """Key/value heads for grouped-query attention; must divide num_heads (random model only)."""

    intermediate_size: int = 512
    """Hidden width of the SwiGLU MLP (random model only)."""

    max_position_embeddings: int = 512
    """Longest sequence the rotary embedding is set up for (random model only)."""

    rope_theta: float = 10000.0
    """RoPE base frequency (random model only)."""

    rms_norm_eps: float = 1e-6
    """Epsilon of the RMSNorm layers (random model only)."""

    tie_word_embeddings: bool = True
    """Share the input embedding and the LM head (random model only)."""

    dtype: str = "float32"
    """Parameter dtype: 'float32', 'bfloat16' or 'float16'."""

    attn_implementation: str = "sdpa"
    """Attention kernel in transformers: 'sdpa' or 'eager'."""

    def __post_init__(self) -> None:
        if self.path is not None and (not isinstance(self.path, str) or not self.path):
            raise ConfigError(f"model.path = {self.path!r} is invalid: must be a directory path or null.")
        check_choice("model.arch", self.arch, ARCHITECTURES)
        check_int("model.hidden_size", self.hidden_size, low=1)
        check_int("model.num_layers", self.num_layers, low=1)
        check_int("model.num_heads", self.num_heads, low=1)
        check_int("model.num_kv_heads", self.num_kv_heads, low=1)
        check_int("model.intermediate_size", self.intermediate_size, low=1)
        check_int("model.max_position_embeddings", self.max_position_embeddings, low=1)
        check_float("model.rope_theta", self.rope_theta, low=0.0, low_inclusive=False)
        check_float("model.rms_norm_eps", self.rms_norm_eps, low=0.0, high=1.0, low_inclusive=False)
        check_choice("model.dtype", self.dtype, DTYPES)
        check_choice("model.attn_implementation", self.attn_implementation, ATTENTION_IMPLEMENTATIONS)
        if self.hidden_size % self.num_heads:
            raise ConfigError(
                f"model.num_heads = {self.num_heads} is invalid: must divide model.hidden_size "
                f"({self.hidden_size})."
            )
        if (self.hidden_size // self.num_heads) % 2:
            raise ConfigError(
                f"model.num_heads = {self.num_heads} is invalid: the head size hidden_size/num_heads "
                f"= {self.hidden_size // self.num_heads} must be even for rotary embeddings."
            )
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(
                f"model.num_kv_heads = {self.num_kv_heads} is invalid: must divide model.num_heads "
                f"({self.num_heads})."
            )

"""Memory of generating on the trainer GPU: the local rollout engine and `model.generate`.

Both decode with transformers' `DynamicCache` (rollout/decode.py, evaluation/forced_mode.py):
per layer a key and a value tensor `[B, g, T, d]` in the model dtype, grown by `torch.cat`
every step, so at the end of a batch of B sequences of T tokens (prompt + generated)

    KV cache = B x T x layers x 2 x g x d x b

plus, while one layer's cache is concatenated, one more `[B, g, T, d]` tensor. Each step
also holds the next-token logits and the sampling arithmetic over them (~4 fp32 `[B, V]`),
and the prefill runs one layer at a time over the `[B, W]` prompts (W = plan.max_prompt_tokens),
whose float attention mask `[B, 1, W, W]` and MLP intermediates (2 h + 3 i per token) are the
largest transients. Worst case: every sequence runs to its cap (the engine drops finished
rows, which only lowers this).
"""

from __future__ import annotations

from megathink.planning.model_shape import ModelShape
from megathink.planning.workload import Generation


def kv_cache_bytes(shape: ModelShape, gen: Generation) -> float:
    """The cache of `gen.sequences` sequences at `gen.length` tokens, plus one layer's growth copy."""
    per_token = shape.layers * 2 * shape.kv_width * shape.bytes
    return gen.sequences * gen.length * (per_token + shape.kv_width * shape.bytes)


def decode_workspace_bytes(shape: ModelShape, gen: Generation, prompt: int) -> float:
    """Per-step logits and sampling buffers, or the prefill's largest transient, whichever is larger."""
    b = shape.bytes
    step = 4 * 4 * gen.sequences * shape.vocab
    prefill = gen.sequences * prompt * (b * (2 * shape.hidden + 3 * shape.ffn) + b * prompt)
    return max(step, prefill)

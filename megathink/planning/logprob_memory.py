"""Buffers of the log-prob head (`kernels.logprob`) on the last pipeline stage.

N = token positions of this rank's micro-batch, V_l = the vocabulary rows this rank holds
(V with the HF backend, V_pad / tp with megatron), C = the tile size in tokens of full-vocabulary
logits (`kernels.chunk_tokens`, or the implementation's default), b = bytes of model.dtype.

- naive: the full logits. HF: `[N, V]` in b kept for the backward, and `[N, V]` of gradient
  in b in the backward (token_logprobs works in 64 MiB fp32 chunks); megatron's vocab-parallel
  reduction keeps the logits slice and ~3 fp32 `[N, V_l]` tensors (z / T, shifted, exp).
- chunked (torch): forward one fp32 tile buffer of min(N, C) x V_l elements (two with the
  entropy), plus the b-byte matmul output for bf16; backward the fp32 tile buffer, its b-byte
  copy, the fp32 and b-byte `[N, h]` hidden gradients, and a `[V_l, h]` weight gradient in b
  that is added into `.grad` (a second copy from the second micro-batch of a step on).
  C defaults to 256 MiB of fp32 logits: C V_l = 2^26 elements.
- fused (Triton, CUDA): a few floats per token forward; backward one tile buffer of C V_l
  elements in b (default 1 GiB), the `[N, h]` gradients and the `[V_l, h]` weight gradient.

`kernels.logprob=auto` is resolved as the backends resolve it (`KernelsConfig.logprob_for`:
naive up to `kernels.naive_max_vocab` tokens, chunked above). Forward-only passes (scoring)
hold the forward buffers only.
"""

from __future__ import annotations

from dataclasses import dataclass

from megathink.config.kernels import KernelsConfig
from megathink.planning.layout import Layout
from megathink.planning.model_shape import ModelShape

CHUNKED_TILE_BYTES = 1 << 28
"""Default chunked tile: 256 MiB of fp32 logits (kernels/linear_logprob_chunked.py)."""
FUSED_TILE_BYTES = 1 << 30
"""Default fused backward tile: 1 GiB in the model dtype (kernels/linear_logprob_triton.py)."""


@dataclass(frozen=True)
class LogprobBytes:
    forward: float  # held during the forward of the head (training and scoring)
    backward: float  # held during its backward


def logprob_bytes(
    shape: ModelShape, layout: Layout, kernels: KernelsConfig, tokens: float, *, entropy: bool
) -> LogprobBytes:
    """Head buffers for `tokens` positions on this rank (already divided by cp)."""
    b, h = shape.bytes, shape.hidden
    vocab = shape.vocab if layout.backend == "hf" else shape.megatron_vocab(layout.tp) // layout.tp
    impl = kernels.logprob_for(shape.vocab)  # 'auto': naive up to kernels.naive_max_vocab, else chunked
    if impl == "fused" and layout.device == "cpu":
        impl = "chunked"  # fused runs on CUDA only
    if impl == "naive":
        logits = tokens * vocab
        if layout.backend == "hf":
            return LogprobBytes(forward=b * logits * (2 if entropy else 1), backward=2 * b * logits)
        return LogprobBytes(forward=(b + 12) * logits, backward=(b + 16) * logits)
    hidden_grads = tokens * h * (4 + 2 * b) if b < 4 else tokens * h * 4
    weight_grad = vocab * h * b
    if impl == "chunked":
        chunk = kernels.chunk_tokens or max(1, CHUNKED_TILE_BYTES // (4 * vocab))
        tile = min(tokens, chunk) * vocab  # elements of one [N, w] tile
        forward = tile * 4 * (2 if entropy else 1) + (tile * b if b < 4 else 0)
        # the fp32 tile, and at once either the b-byte logits matmul (bf16) or the tile's softmax
        # (the entropy's gradient), then the b-byte copy of the tile's gradient
        backward = tile * 4 + max(tile * b if b < 4 else 0, tile * 4 if entropy else 0) + hidden_grads + weight_grad
        return LogprobBytes(forward=forward, backward=backward)
    chunk = kernels.chunk_tokens or max(128, FUSED_TILE_BYTES // (b * vocab) // 128 * 128)
    tile = min(tokens, chunk) * vocab
    return LogprobBytes(forward=16 * tokens, backward=tile * b + hidden_grads + weight_grad)

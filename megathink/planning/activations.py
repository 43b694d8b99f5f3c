"""Activation memory of a training micro-batch: what each decoder layer keeps for the backward.

Notation (per token of this rank, per layer): h hidden, i FFN width, a heads, g KV heads, d
head size, q = a d, k = g d, t = tp, b = bytes of model.dtype. Counts are of the tensors
autograd saves in the code that runs (measured on CPU with the saved-tensor hooks and the
storage tracker, `benchmarks/memory_planner.py`; the Transformer Engine path is read from its
code and not measured: no GPU here).

transformers (HF backend, Qwen2 / Llama, sdpa):
  RMSNorm x2       2 (4h + 4 + 2bh)     fp32 input copy (the input itself for fp32), rstd, normed, output
  attention        b (2q + 2 kr) + 4a   q, k and v (repeated to all heads (kr = q) when GQA meets a
                                         padding mask, as transformers does; else kr = k), output, logsumexp
  MLP (SwiGLU)     4 b i                gate, silu(gate), up, their product
  padding mask     b x width            per token: the float mask [rows, 1, T, T] torch's SDPA makes from
                                         the boolean one, in each layer; only for micro-batches of several
                                         rows (one row is cut to its own length: no padding, no mask)
megatron local spec (megatron-core's torch layers + megathink's LocalCoreAttention):
  RMSNorm x2       2 (4h + 4 + 4h + bh) torch's RMSNorm keeps the fp32 normed tensor too
  RoPE             4 d b per position   cos / sin of q and k, recomputed in every layer
  attention        b (2q + 2q) / t + 4a / t   q, k and v repeated to all heads (repeat_interleave), out, lse;
                                         with cp > 1 the gathered k, v are cp times longer
  dense mask       b x width / rows     THD rows or cp > 1: the [S / cp, S] mask SDPA gets, in each layer
                                         (one per micro-batch, broadcast over its rows)
  MLP              5 b i / t on CPU     fc1 (2i), silu, x_linear + offset, product; on CUDA the fused
                   3 b i / t on CUDA    swiglu keeps fc1 and its output only
megatron with Transformer Engine (GPU):
  norms (fused)    2 (2bh + 4)          input and normed output of TE's LayerNorm-linears (/ t with
                                         sequence parallelism)
  RoPE             4 d b per position
  attention        b (2q + 2k) / t + 4a / t   flash attention: q, k, v (no repeat), out, softmax stats
  MLP              3 b i / t            fused swiglu: fc1 output and the swiglu output

Recompute (`parallel.recompute`): 'full' keeps only each layer's input (b h per token; / t
with sequence parallelism); 'selective' (megatron) drops the core attention's tensors (the
repeated k / v, the mask, lse) and keeps q, k, the fused qkv output and the attention output.
On top of everything kept, the backward of one layer at a time holds its recomputed
activations (full: all of them; selective: the core attention's) and the gradients in flight
inside it, two FFN-wide and two h-wide tensors per token, b (2 i / t + 2 h) (measured: the
peak of a layer's backward is in its MLP, before its saved tensors are released).

Pipeline parallelism: a rank holds the activations of its in-flight micro-batches
(`in_flight`), each for its pp-th of the layers, plus what a forward keeps outside the layers
(`per_forward_bytes`: ids, RoPE tables, the final norm and the log-prob head's inputs).
"""

from __future__ import annotations

from dataclasses import dataclass

from megathink.planning.layout import Layout
from megathink.planning.model_shape import ModelShape
from megathink.planning.workload import MicroBatch


@dataclass(frozen=True)
class LayerCost:
    """Bytes of one decoder layer for one micro-batch on this rank."""

    saved: float  # kept for the backward without recompute (masks included)
    kept_full: float  # kept with full recompute (the layer input)
    kept_selective: float  # kept with selective recompute
    forward_transient: float  # held by a no-grad forward of the layer (scoring passes)
    gradients: float  # gradients in flight inside the layer's backward (two FFN-wide, two h-wide)

    def kept(self, recompute: str) -> float:
        return {"none": self.saved, "full": self.kept_full, "selective": self.kept_selective}[recompute]


def hf_padding_mask(mb: MicroBatch) -> bool:
    """Whether transformers gets a padding mask: a micro-batch of several rows is padded (RL rows
    are cut to the micro-batch's longest prompt and response, SFT rows to its longest); a single
    row is not, and then SDPA runs causal with GQA, no mask and no repeated k / v."""
    return mb.rows > 1


def layer_cost(shape: ModelShape, layout: Layout, mb: MicroBatch) -> LayerCost:
    """One layer's bytes for micro-batch `mb` (its tokens split over cp ranks)."""
    h, i, a, g, d, b = shape.hidden, shape.ffn, shape.heads, shape.kv_heads, shape.head_dim, shape.bytes
    t, cp = layout.tp, layout.cp
    q, k = a * d, g * d
    tokens = mb.tokens / cp  # this rank's share of the micro-batch
    positions = mb.width / cp  # RoPE tables: one per position of a row (shared by the rows)
    if layout.layers == "transformers":
        padded = hf_padding_mask(mb)
        norms = 2 * (4 * h + 4 + 2 * b * h)
        attention = b * (2 * q + 2 * (q if padded else k)) + 4 * a  # GQA + a mask: k / v repeated
        mlp = 4 * b * i
        mask = b * mb.width if padded else 0.0  # per token: [rows, 1, T, T] in the model dtype, per layer
        per_token = norms + attention + mlp + mask
        return LayerCost(
            saved=per_token * tokens, kept_full=b * h * tokens, kept_selective=per_token * tokens,
            forward_transient=(b * (2 * h + 3 * i) + mask) * tokens, gradients=b * (2 * i + 2 * h) * tokens,
        )
    rope = 4 * d * b * positions
    if layout.layers == "megatron_local":
        norms = 2 * (4 * h + 4 + 4 * h + b * h)
        kv_len = cp  # the gathered keys and values are cp times this rank's tokens
        attention = b * (2 * q + 2 * q * kv_len) / t + 4 * a / t
        dense = layout.pack or cp > 1
        # [S / cp, S] per layer, shared by the micro-batch's rows: S b per row-token of this rank
        mask = b * mb.width / mb.rows if dense else 0.0
        mlp = (3 if layout.device == "cuda" else 5) * b * i / t
        selective_attention = b * (q + k + (q + 2 * k) + q) / t
        full = b * h
    else:  # Transformer Engine
        sp = t if layout.sequence_parallel else 1
        norms = 2 * (2 * b * h / sp + 4)
        attention = b * (2 * q + 2 * k) / t + 4 * a / t
        mask = 0.0
        mlp = 3 * b * i / t
        selective_attention = b * (2 * q + 2 * k) / t
        full = b * h / sp
    saved = (norms + attention + mask + mlp) * tokens + rope
    selective = (norms + selective_attention + mlp) * tokens + rope
    return LayerCost(
        saved=saved, kept_full=full * tokens, kept_selective=selective,
        forward_transient=(b * (2 * h + 3 * i / t) + mask) * tokens + rope, gradients=b * (2 * i / t + 2 * h) * tokens,
    )


@dataclass(frozen=True)
class ActivationBytes:
    """Activation bytes of one pipeline rank for a training step's largest micro-batch."""

    kept: float  # every in-flight micro-batch's kept activations (layers + per-forward tensors)
    backward: float  # one layer's backward in flight (its recomputation with recompute)
    in_flight: float  # micro-batches (fractional: model chunks) whose activations are alive at once
    layers: int  # decoder layers of this rank

    @property
    def total(self) -> float:
        return self.kept + self.backward


def stage_layers(shape: ModelShape, layout: Layout) -> int:
    return shape.layers // layout.pp


def in_flight(layout: Layout, micro_batches: int, *, first: bool) -> float:
    """Micro-batches whose activations one rank holds at once (in units of its whole stage).

    1F1B (vpp = 1): the first stage runs pp forwards before its first backward (fewer when the
    replica has fewer micro-batches), the last stage one. Interleaved (vpp > 1): rank 0 warms
    up 2 (pp - 1) + (vpp - 1) pp model chunks, each 1 / vpp of its layers, plus the one in its
    backward; the last rank (vpp - 1) pp + 1 chunks (megatron's schedule)."""
    if layout.pp == 1:
        return 1.0
    if layout.vpp == 1:
        return float(min(layout.pp, micro_batches)) if first else 1.0
    warmup = 2 * (layout.pp - 1) if first else 0
    chunks = warmup + (layout.vpp - 1) * layout.pp + 1
    return min(chunks, micro_batches * layout.vpp) / layout.vpp


def per_forward_bytes(shape: ModelShape, layout: Layout, mb: MicroBatch, *, first: bool, last: bool) -> float:
    """Tensors a micro-batch's forward keeps outside the decoder layers: ids, RoPE tables, the
    final norm and the hidden states the log-prob head keeps (the head's buffers: logprob_memory.py)."""
    h, b, d = shape.hidden, shape.bytes, shape.head_dim
    tokens = mb.tokens / layout.cp
    out = 0.0
    if first:
        out += 8 * tokens  # input ids (the embedding's backward)
        if layout.layers == "transformers":
            out += 2 * d * b * tokens  # cos / sin [rows, T, d]
            if layout.recompute == "full" and hf_padding_mask(mb):
                out += mb.tokens * mb.width  # the boolean mask, an input of every checkpointed layer
        elif layout.recompute == "full":
            out += 4 * d * mb.width / layout.cp  # rotary frequencies [S, 1, 1, d] fp32, a checkpoint input
    if last:
        if layout.layers == "transformers":
            out += (4 * h + 4 + b * h) * tokens  # final norm; its output is not kept (index_select)
            out += (b * h + 16) * tokens  # the scored hidden states [n, H] and per-token statistics
        elif layout.layers == "megatron_local":
            out += (4 * h + 4 + 4 * h + b * h) * tokens + 16 * tokens  # final norm (output = head input)
        else:
            sp = layout.tp if layout.sequence_parallel else 1
            out += (2 * b * h / sp + 4 + b * h) * tokens + 16 * tokens  # TE norm; gathered head input
        out += 48 * tokens  # the loss's per-token tensors (log-probs, ratios, masks: ~12 fp32)
    return out


def activation_bytes(
    shape: ModelShape, layout: Layout, mb: MicroBatch, micro_batches: int, *, first: bool, last: bool
) -> ActivationBytes:
    """Activations of the rank that holds the first and / or the last pipeline stage."""
    cost = layer_cost(shape, layout, mb)
    layers = stage_layers(shape, layout)
    flight = in_flight(layout, micro_batches, first=first)
    kept_layer = cost.kept(layout.recompute)
    kept = flight * (layers * kept_layer + per_forward_bytes(shape, layout, mb, first=first, last=last))
    recomputed = {"none": 0.0, "full": cost.saved, "selective": cost.saved - cost.kept_selective}[layout.recompute]
    backward = recomputed + cost.gradients  # one layer's recomputation, then its gradients
    return ActivationBytes(kept=kept, backward=backward, in_flight=flight, layers=layers)

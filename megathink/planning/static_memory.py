"""Memory a rank holds for the whole stage: its weights, gradients, optimizer state, and the
model copies it keeps (the KL reference, rank 0's HF sampler).

Per rank (b = bytes of model.dtype, P = the parameters this rank holds):

- weights: b P. HF backend: the whole model. Megatron: pp-th of the layers, each linear split
  over tp (norms replicated), the embedding `[V_pad / tp, h]` on the first stage, the final
  norm and the output layer on the last (a tied model keeps a second copy of the embedding on
  the last stage when pp > 1, as megatron does).
- gradients: b P (`param.grad` in the parameter dtype; kept from the backward until the next
  step's `zero_grad`, so they are live during rollouts and evaluations too).
- fp32 master weights (bf16 / fp16 models, trainer/master_weights.py): 4 P, and AdamW's two
  fp32 moments: 8 P; both divided by the ZeRO-1 group (`Layout.zero`) with
  parallel.distributed_optimizer.
- optimizer step (transient): the fp32 copies of the gradients MasterWeightAdamW hands AdamW
  (4 bytes per parameter of this rank's optimizer partition, all at once), and megatron's
  gradient clipping takes each gradient to fp64 one at a time (8 bytes x the largest shard).
- KL reference (algorithm.kl_coef > 0): a copy of the weights (b P; HF: a deep copy of the
  model, megatron: of this rank's shard).
- sampler (megatron, rank 0): the whole HF model, b x all parameters, on the GPU with the
  local rollout engine; parked on the CPU with SGLang engines, moved to the GPU only for
  evaluations that generate from it (`policy.sampling()`).
"""

from __future__ import annotations

from dataclasses import dataclass

from megathink.planning.layout import Layout
from megathink.planning.model_shape import ModelShape


@dataclass(frozen=True)
class RankParams:
    params: int  # parameters this rank holds
    largest: int  # elements of its largest parameter tensor


def rank_params(shape: ModelShape, layout: Layout, *, first: bool, last: bool) -> RankParams:
    """Parameters of the rank holding the first and / or last pipeline stage (tp rank 0)."""
    if layout.backend == "hf":
        total = shape.total_params()
        return RankParams(params=total, largest=shape.vocab * shape.hidden)
    t = layout.tp
    vocab_rows = shape.megatron_vocab(t) // t
    layers = shape.layers // layout.pp
    params = layers * shape.layer_params(t)
    largest = max(shape.hidden * (shape.q_width + 2 * shape.kv_width) // t, 2 * shape.ffn * shape.hidden // t)
    if first:
        params += vocab_rows * shape.hidden
        largest = max(largest, vocab_rows * shape.hidden)
    if last:
        params += shape.hidden  # final norm
        if not shape.tied or (layout.pp > 1 and not first):
            params += vocab_rows * shape.hidden
            largest = max(largest, vocab_rows * shape.hidden)
    return RankParams(params=params, largest=largest)


@dataclass(frozen=True)
class StaticBytes:
    weights: float
    gradients: float
    first_gradients: float  # what the backward has made when it peaks: the output layer's and one layer's
    master_weights: float
    moments: float
    step_transient: float  # only during the optimizer step
    reference: float  # a KL reference copy of this rank's weights
    sampler: float  # rank 0's HF copy of the whole model (megatron)


def static_bytes(shape: ModelShape, layout: Layout, *, first: bool, last: bool) -> StaticBytes:
    held = rank_params(shape, layout, first=first, last=last)
    b = shape.bytes
    low_precision = b < 4
    zero = layout.zero
    master = 4 * held.params / zero if low_precision else 0.0
    fp32_grads = 4 * held.params / zero if low_precision else 0.0
    clip = 8 * held.largest if layout.backend == "megatron" else 0.0
    head = shape.vocab * shape.hidden if layout.backend == "hf" else shape.megatron_vocab(layout.tp) // layout.tp * shape.hidden
    first_grads = shape.layer_params(layout.tp) + (head if last and not (shape.tied and layout.pp == 1) else 0)
    return StaticBytes(
        weights=b * held.params,
        gradients=b * held.params,
        first_gradients=b * min(first_grads, held.params),
        master_weights=master,
        moments=8 * held.params / zero,
        step_transient=max(fp32_grads, clip),
        reference=b * held.params,
        sampler=b * shape.total_params() if layout.backend == "megatron" and first else 0.0,
    )

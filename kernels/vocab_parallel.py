"""`vocab_parallel_linear_logprob`: `linear_logprob` with the lm_head sharded over TP ranks.

Each rank of `group` holds the rows `[vocab_start, vocab_start + V_r)` of the lm_head weight
(Megatron's vocab-parallel output layer) and the full, replicated hidden states. Forward:
each rank reduces its shard's logits to per-token (lse, mu, target logit) with the chunked or
fused implementation, and two all-reduces over the group (MAX of lse, then SUM of
`[exp(lse_r - lse_max), target logit, exp(lse_r - lse_max) * mu_r]`) give every rank the
full-vocabulary log-probs and entropies (`row_stats.all_reduce_row_stats`), whatever the
number of tokens. Backward: every rank recomputes its own shard's logits tile by tile;
the weight gradient stays local and the hidden-state gradient is all-reduced over the group.

Departure from Megatron's `vocab_parallel_cross_entropy`: that takes the `[N, V_r]` logits of
each rank; here the lm_head matmul is inside the op, so the logits are never stored. Pass the
hidden states *before* any `copy_to_tensor_model_parallel_region` (this op reduces their
gradient itself), or pass `reduce_hidden_grad=False` when the caller's own copy op does it.
Sequence parallelism (hidden states sharded over tokens) is the caller's to gather first.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from megathink.kernels.dispatch import kernel_ops, resolve_impl
from megathink.kernels.linear_logprob import LinearLogprobFunction, LogprobOptions, Result, check_inputs


def vocab_parallel_linear_logprob(
    hidden: torch.Tensor,
    weight_shard: torch.Tensor,
    targets: torch.Tensor,
    *,
    vocab_start: int,
    group: Any,
    temperature: float = 1.0,
    return_entropy: bool = False,
    impl: str = "auto",
    chunk_tokens: Optional[int] = None,
    reduce_hidden_grad: bool = True,
) -> Result:
    """Full-vocabulary log p(targets) `[N]` (and entropy `[N]`) from this rank's weight shard.

    hidden: [N, H], identical on every rank of `group`; weight_shard: [V_r, H], vocabulary ids
    `vocab_start ... vocab_start + V_r - 1`; targets: [N] global ids (< 0: ignored), identical on
    every rank. impl: 'auto' | 'fused' | 'chunked' (the naive path has no sharded form).
    """
    check_inputs("vocab_parallel_linear_logprob", hidden, weight_shard, targets, temperature, chunk_tokens)
    if not isinstance(vocab_start, int) or vocab_start < 0:
        raise ValueError(f"vocab_parallel_linear_logprob: vocab_start = {vocab_start!r} must be an integer >= 0.")
    impl = resolve_impl(impl, hidden.device)
    if impl == "naive":
        raise ValueError("vocab_parallel_linear_logprob: impl='naive' has no vocab-parallel form; use 'chunked'.")
    opts = LogprobOptions(
        kernel_ops(impl), float(temperature), bool(return_entropy), chunk_tokens,
        vocab_start=vocab_start, distributed=True, group=group, reduce_hidden_grad=reduce_hidden_grad,
    )
    logp, entropy = LinearLogprobFunction.apply(hidden.contiguous(), weight_shard.contiguous(), targets.long(), opts)
    return (logp, entropy) if return_entropy else logp

"""Forward (and backward) passes of a megatron GPTModel through megatron's pipeline schedules.

Batches arrive the way the trainer builds them: `[B, S]` ids with an attention mask, left
padded (RL: prompt left-padded, response right-padded) or right padded (SFT). Each row's real
tokens are contiguous; `align_rows` moves them to column 0 (positions 0, 1, ...), so megatron's
plain causal attention sees exactly each sequence and nothing else, and `restore_columns` puts
per-token results back in the caller's columns. With packing (`packing.py`) a micro-batch is
one THD row `[1, S]` of slots (`cu_seqlens`) passed to megatron as `PackedSeqParams`, so
attention and RoPE keep every sample to its slot.

`vocab_parallel_logprobs` computes `log softmax(z / T)[target]` and the entropy from this TP
rank's vocabulary slice of the logits: the max, the sum of exponentials, the target logit and
`sum p z` are all-reduced over the tensor-parallel group (autograd-aware: forward all-reduce,
backward identity), so the full vocabulary is never gathered. Padded vocabulary rows (the
vocabulary rounded up to a multiple of tp) are masked out.

With `logprob_impl` 'chunked' or 'fused' the output layer is bypassed and
`kernels.vocab_parallel_linear_logprob` computes the same quantities from the final hidden
states and the lm_head shard, without storing even the logits slice.

With sequence parallelism (the model's `config.sequence_parallel`, Transformer Engine layers)
megatron's embedding scatters the sequence over the TP ranks and its output layer gathers it
back, so the 'naive' route sees whole rows as before; on the 'chunked' / 'fused' routes the
bypassed output layer gathers the final hidden states `[S / tp, b, H] -> [S, b, H]` itself
(backward: a reduce-scatter of the TP ranks' partial gradients, the kernel's own all-reduce
switched off), as megatron's sequence-parallel `ColumnParallelLinear` does. The rows arrive
padded to a multiple of tp (`backend.py`).

With context parallelism (`parallel.cp` > 1) each micro-batch's columns are split over the cp
ranks (`context_parallel.py`; a THD row slot by slot): every rank feeds its share of the ids,
scores its share of the targets, and the per-token log-probs and entropies are gathered back
to whole rows before the loss, which every cp rank computes identically.

`run_schedule` drives `get_forward_backward_func()` (no pipelining at pp = 1, 1F1B otherwise,
interleaved 1F1B over the model chunks with vpp > 1) over micro-batches of equal width;
`loss_fn(micro_batch, logp, entropy)` runs on the last stage and returns (loss, metrics).
Losses are used as given (`calculate_per_token_loss`, no division by the number of
micro-batches): the caller weights them. The interleaved schedule needs at least pp
micro-batches: fewer are topped up with copies of the last one whose loss is zero and whose
results are dropped (a forward-only scoring pass of one micro-batch costs pp of them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Optional

import torch

from megathink.models.megatron.context_parallel import ContextSplit


@dataclass
class MicroBatch:
    """Row-aligned ids of one micro-batch and whatever the loss needs."""

    input_ids: torch.Tensor  # [b, S] long, real tokens from column 0, padding after
    position_ids: torch.Tensor  # [b, S] long
    lengths: torch.Tensor  # [b] long, real tokens per row
    extras: dict[str, Any] = field(default_factory=dict)
    cu_seqlens: Optional[torch.Tensor] = None  # [slots + 1] int32: a packed THD row ([1, S]); None: causal rows


def align_rows(input_ids: torch.Tensor, attention_mask: torch.Tensor, pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids [B, S] with each row's real tokens moved to column 0, starts [B], lengths [B])."""
    real = attention_mask != 0  # [B, S]
    lengths = real.sum(dim=1)  # [B]
    starts = torch.where(lengths > 0, real.float().argmax(dim=1), torch.zeros_like(lengths))  # [B]
    columns = torch.arange(input_ids.shape[1])[None, :]  # [1, S]
    source = (starts[:, None] + columns).clamp(max=input_ids.shape[1] - 1)  # [B, S]
    aligned = input_ids.gather(1, source).masked_fill(columns >= lengths[:, None], pad_id)
    return aligned, starts, lengths


def restore_columns(values: torch.Tensor, starts: torch.Tensor, lengths: torch.Tensor, width: int) -> torch.Tensor:
    """Inverse of `align_rows` for per-token values [B, S] (zeros outside each row's real tokens)."""
    columns = torch.arange(width, device=values.device)[None, :]  # [1, S]
    offset = columns - starts[:, None].to(values.device)  # [B, S]
    inside = (offset >= 0) & (offset < lengths[:, None].to(values.device))
    gathered = values.gather(1, offset.clamp(min=0, max=values.shape[1] - 1))
    return torch.where(inside, gathered, torch.zeros((), dtype=values.dtype, device=values.device))


def thd_params(cu_seqlens: torch.Tensor, device: torch.device) -> Any:
    """megatron's `PackedSeqParams` for one THD row whose slots end at `cu_seqlens` (the slots
    include their padding, so the padded and unpadded boundaries are the same)."""
    from megatron.core.packed_seq_params import PackedSeqParams

    bounds = cu_seqlens.to(device=device, dtype=torch.int32)
    longest = int((cu_seqlens[1:] - cu_seqlens[:-1]).max())
    return PackedSeqParams(
        qkv_format="thd", cu_seqlens_q=bounds, cu_seqlens_kv=bounds, cu_seqlens_q_padded=bounds,
        cu_seqlens_kv_padded=bounds, max_seqlen_q=longest, max_seqlen_kv=longest,
    )


def vocab_parallel_logprobs(
    logits: torch.Tensor, targets: torch.Tensor, *, temperature: float, vocab_size: int, entropy: bool
) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """logp [b, S] (and entropy [b, S]) from this rank's logits slice [b, S, V / tp]."""
    from megatron.core import parallel_state
    from megatron.core.tensor_parallel.mappings import reduce_from_tensor_model_parallel_region

    z = logits.float() / temperature  # [b, S, Vl]
    local = z.shape[-1]
    start = parallel_state.get_tensor_model_parallel_rank() * local
    vocab_ids = torch.arange(start, start + local, device=z.device)
    if start + local > vocab_size:  # padded rows of the last slice
        z = z.masked_fill(vocab_ids >= vocab_size, float("-inf"))
    zmax = z.detach().max(dim=-1).values  # [b, S]
    group = parallel_state.get_tensor_model_parallel_group()
    if parallel_state.get_tensor_model_parallel_world_size() > 1:
        torch.distributed.all_reduce(zmax, op=torch.distributed.ReduceOp.MAX, group=group)
    shifted = z - zmax[..., None]  # [b, S, Vl]
    exp = shifted.exp()
    sum_exp = reduce_from_tensor_model_parallel_region(exp.sum(dim=-1))  # [b, S]
    in_slice = (targets >= start) & (targets < start + local)  # [b, S]
    local_index = (targets - start).clamp(min=0, max=local - 1)
    target_logit = shifted.gather(-1, local_index[..., None]).squeeze(-1) * in_slice  # [b, S]
    target_logit = reduce_from_tensor_model_parallel_region(target_logit)
    log_z = sum_exp.log()
    logp = target_logit - log_z
    if not entropy:
        return logp, None
    p_times_z = reduce_from_tensor_model_parallel_region(
        (exp * shifted.masked_fill(torch.isinf(shifted), 0.0)).sum(dim=-1)
    )  # [b, S]
    return logp, log_z - p_times_z / sum_exp


LossFn = Callable[[MicroBatch, torch.Tensor, Optional[torch.Tensor]], tuple[torch.Tensor, dict[str, Any]]]
"""(micro-batch, logp [b, S-1], entropy [b, S-1] or None) -> (loss, metrics); logp[:, t] scores token t + 1."""


def hidden_logprobs(
    hidden: torch.Tensor, weight_shard: torch.Tensor, targets: torch.Tensor, *, temperature: float, vocab_size: int,
    entropy: bool, impl: str, chunk_tokens: Optional[int], reduce_hidden_grad: bool = True,
) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """logp [b, S] (and entropy) from hidden states [b, S, H] and this rank's lm_head rows, with
    `megathink.kernels.vocab_parallel_linear_logprob` (the logits are never stored; padded
    vocabulary rows are cut off the last shard). reduce_hidden_grad=False when the caller's
    gather reduces the hidden states' gradient itself (sequence parallelism)."""
    from megatron.core import parallel_state

    from megathink.kernels import vocab_parallel_linear_logprob

    rows = weight_shard.shape[0]
    start = parallel_state.get_tensor_model_parallel_rank() * rows
    weight = weight_shard[: max(0, min(rows, vocab_size - start))]
    b, s, h = hidden.shape
    out = vocab_parallel_linear_logprob(
        hidden.reshape(b * s, h), weight, targets.reshape(-1), vocab_start=start,
        group=parallel_state.get_tensor_model_parallel_group(), temperature=temperature, return_entropy=entropy,
        impl=impl, chunk_tokens=chunk_tokens, reduce_hidden_grad=reduce_hidden_grad,
    )
    logp, ent = out if entropy else (out, None)
    return logp.reshape(b, s), None if ent is None else ent.reshape(b, s)


def interleaved_group_size(count: int, pp: int) -> int:
    """Micro-batches per virtual-stage group for the interleaved schedule (megatron needs the
    group in [pp, count] and count % group == 0 or >= pp): pp when it divides `count`, else all."""
    return pp if count % pp == 0 else count


def run_schedule(
    model: Any,
    micro_batches: Sequence[MicroBatch],
    loss_fn: LossFn,
    *,
    temperature: float,
    vocab_size: int,
    entropy: bool,
    forward_only: bool,
    logprob_impl: str = "naive",
    chunk_tokens: Optional[int] = None,
) -> list[dict[str, Any]]:
    """Run every micro-batch forward (and backward unless forward_only); the metrics of each,
    on the last pipeline stage (an empty list elsewhere).

    logprob_impl 'naive': the output layer computes this rank's logits slice and
    `vocab_parallel_logprobs` reduces it; 'chunked' / 'fused': the output layer is bypassed and
    `hidden_logprobs` takes the final hidden states and its weight (no logits stored).
    """
    from megatron.core import parallel_state
    from megatron.core.pipeline_parallel import get_forward_backward_func

    from megathink.models.megatron.model import as_chunks

    width = micro_batches[0].input_ids.shape[1]
    if any(mb.input_ids.shape != micro_batches[0].input_ids.shape for mb in micro_batches):
        raise ValueError("run_schedule: every micro-batch must have the same [b, S] shape (pad them to one width).")
    chunks = as_chunks(model)
    config = chunks[0].config  # one TransformerConfig shared by the chunks
    config.calculate_per_token_loss = True  # losses come weighted by the caller; no extra division
    device = next(chunks[0].parameters()).device
    scheduled = list(micro_batches)
    if len(chunks) > 1:
        pp = parallel_state.get_pipeline_model_parallel_world_size()
        filler = replace(micro_batches[-1], extras={"filler": True})  # same shape, zero loss
        scheduled += [filler] * max(0, pp - len(micro_batches))
        config.microbatch_group_size_per_vp_stage = interleaved_group_size(len(scheduled), pp)

    cp = parallel_state.get_context_parallel_world_size()

    def split_of(mb: MicroBatch) -> Optional[ContextSplit]:  # this cp rank's share of the row
        if cp == 1:
            return None
        bounds = mb.cu_seqlens if mb.cu_seqlens is not None else (0, width)  # an unpacked row: one sequence
        return ContextSplit.of(
            bounds, cp, parallel_state.get_context_parallel_rank(), parallel_state.get_context_parallel_group()
        )

    def forward_step(data_iterator: Any, chunk: Any) -> tuple[torch.Tensor, Callable[[torch.Tensor], Any]]:
        mb: MicroBatch = next(data_iterator)
        split = split_of(mb)

        def local(x: torch.Tensor) -> torch.Tensor:  # [b, S] -> this cp rank's columns [b, S / cp]
            return x if split is None else split.local(x)

        def whole(values: torch.Tensor) -> torch.Tensor:  # [b, S / cp, ...] of every cp rank -> [b, S, ...]
            return values if split is None else split.gather(values)

        packed = None if mb.cu_seqlens is None else thd_params(mb.cu_seqlens, device)
        output = chunk(  # last stage: [b, S / cp, Vl]
            local(mb.input_ids).to(device), local(mb.position_ids).to(device), None, packed_seq_params=packed
        )
        # targets[:, t] = token t + 1 (the last column's is padding, dropped below)
        targets = local(torch.nn.functional.pad(mb.input_ids[:, 1:], (0, 1)))  # [b, S / cp]

        def loss_func(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
            if "filler" in mb.extras:  # a top-up micro-batch of the interleaved schedule: no loss
                return logits.sum() * 0.0, torch.tensor(1, dtype=torch.int), {"filler": True}
            if logprob_impl != "naive":  # `logits` are the final hidden states [b, S / cp, H] here
                logp, ent = hidden_logprobs(
                    logits, head["weight"], targets.to(logits.device), temperature=temperature,
                    vocab_size=vocab_size, entropy=entropy, impl=logprob_impl, chunk_tokens=chunk_tokens,
                    reduce_hidden_grad=not config.sequence_parallel,  # sp: hidden_through's gather reduces it
                )
            else:
                if "keep_logits" in mb.extras:  # parity checks: the full-vocabulary logits, gathered
                    from megatron.core.tensor_parallel.mappings import gather_from_tensor_model_parallel_region

                    full = gather_from_tensor_model_parallel_region(logits.detach())[..., :vocab_size]
                    mb.extras["logits"] = whole(full)  # [b, S, V]
                logp, ent = vocab_parallel_logprobs(
                    logits, targets.to(logits.device), temperature=temperature, vocab_size=vocab_size, entropy=entropy
                )
            logp = whole(logp)[:, :-1]  # [b, S-1]
            ent = None if ent is None else whole(ent)[:, :-1]
            loss, metrics = loss_fn(mb, logp, ent)
            return loss, torch.tensor(1, dtype=torch.int), metrics

        return output, loss_func

    head: dict[str, Any] = {}
    output_layer = getattr(chunks[-1], "output_layer", None)
    bypass = logprob_impl != "naive" and output_layer is not None

    def hidden_through(input_: torch.Tensor, weight: Optional[torch.Tensor] = None, **_: Any) -> tuple[torch.Tensor, None]:
        head["weight"] = output_layer.weight if weight is None else weight  # tied: the embedding
        if config.sequence_parallel:  # [S / tp, b, H] -> [S, b, H]; backward: reduce-scatter over TP
            from megatron.core.tensor_parallel.mappings import gather_from_sequence_parallel_region

            input_ = gather_from_sequence_parallel_region(input_, tensor_parallel_output_grad=True)
        return input_, None

    if bypass:
        output_layer.forward = hidden_through
    try:
        results = get_forward_backward_func()(
            forward_step_func=forward_step,
            data_iterator=[iter(scheduled) for _ in chunks] if len(chunks) > 1 else iter(scheduled),
            model=chunks,
            num_microbatches=len(scheduled),
            seq_length=width,
            micro_batch_size=micro_batches[0].input_ids.shape[0],
            forward_only=forward_only,
        )
        return [r for r in results if not (isinstance(r, dict) and r.get("filler"))]
    finally:
        if bypass:
            del output_layer.forward  # back to the class's forward

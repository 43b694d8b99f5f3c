"""`MegatronBackend`: the policy as a sharded megatron GPTModel, behind the same seams as `HFBackend`.

Every rank of a torchrun job holds one, around its GPTModel or, with vpp > 1, its model chunks
(`model.as_chunks`); they run the same trainer code in lock step:

- `run_micro_batches(micro_batches, loss_fn, ...)` (the seam of `models.micro_batches`): rows are
  aligned to column 0 (`forward.align_rows`) and every micro-batch is padded to one width, or,
  with `pack=True`, each micro-batch's samples go end to end in one THD row (`packing.py`), and
  megatron's schedule runs them (1F1B across pipeline stages, interleaved over the chunks with
  vpp > 1); with data parallelism each replica runs every dp-th micro-batch (the losses are weighted parts of the whole batch's
  loss, so the replicas' gradients are summed); with context parallelism (`parallel.cp`) each
  row is split over the cp ranks (`context_parallel.py`; rows padded to a multiple of 2 cp)
  and their partial gradients are summed with the replicas'. On the last stage the
  vocab-parallel log-probs are put back in the caller's columns and handed to the shared loss
  function; its metrics reach every rank (broadcast over the pipeline, gathered over the
  replicas, in the caller's order). After the backward pass the gradients are finished: a tied
  embedding's two copies (first and last stage) are summed, and so are the replicas' gradients;
  with sequence parallelism (`parallel.sequence_parallel`, read from the model's config) each
  TP rank's norm weights saw 1/tp of the tokens, so their gradients (the parameters megatron
  marks `sequence_parallel`) are summed over the TP group as megatron's `finalize_model_grads`
  does, and rows are padded to a multiple of tp (of 2 cp tp with context parallelism; a packed
  row's tail slot grows to it).
- `logprobs_and_entropy` / `logprobs`: a forward-only pass, the result on every rank.
- `clip_grad_norm(max_norm)`: the global L2 norm over all shards (tensor-parallel duplicates
  counted once), summed over the model-parallel group, then every shard clipped.
- `export_hf_state()`: full HF-named tensors on rank 0 (the streaming exporter), for rollout
  engines, evaluation and `save_hf`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import Any, Optional

import torch
import torch.distributed as dist

from megathink.models.megatron.context_parallel import padded_width
from megathink.models.megatron.distributed import ParallelInfo
from megathink.models.megatron.forward import MicroBatch, align_rows, restore_columns, run_schedule
from megathink.models.megatron.gpt_spec import GPTSpec
from megathink.models.megatron.model import as_chunks
from megathink.models.megatron.packing import pack_stream, stream_length, unpack_values
from megathink.models.megatron.weights_io import iter_hf_buckets
from megathink.models.micro_batches import MicroLoss, Scored
from megathink.models.module_backend import ModuleBackend


class MegatronBackend(ModuleBackend):
    def __init__(
        self, model: Any, spec: GPTSpec, info: ParallelInfo, *, pad_id: int, logprob_impl: str = "chunked",
        chunk_tokens: int = 0, pack: bool = False,
    ) -> None:
        from megathink.kernels import resolve_impl

        self.chunks = as_chunks(model)  # [vpp] GPTModels, in virtual-stage order
        device = next(self.chunks[0].parameters()).device
        super().__init__(self.chunks[0] if len(self.chunks) == 1 else torch.nn.ModuleList(self.chunks), device)
        # kernels.logprob: 'naive' reduces the output layer's logits slice; 'chunked' / 'fused'
        # go from hidden states (megathink.kernels); 'fused' is refused without Triton + CUDA.
        self.logprob_impl = logprob_impl if logprob_impl == "naive" else resolve_impl(logprob_impl, device)
        self.chunk_tokens = chunk_tokens or None
        self.spec = spec
        self.info = info
        self.pad_id = pad_id
        self.pack = pack  # a micro-batch's samples in one THD row (packing.py)
        self.data_parallel_size = info.dp  # micro-batch i runs on replica i % dp (run_micro_batches)
        self.packs_sequences = pack  # token budgets count summed row lengths (data.micro_batching)
        # megatron's sequence parallelism: the hidden states are split over the TP ranks along the sequence
        self.sequence_parallel = bool(getattr(self.chunks[0].config, "sequence_parallel", False))

    # -- the PolicyBackend surface -------------------------------------------------------------
    def logprobs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, temperature: float = 1.0) -> torch.Tensor:
        return self.logprobs_and_entropy(input_ids, attention_mask, temperature=temperature, entropy=False)[0]

    def logprobs_and_entropy(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, temperature: float = 1.0, entropy: bool = True
    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """[B, T] log-probs (and entropies) in the caller's columns, on every rank, no gradients."""

        def keep(mb: Scored, logp: torch.Tensor, ent: Optional[torch.Tensor]) -> tuple[torch.Tensor, dict[str, Any]]:
            return logp.sum() * 0.0, {"logp": logp.detach().cpu(), "entropy": None if ent is None else ent.detach().cpu()}

        (result,) = self.run_micro_batches(
            [Scored(input_ids, attention_mask)], keep, temperature=temperature, entropy=entropy, forward_only=True
        )
        return result["logp"], result["entropy"]

    # -- training --------------------------------------------------------------------------------
    def run_micro_batches(
        self,
        micro_batches: Sequence[Scored],
        loss_fn: MicroLoss,
        *,
        temperature: float = 1.0,
        entropy: bool = False,
        forward_only: bool = False,
    ) -> list[dict[str, Any]]:
        widest = max(mb.input_ids.shape[1] for mb in micro_batches)
        width = self._round_up(padded_width(widest, self.info.cp))  # cp: 2 cp | S; sequence parallel: tp | S
        prepared = self._pack(micro_batches) if self.pack else self._align(micro_batches, width)

        def schedule_loss(mb: MicroBatch, logp: torch.Tensor, ent: Optional[torch.Tensor]) -> tuple[torch.Tensor, dict]:
            scored: Scored = mb.extras["scored"]
            columns = scored.input_ids.shape[1]

            def to_caller(values: torch.Tensor) -> torch.Tensor:  # [rows, S-1] -> [b, T] caller columns
                shifted = torch.nn.functional.pad(values, (1, 0))  # column t scores row token t
                if "layout" in mb.extras:
                    return unpack_values(shifted, mb.extras["layout"], width)[:, :columns]
                return restore_columns(shifted, mb.extras["starts"], mb.lengths, width)[:, :columns]

            return loss_fn(scored, to_caller(logp), None if ent is None else to_caller(ent))

        mine = list(range(self.info.dp_rank, len(prepared), self.info.dp))  # this replica's share
        results: list[dict[str, Any]] = []
        if mine:
            with torch.no_grad() if forward_only else contextlib.nullcontext():
                results = run_schedule(
                    self.chunks, [prepared[i] for i in mine], schedule_loss, temperature=temperature,
                    vocab_size=self.spec.vocab_size, entropy=entropy, forward_only=forward_only,
                    logprob_impl=self.logprob_impl, chunk_tokens=self.chunk_tokens,
                )
        if not forward_only:
            self._finish_grads()
        return self._gather_replicas(mine, self._from_last_stage(results, len(mine)), len(micro_batches))

    def _align(self, micro_batches: Sequence[Scored], width: int) -> list[MicroBatch]:
        """One row per sample, its real tokens from column 0, every micro-batch [b, width]."""
        prepared = []
        for mb in micro_batches:
            ids = torch.nn.functional.pad(mb.input_ids, (0, width - mb.input_ids.shape[1]), value=self.pad_id)
            mask = torch.nn.functional.pad(mb.attention_mask, (0, width - mb.attention_mask.shape[1]), value=0)
            aligned, starts, lengths = align_rows(ids, mask, self.pad_id)
            positions = torch.arange(width).expand_as(aligned)
            prepared.append(MicroBatch(aligned, positions, lengths, extras={"scored": mb, "starts": starts}))
        return prepared

    def _pack(self, micro_batches: Sequence[Scored]) -> list[MicroBatch]:
        """Each micro-batch's samples end to end in one THD row; every row gets the same length
        (the pipeline's p2p shapes are fixed), in slots of 2 cp tokens with context parallelism."""
        slot = 2 * self.info.cp if self.info.cp > 1 else 1
        lengths = [mb.attention_mask.ne(0).sum(dim=1).tolist() for mb in micro_batches]
        total = self._round_up(max(stream_length(row, slot) for row in lengths), slot)  # sp: slot tp | total
        prepared = []
        for mb in micro_batches:
            ids, positions, layout = pack_stream(mb.input_ids, mb.attention_mask, slot_multiple=slot, total=total, pad_id=self.pad_id)
            prepared.append(
                MicroBatch(ids, positions, layout.lengths, extras={"scored": mb, "layout": layout}, cu_seqlens=layout.cu_seqlens)
            )
        return prepared

    def _round_up(self, width: int, multiple: int = 1) -> int:
        """`width` rounded up to a multiple of `multiple` x tp with sequence parallelism (the
        embedding scatters the sequence evenly over the TP ranks); unchanged without it."""
        if not self.sequence_parallel:
            return width
        step = multiple * self.info.tp
        return -(-width // step) * step

    def padded_tokens(self, micro_batches: Sequence[Scored]) -> int:
        """Token positions this backend computes for `micro_batches` (all replicas): packed, every
        micro-batch's row is the longest stream; unpacked, every row is the widest micro-batch's."""
        if self.pack:
            slot = 2 * self.info.cp if self.info.cp > 1 else 1
            total = max(stream_length(mb.attention_mask.ne(0).sum(dim=1).tolist(), slot) for mb in micro_batches)
            return self._round_up(total, slot) * len(micro_batches)
        width = self._round_up(padded_width(max(mb.input_ids.shape[1] for mb in micro_batches), self.info.cp))
        return width * sum(int(mb.input_ids.shape[0]) for mb in micro_batches)

    def _gather_replicas(self, mine: list[int], results: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
        """Every micro-batch's metrics, in the caller's order, from the data-parallel replicas that ran them."""
        if self.info.dp == 1:
            return results
        from megatron.core import parallel_state

        pieces: list[Any] = [None] * self.info.dp
        dist.all_gather_object(pieces, list(zip(mine, results)), group=parallel_state.get_data_parallel_group())
        ordered: list[Any] = [None] * count
        for piece in pieces:
            for index, result in piece:
                ordered[index] = result
        return ordered

    def _from_last_stage(self, results: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
        if self.info.pp == 1:
            return list(results)
        from megatron.core import parallel_state

        box: list[Any] = [list(results) if self.info.last_stage else None]
        dist.broadcast_object_list(
            box, src=parallel_state.get_pipeline_model_parallel_last_rank(),
            group=parallel_state.get_pipeline_model_parallel_group(),
        )
        assert box[0] is not None and len(box[0]) == count
        return box[0]

    def _finish_grads(self) -> None:
        from megatron.core import parallel_state

        if self.sequence_parallel and self.info.tp > 1:
            # Norm weights are replicated over TP but, with sequence parallelism, each TP rank's
            # copy saw only its 1/tp of the tokens: sum the partial gradients over the TP group
            # (megatron's finalize_model_grads, `_allreduce_non_tensor_model_parallel_grads`).
            # The TP ranks of a replica ran the same micro-batches, so the same grads are None.
            grads = [p.grad for p in self.parameters() if getattr(p, "sequence_parallel", False) and p.grad is not None]
            if grads:
                from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

                flat = _flatten_dense_tensors(grads)
                dist.all_reduce(flat, group=parallel_state.get_tensor_model_parallel_group())
                for grad, summed in zip(grads, _unflatten_dense_tensors(flat, grads)):
                    grad.copy_(summed)
        if self.spec.tied_embeddings and self.info.pp > 1 and (self.info.first_stage or self.info.last_stage):
            holder = self.chunks[0] if self.info.first_stage else self.chunks[-1]  # embedding / output layer
            weight = holder.shared_embedding_or_output_weight()
            if weight.grad is not None:
                dist.all_reduce(weight.grad, group=parallel_state.get_embedding_group())
        if self.info.dp * self.info.cp > 1:
            # each replica ran its share of the micro-batches and each cp rank the part of the
            # gradient that flows through its tokens: sum over replicas x cp ranks
            group = parallel_state.get_data_parallel_group(with_context_parallel=True)
            for param in self.parameters():
                if param.grad is None:  # a replica with no micro-batch this time
                    param.grad = torch.zeros_like(param)
                dist.all_reduce(param.grad, group=group)

    def clip_grad_norm(self, max_norm: float) -> float:
        """Clip the global L2 gradient norm over every shard to `max_norm` (0: no clipping); the norm before."""
        from megatron.core import parallel_state
        from megatron.core.tensor_parallel import param_is_not_tensor_parallel_duplicate

        squares = torch.zeros((), dtype=torch.float64)
        params = [p for p in self.parameters() if p.grad is not None]
        for param in params:
            counted = param_is_not_tensor_parallel_duplicate(param)
            shared_copy = (  # a tied embedding's last-stage copy: counted on the first stage only
                self.spec.tied_embeddings and self.info.pp > 1 and self.info.last_stage
                and param is self.chunks[-1].shared_embedding_or_output_weight()
            )
            if counted and not shared_copy:
                squares += param.grad.detach().double().pow(2).sum().cpu()
        squares = squares.to(self.device)
        dist.all_reduce(squares, group=parallel_state.get_model_parallel_group())
        norm = math.sqrt(float(squares))
        if max_norm > 0 and norm > max_norm:
            scale = max_norm / (norm + 1e-6)
            for param in params:
                param.grad.mul_(scale)
        return norm

    # -- weights out -----------------------------------------------------------------------------
    def export_hf_state(self, *, bucket_bytes: int = 512 * 2**20) -> dict[str, torch.Tensor]:
        """Full HF-named tensors of the current weights on rank 0, an empty dict on the other ranks
        (collective: every rank must call it)."""
        out: dict[str, torch.Tensor] = {}
        for bucket in iter_hf_buckets(self.chunks, self.spec, self.info, bucket_bytes=bucket_bytes):
            out.update(bucket)
        return out

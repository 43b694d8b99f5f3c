"""`linear_logprob`: per-token log-probs (and entropies) straight from hidden states.

    linear_logprob(hidden [N, H], weight [V, H], targets [N], *, temperature=1.0,
                   return_entropy=False, impl="auto") -> logp [N] (, entropy [N])

with `z = hidden @ weight.T / temperature`, `logp = z[y] - logsumexp(z)` and the entropy
`H = logsumexp(z) - sum softmax(z) z`, both in fp32 (fp64 for fp64 inputs). Targets < 0 are
ignored: their log-prob *and* entropy are 0 and they get no gradient. The `[N, V]` logits
are never stored, in the forward or the backward:

* forward: the implementation's `row_stats` reduces every token to (lse, mu, target logit)
  (`row_stats.py`); the vocab-parallel variant merges those across its TP group here;
* backward (`tiled_gradients`): the vocabulary is taken a tile `W[a:b]` at a time (`tiles.py`:
  the tile's `[N, b - a]` buffer holds as many elements as a `[chunk_tokens, V]` one); the
  implementation recomputes the logits of every token over the tile and returns
  `d loss / d logits` for it, then `grad_weight[a:b] = dlogits^T @ h` is written once (one
  matmul over all N tokens: no `[V, H]` accumulator and, for bf16/fp16 weights, one rounding)
  and `grad_hidden += dlogits @ W[a:b]` (an fp32 `[N, H]` accumulator for bf16/fp16). The
  vocab-parallel variant all-reduces grad_hidden over the group.

The saved state is hidden, weight, targets and two floats per token. `impl` picks the
implementation (`dispatch.py`): 'fused' (Triton, `linear_logprob_triton.py`), 'chunked'
(torch, `linear_logprob_chunked.py`), 'naive' (`linear_logprob_naive.py`, the full logits;
a baseline, never chosen by 'auto').
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Optional, Union

import torch

from megathink.kernels.dispatch import KernelOps, kernel_ops, resolve_impl
from megathink.kernels.linear_logprob_naive import naive_linear_logprob
from megathink.kernels.row_stats import all_reduce_row_stats
from megathink.kernels.tiles import tile_columns

Result = Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]


class LogprobOptions(NamedTuple):
    ops: KernelOps
    temperature: float
    entropy: bool
    chunk_tokens: Optional[int]
    vocab_start: int = 0
    distributed: bool = False  # merge over `group` (vocab-parallel)
    group: Any = None  # torch.distributed group (None: the default group)
    reduce_hidden_grad: bool = True


def linear_logprob(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    temperature: float = 1.0,
    return_entropy: bool = False,
    impl: str = "auto",
    chunk_tokens: Optional[int] = None,
) -> Result:
    """log p(targets) under softmax(hidden @ weight.T / temperature): `[N]` (and the entropy `[N]`).

    hidden: [N, H]; weight: [V, H] (the lm_head, same dtype); targets: [N] ids in [0, V) or < 0.
    impl: 'auto' | 'fused' | 'chunked' | 'naive'; chunk_tokens: the size of the vocabulary-tile
    buffer (`tiles.py`) in tokens' worth of full-vocabulary logits, `[N, w]` with
    N w <= chunk_tokens V (default: 256 MiB of fp32 logits for 'chunked', 1 GiB in the input
    dtype for 'fused').
    """
    check_inputs("linear_logprob", hidden, weight, targets, temperature, chunk_tokens)
    if targets.numel() and int(targets.max()) >= weight.shape[0]:
        raise ValueError(
            f"linear_logprob: targets must be < V = {weight.shape[0]} (or < 0 to ignore); got {int(targets.max())}."
        )
    impl = resolve_impl(impl, hidden.device)
    if impl == "naive":
        return naive_linear_logprob(hidden, weight, targets, temperature=temperature, return_entropy=return_entropy)
    opts = LogprobOptions(kernel_ops(impl), float(temperature), bool(return_entropy), chunk_tokens)
    logp, entropy = LinearLogprobFunction.apply(hidden.contiguous(), weight.contiguous(), targets.long(), opts)
    return (logp, entropy) if return_entropy else logp


def check_inputs(
    fn: str,
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    temperature: float,
    chunk_tokens: Optional[int],
) -> None:
    if hidden.dim() != 2 or weight.dim() != 2 or targets.dim() != 1:
        raise ValueError(
            f"{fn} expects hidden [N, H], weight [V, H] and targets [N]; got {tuple(hidden.shape)}, "
            f"{tuple(weight.shape)} and {tuple(targets.shape)}."
        )
    if hidden.shape[1] != weight.shape[1] or hidden.shape[0] != targets.shape[0] or weight.shape[0] == 0:
        raise ValueError(
            f"{fn}: shapes do not match: hidden {tuple(hidden.shape)}, weight {tuple(weight.shape)} "
            f"(V >= 1, same H), targets {tuple(targets.shape)} (same N)."
        )
    if not hidden.dtype.is_floating_point or hidden.dtype != weight.dtype:
        raise ValueError(f"{fn}: hidden and weight must share one float dtype; got {hidden.dtype} and {weight.dtype}.")
    if targets.dtype.is_floating_point or targets.dtype == torch.bool:
        raise ValueError(f"{fn}: targets must be integer ids; got {targets.dtype}.")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"{fn}: temperature = {temperature!r} is invalid: must be a finite number > 0.")
    if chunk_tokens is not None and (not isinstance(chunk_tokens, int) or chunk_tokens < 1):
        raise ValueError(f"{fn}: chunk_tokens = {chunk_tokens!r} is invalid: must be an integer >= 1 (or None).")


class LinearLogprobFunction(torch.autograd.Function):
    """Forward: row statistics (merged over the TP group if any); backward: recompute by vocabulary tile."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, opts: LogprobOptions):  # type: ignore[override]
        stats = opts.ops.row_stats(
            hidden, weight, targets, vocab_start=opts.vocab_start, temperature=opts.temperature,
            entropy=opts.entropy, chunk_tokens=opts.chunk_tokens,
        )
        if opts.distributed:
            stats = all_reduce_row_stats(stats, opts.group)
        valid = targets >= 0  # [N]
        zero = torch.zeros((), dtype=stats.lse.dtype, device=stats.lse.device)
        logp = torch.where(valid, stats.picked - stats.lse, zero)  # [N]
        if opts.entropy:
            entropy = torch.where(valid, stats.lse - stats.mu, zero)  # [N]
        else:
            entropy = stats.lse.new_empty(0)
            ctx.mark_non_differentiable(entropy)
        ctx.save_for_backward(hidden, weight, targets, stats.lse, entropy)
        ctx.opts = opts
        ctx.set_materialize_grads(False)
        return logp, entropy

    @staticmethod
    def backward(ctx, grad_logp, grad_entropy):  # type: ignore[override]
        hidden, weight, targets, lse, entropy = ctx.saved_tensors
        opts: LogprobOptions = ctx.opts
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if not opts.entropy:
            grad_entropy = None
        if (grad_logp is None and grad_entropy is None) or not (need_h or need_w):
            return None, None, None, None
        valid = targets >= 0  # [N]
        zero = torch.zeros((), dtype=lse.dtype, device=lse.device)
        g = torch.zeros_like(lse) if grad_logp is None else torch.where(valid, grad_logp.to(lse.dtype), zero)
        g = g / opts.temperature  # [N]; d/dlogits = d/dz / T
        g_ent = None
        if grad_entropy is not None:
            g_ent = torch.where(valid, grad_entropy.to(lse.dtype), zero) / opts.temperature  # [N]
        grad_h, grad_w = tiled_gradients(
            hidden, weight, targets, lse, entropy if g_ent is not None else None, g, g_ent, opts,
            need_h=need_h, need_w=need_w,
        )
        if need_h and opts.distributed and opts.reduce_hidden_grad:
            import torch.distributed as dist

            dist.all_reduce(grad_h, group=opts.group)
        return grad_h, grad_w, None, None


def tiled_gradients(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    lse: torch.Tensor,
    entropy: Optional[torch.Tensor],
    g: torch.Tensor,
    g_ent: Optional[torch.Tensor],
    opts: LogprobOptions,
    *,
    need_h: bool,
    need_w: bool,
) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """grad_hidden `[N, H]` and grad_weight `[V, H]`, one vocabulary tile `W[a:b]` at a time.

    For every tile the implementation recomputes the logits of all N tokens over its columns
    and turns them into `dlogits [N, b - a]`; then `grad_weight[a:b] = dlogits^T @ hidden` is
    written once (a matmul over all N tokens: no `[V, H]` accumulator, and for bf16 weights one
    rounding) and `grad_hidden += dlogits @ W[a:b]` (fp32 `[N, H]` accumulator for bf16/fp16).
    g, g_ent: `[N]` upstream gradients already divided by T and 0 on ignored rows.
    """
    rows, vocab = hidden.shape[0], weight.shape[0]
    acc = torch.promote_types(weight.dtype, torch.float32)
    if rows == 0:
        zero_h = torch.zeros_like(hidden) if need_h else None
        return zero_h, torch.zeros_like(weight) if need_w else None
    chunk = opts.chunk_tokens or opts.ops.chunk_tokens(vocab, hidden.dtype)
    width = tile_columns(rows, vocab, chunk)
    buf_dtype = weight.dtype if opts.ops.fused else lse.dtype
    buf = torch.empty(rows * width, dtype=buf_dtype, device=hidden.device)  # one [N, w] tile at a time
    grad_w = torch.empty_like(weight) if need_w else None
    grad_h = torch.empty((rows, hidden.shape[1]), dtype=acc, device=hidden.device) if need_h else None
    for start in range(0, vocab, width):
        stop = min(start + width, vocab)
        w_tile = weight[start:stop]  # [w, H]
        dlogits = opts.ops.dlogits(
            hidden, w_tile, targets, lse, entropy, g, g_ent, vocab_start=opts.vocab_start + start,
            temperature=opts.temperature, out=buf[: rows * (stop - start)].view(rows, stop - start),
        ).to(weight.dtype)  # [N, w]
        if need_w:
            torch.mm(dlogits.t(), hidden, out=grad_w[start:stop])
        if need_h:
            _accumulate(grad_h, dlogits, w_tile, first=start == 0)
    return (None if grad_h is None else grad_h.to(hidden.dtype)), grad_w


def _accumulate(grad_h: torch.Tensor, dlogits: torch.Tensor, w_tile: torch.Tensor, *, first: bool) -> None:
    """grad_h [N, H] (+)= dlogits [N, w] @ w_tile [w, H]; grad_h may be wider (fp32) than the operands."""
    if grad_h.dtype != dlogits.dtype:
        part = torch.mm(dlogits, w_tile)  # [N, H] in the input dtype
        if first:
            grad_h.copy_(part)
        else:
            grad_h.add_(part)
    elif first:
        torch.mm(dlogits, w_tile, out=grad_h)
    else:
        grad_h.addmm_(dlogits, w_tile)

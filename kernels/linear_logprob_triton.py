"""Fused Triton kernels of `linear_logprob`: the lm_head matmul and the softmax in one pass.

Imported only by `megathink.kernels.dispatch` when the fused implementation is asked for,
so megathink imports without triton. The same two functions as the chunked torch module:

* `fused_row_stats(hidden [N, H], weight [V, H], targets [N]) -> RowStats`. One program per
  (block of BLOCK_N tokens, split of the vocabulary) walks its split BLOCK_V columns at a time:
  the logits tile `[BLOCK_N, BLOCK_V]` is a `tl.dot` over H in BLOCK_H steps (fp32
  accumulator), divided by the temperature and folded at once into an online running max,
  sum of exponentials, entropy accumulator `sum e^(z - m) (z - m)` (rescaled whenever the
  max moves) and the target logit. The logits never reach global memory; each split writes
  three floats per token, and the splits merge with `row_stats.merge_row_stats`.
* `fused_dlogits(...)` (the backward, one vocabulary tile of every token at a time, see
  `linear_logprob.tiled_gradients`): each program recomputes one logits block the same way and
  writes `d loss / d logits` for it, in the input dtype, into the tile's `[N, w]` buffer. The
  two gradient matmuls (`dlogits @ W[tile]` and `dlogits^T @ h`) then run on cuBLAS in
  `linear_logprob.py`.

Departure from a fully fused backward (gradients accumulated inside the kernel): that needs
fp32 atomic adds of `(BLOCK_N + BLOCK_V) * H` values per tile into grad_h and grad_W, about
100 flops per byte of atomic traffic at 128 x 128 tiles, under an H100's compute/bandwidth
ridge, so it would run memory-bound; recomputing per H block instead multiplies the logits
matmul. The tile buffer keeps the memory bound at `C * V` elements (C = `chunk_tokens`,
1 GiB by default) and the two gradient matmuls at tensor-core speed: 8 N H V flops in all.

Interpreter (`TRITON_INTERPRET=1`, CPU tests): set it before this module is imported (the
kernels are built as interpreted functions at import). Triton's interpreter multiplies
bf16/fp16 `tl.dot` operands as their raw 16-bit integers, so when interpreting the operands
are cast to fp32 first (`DOT_FP32`, a compile-time constant: compiled GPU kernels keep their
bf16 tensor-core dots). fp32 inputs use `input_precision="ieee"` (no TF32), so fused and
torch agree to fp32 rounding.
"""

from __future__ import annotations

import os
from typing import Optional

import torch
import triton
import triton.language as tl

from megathink.kernels.row_stats import RowStats, merge_row_stats


def _interpret_knob() -> bool:
    knobs = getattr(triton, "knobs", None)  # triton >= 3.4; older ones read the variable directly
    if knobs is not None:
        return bool(knobs.runtime.interpret)
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "yes", "on")


INTERPRETING = _interpret_knob()
"""Whether the kernels below were built for Triton's CPU interpreter (TRITON_INTERPRET=1)."""

FUSED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)

DEFAULT_CHUNK_BYTES = 1 << 30
"""Default size of the backward's dlogits tile buffer (1 GiB in the input dtype)."""


def default_chunk_tokens(vocab: int, dtype: torch.dtype, block_n: int) -> int:
    rows = DEFAULT_CHUNK_BYTES // (max(vocab, 1) * torch.tensor([], dtype=dtype).element_size())
    return max(block_n, rows // block_n * block_n)


GPU_BLOCKS = {
    "row_stats": dict(BLOCK_N=128, BLOCK_V=128, BLOCK_H=32, num_warps=8, num_stages=4),
    "dlogits": dict(BLOCK_N=128, BLOCK_V=128, BLOCK_H=64, num_warps=8, num_stages=3),
}
"""Tile sizes on a GPU: compiled for sm_90 by ptxas, each kernel fits in 255 registers without
spilling (the forward's online-softmax state needs the shorter H step); not yet timed on a GPU."""


def _blocks(kernel: str) -> dict[str, int]:
    """Tile sizes of `kernel`: small under the interpreter (fast tests), GPU_BLOCKS otherwise."""
    if INTERPRETING:
        return dict(BLOCK_N=16, BLOCK_V=32, BLOCK_H=16, num_warps=4, num_stages=1)
    return GPU_BLOCKS[kernel]


@triton.jit
def _logits_tile(
    h_ptr, w_ptr, rows, cols, n_rows, vocab, hidden, stride_h, stride_w, temperature,
    BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_H: tl.constexpr,
    DOT_FP32: tl.constexpr, PRECISION: tl.constexpr,
):
    """z = h[rows] @ w[cols].T / temperature, `[BLOCK_N, BLOCK_V]` fp32.

    Rows and columns past the end are wrapped onto valid ones (`% n`) instead of masked, as in
    Triton's matmul tutorial, so only the H tail needs a mask; callers mask what they keep."""
    acc = tl.zeros([BLOCK_N, BLOCK_V], dtype=tl.float32)
    ks = tl.arange(0, BLOCK_H)
    a_ptrs = h_ptr + (rows % n_rows).to(tl.int64)[:, None] * stride_h + ks[None, :]  # [BLOCK_N, BLOCK_H]
    b_ptrs = w_ptr + (cols % vocab).to(tl.int64)[None, :] * stride_w + ks[:, None]  # [BLOCK_H, BLOCK_V]
    for k0 in range(0, hidden, BLOCK_H):
        a = tl.load(a_ptrs, mask=ks[None, :] < hidden - k0, other=0.0)
        b = tl.load(b_ptrs, mask=ks[:, None] < hidden - k0, other=0.0)
        if DOT_FP32:
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        acc = tl.dot(a, b, acc, input_precision=PRECISION)
        a_ptrs += BLOCK_H
        b_ptrs += BLOCK_H
    return acc / temperature


@triton.jit
def _row_stats_kernel(
    h_ptr, w_ptr, y_ptr, lse_ptr, mu_ptr, picked_ptr,
    n_rows, vocab, hidden, vocab_start, split_cols, temperature, stride_h, stride_w,
    BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_H: tl.constexpr,
    ENTROPY: tl.constexpr, DOT_FP32: tl.constexpr, PRECISION: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_s = tl.program_id(1)
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < n_rows
    local_y = tl.load(y_ptr + rows, mask=row_ok, other=-1) - vocab_start  # [BLOCK_N]; < 0 matches nothing
    m = tl.full([BLOCK_N], float("-inf"), dtype=tl.float32)  # running max
    s = tl.zeros([BLOCK_N], dtype=tl.float32)  # sum exp(z - m)
    u = tl.zeros([BLOCK_N], dtype=tl.float32)  # sum exp(z - m) (z - m)
    picked = tl.zeros([BLOCK_N], dtype=tl.float32)
    col_begin = pid_s * split_cols
    col_end = tl.minimum(col_begin + split_cols, vocab)
    for v0 in range(col_begin, col_end, BLOCK_V):
        cols = v0 + tl.arange(0, BLOCK_V)
        col_ok = cols < col_end
        z = _logits_tile(
            h_ptr, w_ptr, rows, cols, n_rows, vocab, hidden, stride_h, stride_w, temperature,
            BLOCK_N, BLOCK_V, BLOCK_H, DOT_FP32, PRECISION,
        )
        z = tl.where(col_ok[None, :], z, float("-inf"))
        m_new = tl.maximum(m, tl.max(z, axis=1))
        alpha = tl.exp(m - m_new)
        shifted = z - m_new[:, None]
        e = tl.exp(shifted)  # 0 on masked columns
        if ENTROPY:
            moved = tl.where(s > 0, m - m_new, 0.0)  # m = -inf only while s = 0
            u = alpha * (u + s * moved) + tl.sum(e * tl.where(col_ok[None, :], shifted, 0.0), axis=1)
        s = s * alpha + tl.sum(e, axis=1)
        hit = (cols[None, :] == local_y[:, None]) & col_ok[None, :]  # a shard's padding columns hold -inf
        picked += tl.sum(tl.where(hit, z, 0.0), axis=1)
        m = m_new
    out = pid_s * n_rows + rows
    tl.store(lse_ptr + out, m + tl.log(s), mask=row_ok)
    if ENTROPY:
        tl.store(mu_ptr + out, tl.where(s > 0, m + u / s, 0.0), mask=row_ok)
    tl.store(picked_ptr + out, picked, mask=row_ok)


@triton.jit
def _dlogits_kernel(
    h_ptr, w_ptr, y_ptr, lse_ptr, ent_ptr, g_ptr, ge_ptr, out_ptr,
    n_rows, vocab, hidden, vocab_start, temperature, stride_h, stride_w, stride_out,
    BLOCK_N: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_H: tl.constexpr, GROUP_N: tl.constexpr,
    ENTROPY: tl.constexpr, DOT_FP32: tl.constexpr, PRECISION: tl.constexpr,
):
    # Grouped launch order: GROUP_N token blocks walk the same vocab blocks together, so each
    # weight tile is read from L2 rather than from HBM by most of them.
    pid = tl.program_id(0)
    n_blocks = tl.cdiv(n_rows, BLOCK_N)
    v_blocks = tl.cdiv(vocab, BLOCK_V)
    per_group = GROUP_N * v_blocks
    first = (pid // per_group) * GROUP_N
    size = tl.minimum(n_blocks - first, GROUP_N)
    pid_n = first + (pid % per_group) % size
    pid_v = (pid % per_group) // size

    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    cols = pid_v * BLOCK_V + tl.arange(0, BLOCK_V)
    row_ok = rows < n_rows
    col_ok = cols < vocab
    z = _logits_tile(
        h_ptr, w_ptr, rows, cols, n_rows, vocab, hidden, stride_h, stride_w, temperature,
        BLOCK_N, BLOCK_V, BLOCK_H, DOT_FP32, PRECISION,
    )
    lse = tl.load(lse_ptr + rows, mask=row_ok, other=0.0)
    g = tl.load(g_ptr + rows, mask=row_ok, other=0.0)  # already / T, 0 on ignored rows
    log_p = z - lse[:, None]
    p = tl.exp(log_p)
    coef = g[:, None] + tl.zeros([BLOCK_N, BLOCK_V], dtype=tl.float32)
    if ENTROPY:
        ent = tl.load(ent_ptr + rows, mask=row_ok, other=0.0)
        ge = tl.load(ge_ptr + rows, mask=row_ok, other=0.0)
        coef += ge[:, None] * (log_p + ent[:, None])
    grad = -p * coef
    local_y = tl.load(y_ptr + rows, mask=row_ok, other=-1) - vocab_start  # ignored targets stay < 0
    grad += tl.where(cols[None, :] == local_y[:, None], g[:, None], 0.0)
    dst = out_ptr + rows.to(tl.int64)[:, None] * stride_out + cols[None, :]
    tl.store(dst, grad.to(out_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])


def _flags(dtype: torch.dtype) -> dict:
    return dict(DOT_FP32=INTERPRETING, PRECISION="ieee" if dtype == torch.float32 else None)


def _num_splits(n_blocks: int, v_blocks: int, device: torch.device) -> int:
    """Vocabulary splits so that the forward launches a few programs per SM."""
    if INTERPRETING or device.type != "cuda":
        return 1
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    return max(1, min(v_blocks, triton.cdiv(4 * sms, n_blocks)))


def fused_row_stats(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    vocab_start: int,
    temperature: float,
    entropy: bool,
    chunk_tokens: Optional[int] = None,
    splits: Optional[int] = None,
) -> RowStats:
    """`RowStats` `[N]` of the columns `weight` holds; `chunk_tokens` is unused (O(N) memory)."""
    del chunk_tokens
    if hidden.dtype not in FUSED_DTYPES:
        raise ValueError(f"linear_logprob impl='fused' takes fp32, bf16 or fp16 inputs; got {hidden.dtype}: use 'chunked'.")
    hidden, weight, targets = hidden.contiguous(), weight.contiguous(), targets.contiguous()
    rows, width = hidden.shape
    vocab = weight.shape[0]
    blocks = _blocks("row_stats")
    n_blocks = triton.cdiv(max(rows, 1), blocks["BLOCK_N"])
    v_blocks = triton.cdiv(vocab, blocks["BLOCK_V"])
    splits = min(splits or _num_splits(n_blocks, v_blocks, hidden.device), v_blocks)
    split_cols = triton.cdiv(v_blocks, splits) * blocks["BLOCK_V"]
    splits = triton.cdiv(vocab, split_cols)
    out = torch.empty((3, splits, rows), dtype=torch.float32, device=hidden.device)  # lse, mu, picked
    if rows:
        _row_stats_kernel[(n_blocks, splits)](
            hidden, weight, targets, out[0], out[1], out[2],
            rows, vocab, width, vocab_start, split_cols, float(temperature), hidden.stride(0), weight.stride(0),
            ENTROPY=entropy, **_flags(hidden.dtype), **blocks,
        )
    return merge_row_stats(RowStats(lse=out[0], mu=out[1] if entropy else None, picked=out[2]))


def fused_dlogits(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    lse: torch.Tensor,
    entropy: Optional[torch.Tensor],
    grad_logp: torch.Tensor,
    grad_entropy: Optional[torch.Tensor],
    *,
    vocab_start: int,
    temperature: float,
    out: torch.Tensor,
) -> torch.Tensor:
    """`d loss / d logits` of `hidden [C, H]` over `weight [V, H]`'s columns into `out [C, V]`
    (the input dtype, any row stride); see chunked_dlogits."""
    hidden, targets = hidden.contiguous(), targets.contiguous()
    rows, width = hidden.shape
    vocab = weight.shape[0]
    if rows == 0:
        return out
    blocks = _blocks("dlogits")
    grid = (triton.cdiv(rows, blocks["BLOCK_N"]) * triton.cdiv(vocab, blocks["BLOCK_V"]),)
    with_entropy = grad_entropy is not None
    _dlogits_kernel[grid](
        hidden, weight, targets, lse.float().contiguous(),
        entropy.float().contiguous() if with_entropy else lse, grad_logp.float().contiguous(),
        grad_entropy.float().contiguous() if with_entropy else lse, out,
        rows, vocab, width, vocab_start, float(temperature), hidden.stride(0), weight.stride(0), out.stride(0),
        GROUP_N=8, ENTROPY=with_entropy, **_flags(hidden.dtype), **blocks,
    )
    return out

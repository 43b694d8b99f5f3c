"""The fused Triton linear_logprob under TRITON_INTERPRET=1 (tests/kernels/conftest.py), on
small shapes that are not multiples of the tiles (16 tokens x 32 vocab x 16 hidden), against
float64 naive math and the chunked torch path: forward, backward, temperature, ignored
targets, bf16 inputs, vocabulary splits and shards."""

from __future__ import annotations

import pytest
import torch
from logprob_oracle import oracle, problem, run

from megathink.kernels import linear_logprob, resolve_impl

triton_impl = pytest.importorskip("megathink.kernels.linear_logprob_triton", reason="needs the triton package")


def test_kernels_run_in_the_interpreter() -> None:
    assert triton_impl.INTERPRETING, "TRITON_INTERPRET=1 must be set before the kernels are imported"
    assert resolve_impl("auto", "cpu") == "fused" and resolve_impl("fused", "cpu") == "fused"


@pytest.mark.parametrize("shape", [(37, 24, 53), (16, 16, 32), (5, 40, 77)])
@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_fp32_matches_float64_forward_and_backward(shape: tuple[int, int, int], temperature: float) -> None:
    n, h, v = shape
    hidden, weight, targets = problem(n, h, v, seed=n, scale=2.0, ignored=(0, n - 1))
    gen = torch.Generator().manual_seed(1)
    g, g_ent = torch.randn(n, generator=gen), torch.randn(n, generator=gen)
    expected = oracle(hidden, weight, targets, temperature, g, g_ent)
    got = run(linear_logprob, hidden, weight, targets, g, g_ent, temperature=temperature, impl="fused", chunk_tokens=20)
    for name, a, b in zip(("logp", "entropy", "grad_hidden", "grad_weight"), got, expected):
        torch.testing.assert_close(a.double(), b, atol=2e-5, rtol=1e-4, msg=name)
    chunked = run(linear_logprob, hidden, weight, targets, g, g_ent, temperature=temperature, impl="chunked")
    for name, a, b in zip(("logp", "entropy", "grad_hidden", "grad_weight"), got, chunked):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4, msg=name)


def test_ignored_targets_and_logprob_only() -> None:
    hidden, weight, targets = problem(21, 16, 45, seed=3, ignored=(2, 3, 17))
    g = torch.randn(21, generator=torch.Generator().manual_seed(4))
    _, _, gh, gw = oracle(hidden, weight, targets, 1.3, g, None)
    h, w = hidden.clone().requires_grad_(True), weight.clone().requires_grad_(True)
    logp = linear_logprob(h, w, targets, temperature=1.3, impl="fused", chunk_tokens=16)
    assert torch.all(logp[targets < 0] == 0)
    (logp * g).sum().backward()
    assert torch.all(h.grad[targets < 0] == 0)
    torch.testing.assert_close(h.grad.double(), gh, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(w.grad.double(), gw, atol=2e-5, rtol=1e-4)


def test_bf16_inputs_match_float64_math_on_the_same_values() -> None:
    """bf16 hidden/weight; the kernel accumulates the logits in fp32, so it matches float64 math
    on the bf16 values closely (the naive path rounds its logits to bf16 first)."""
    hidden, weight, targets = problem(33, 48, 70, seed=5, dtype=torch.bfloat16, scale=2.0, ignored=(6,))
    gen = torch.Generator().manual_seed(6)
    g, g_ent = torch.randn(33, generator=gen), torch.randn(33, generator=gen)
    expected = oracle(hidden, weight, targets, 0.6, g, g_ent)
    got = run(linear_logprob, hidden, weight, targets, g, g_ent, temperature=0.6, impl="fused", chunk_tokens=16)
    assert got[0].dtype == torch.float32 and got[2].dtype == torch.bfloat16 and got[3].dtype == torch.bfloat16
    torch.testing.assert_close(got[0].double(), expected[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got[1].double(), expected[1], atol=1e-5, rtol=1e-5)
    # gradients: dlogits is rounded to bf16 before the two bf16 matmuls, as in the naive bf16 path
    torch.testing.assert_close(got[2].double(), expected[2], atol=3e-2, rtol=3e-2)
    torch.testing.assert_close(got[3].double(), expected[3], atol=3e-2, rtol=3e-2)


def test_vocabulary_splits_merge_exactly() -> None:
    hidden, weight, targets = problem(19, 16, 150, seed=7, scale=3.0, ignored=(4,))
    one = triton_impl.fused_row_stats(hidden, weight, targets, vocab_start=0, temperature=0.9, entropy=True, splits=1)
    many = triton_impl.fused_row_stats(hidden, weight, targets, vocab_start=0, temperature=0.9, entropy=True, splits=3)
    for a, b in ((one.lse, many.lse), (one.mu, many.mu), (one.picked, many.picked)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    logp, ent = oracle(hidden, weight, targets, 0.9)
    valid = targets >= 0
    torch.testing.assert_close((many.picked - many.lse)[valid].double(), logp[valid], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close((many.lse - many.mu)[valid].double(), ent[valid], atol=1e-5, rtol=1e-5)


def test_shard_statistics_and_dlogits_match_the_chunked_path() -> None:
    """A vocab shard (vocab_start > 0), as the vocab-parallel variant runs it on each rank."""
    from megathink.kernels.linear_logprob_chunked import chunked_dlogits, chunked_row_stats

    hidden, weight, targets = problem(18, 16, 90, seed=8, ignored=(1,))
    shard, start = weight[40:75], 40
    fused = triton_impl.fused_row_stats(hidden, shard, targets, vocab_start=start, temperature=0.7, entropy=True)
    torch_ = chunked_row_stats(hidden, shard, targets, vocab_start=start, temperature=0.7, entropy=True)
    for a, b in ((fused.lse, torch_.lse), (fused.mu, torch_.mu), (fused.picked, torch_.picked)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    gen = torch.Generator().manual_seed(9)
    g, g_ent, ent = torch.randn(18, generator=gen), torch.randn(18, generator=gen), torch.rand(18, generator=gen)
    kwargs = dict(vocab_start=start, temperature=0.7)
    a = triton_impl.fused_dlogits(hidden, shard, targets, fused.lse, ent, g, g_ent, out=torch.empty(18, 35), **kwargs)
    b = chunked_dlogits(hidden, shard, targets, torch_.lse, ent, g, g_ent, out=torch.empty(18, 35), **kwargs)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_float64_is_refused() -> None:
    hidden, weight, targets = problem(4, 16, 32, dtype=torch.float64)
    with pytest.raises(ValueError, match="fp32, bf16 or fp16"):
        linear_logprob(hidden, weight, targets, impl="fused")

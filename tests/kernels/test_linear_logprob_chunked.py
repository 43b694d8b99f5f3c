"""The chunked torch linear_logprob against float64 naive math: forward, backward, gradcheck."""

from __future__ import annotations

import pytest
import torch
from logprob_oracle import oracle, problem, run

from megathink.kernels import linear_logprob, naive_linear_logprob
from megathink.kernels.linear_logprob_chunked import chunked_row_stats


@pytest.mark.parametrize("temperature", [1.0, 0.6, 1.7])
@pytest.mark.parametrize("chunk_tokens", [None, 1, 7])
def test_forward_and_backward_match_float64(temperature: float, chunk_tokens: int | None) -> None:
    hidden, weight, targets = problem(23, 12, 41, seed=1, scale=2.0, ignored=(0, 5, 22))
    gen = torch.Generator().manual_seed(9)
    g, g_ent = torch.randn(23, generator=gen), torch.randn(23, generator=gen)
    expected = oracle(hidden, weight, targets, temperature, g, g_ent)
    got = run(linear_logprob, hidden, weight, targets, g, g_ent, temperature=temperature, impl="chunked",
              chunk_tokens=chunk_tokens)
    for name, a, b in zip(("logp", "entropy", "grad_hidden", "grad_weight"), got, expected):
        torch.testing.assert_close(a.double(), b, atol=2e-5, rtol=1e-4, msg=name)


def test_ignored_targets_give_zero_and_no_gradient() -> None:
    hidden, weight, targets = problem(6, 8, 19, ignored=(1, 4))
    h = hidden.clone().requires_grad_(True)
    logp, ent = linear_logprob(h, weight, targets, return_entropy=True, impl="chunked")
    assert torch.all(logp[targets < 0] == 0) and torch.all(ent[targets < 0] == 0)
    assert torch.all(logp[targets >= 0] < 0) and torch.all(ent[targets >= 0] > 0)
    (logp.sum() + ent.sum()).backward()
    assert torch.all(h.grad[targets < 0] == 0) and torch.all(h.grad[targets >= 0].abs().sum(-1) > 0)


def test_logprob_only_gradient_and_entropy_only_gradient() -> None:
    hidden, weight, targets = problem(9, 6, 13, seed=2)
    g = torch.randn(9, generator=torch.Generator().manual_seed(3))
    _, _, gh, gw = oracle(hidden, weight, targets, 0.8, g, None)
    h, w = hidden.clone().requires_grad_(True), weight.clone().requires_grad_(True)
    (linear_logprob(h, w, targets, temperature=0.8, impl="chunked", chunk_tokens=4) * g).sum().backward()
    torch.testing.assert_close(h.grad.double(), gh, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(w.grad.double(), gw, atol=1e-5, rtol=1e-4)
    _, _, gh, gw = oracle(hidden, weight, targets, 0.8, torch.zeros(9), g)
    h.grad = w.grad = None
    _, ent = linear_logprob(h, w, targets, temperature=0.8, return_entropy=True, impl="chunked", chunk_tokens=4)
    (ent * g).sum().backward()
    torch.testing.assert_close(h.grad.double(), gh, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(w.grad.double(), gw, atol=1e-5, rtol=1e-4)


def test_gradcheck_float64() -> None:
    hidden, weight, targets = problem(7, 5, 11, seed=4, dtype=torch.float64, ignored=(2,))
    h, w = hidden.requires_grad_(True), weight.requires_grad_(True)

    def fn(h: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return linear_logprob(h, w, targets, temperature=0.7, return_entropy=True, impl="chunked", chunk_tokens=3)

    assert torch.autograd.gradcheck(fn, (h, w), eps=1e-6, atol=1e-6)


def test_bf16_inputs_match_the_naive_path_and_keep_their_dtype() -> None:
    hidden, weight, targets = problem(20, 16, 70, seed=5, dtype=torch.bfloat16, ignored=(3,))
    g = torch.randn(20, generator=torch.Generator().manual_seed(6))
    naive = run(naive_linear_logprob, hidden, weight, targets, g, g, temperature=0.6)
    chunked = run(linear_logprob, hidden, weight, targets, g, g, temperature=0.6, impl="chunked", chunk_tokens=6)
    assert chunked[0].dtype == torch.float32 and chunked[2].dtype == torch.bfloat16 and chunked[3].dtype == torch.bfloat16
    torch.testing.assert_close(chunked[0], naive[0], atol=1e-5, rtol=1e-5)  # same bf16 logits, fp32 after
    torch.testing.assert_close(chunked[1], naive[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(chunked[2].float(), naive[2].float(), atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(chunked[3].float(), naive[3].float(), atol=2e-2, rtol=2e-2)


def test_vocab_slice_statistics() -> None:
    """A shard's statistics: the target logit only when the target lies inside the shard."""
    hidden, weight, targets = problem(10, 8, 30, seed=7, ignored=(0,))
    stats = chunked_row_stats(hidden, weight[12:25], targets, vocab_start=12, temperature=1.0, entropy=True,
                              chunk_tokens=4)
    z = (hidden.double() @ weight[12:25].double().t())  # [10, 13]
    torch.testing.assert_close(stats.lse.double(), torch.logsumexp(z, -1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(stats.mu.double(), (torch.softmax(z, -1) * z).sum(-1), atol=1e-5, rtol=1e-5)
    inside = (targets >= 12) & (targets < 25)
    expected = torch.where(inside, z.gather(1, (targets - 12).clamp(0, 12)[:, None]).squeeze(1), torch.zeros(10).double())
    torch.testing.assert_close(stats.picked.double(), expected, atol=1e-5, rtol=1e-5)


def test_no_tokens() -> None:
    hidden, weight, _ = problem(1, 4, 9)
    h = hidden[:0].clone().requires_grad_(True)
    logp, ent = linear_logprob(h, weight, torch.zeros(0, dtype=torch.long), return_entropy=True, impl="chunked")
    assert logp.shape == (0,) and ent.shape == (0,)
    logp.sum().backward()
    assert h.grad.shape == (0, 4)


def test_input_errors() -> None:
    hidden, weight, targets = problem(4, 6, 9)
    with pytest.raises(ValueError, match=r"hidden \[N, H\]"):
        linear_logprob(hidden[None], weight, targets)
    with pytest.raises(ValueError, match="shapes do not match"):
        linear_logprob(hidden[:, :5], weight, targets)
    with pytest.raises(ValueError, match="one float dtype"):
        linear_logprob(hidden.double(), weight, targets)
    with pytest.raises(ValueError, match="integer ids"):
        linear_logprob(hidden, weight, targets.float())
    with pytest.raises(ValueError, match="temperature"):
        linear_logprob(hidden, weight, targets, temperature=0.0)
    with pytest.raises(ValueError, match="chunk_tokens"):
        linear_logprob(hidden, weight, targets, chunk_tokens=0)
    with pytest.raises(ValueError, match="targets must be < V = 9"):
        linear_logprob(hidden, weight, torch.tensor([0, 1, 9, 2]))
    with pytest.raises(ValueError, match="impl = 'cuda'"):
        linear_logprob(hidden, weight, targets, impl="cuda")


def test_backward_tiles_bound_the_buffer_and_align() -> None:
    """The backward's [N, w] vocabulary tile holds at most chunk_tokens * V elements, and tiles
    wider than TILE_ALIGN columns are multiples of it."""
    from megathink.kernels.tiles import TILE_ALIGN, tile_columns

    assert tile_columns(rows=10, vocab=50, chunk_tokens=20) == 50  # everything fits: one tile
    assert tile_columns(rows=23, vocab=41, chunk_tokens=7) == 12  # narrow tiles are not aligned
    assert tile_columns(rows=10**6, vocab=41, chunk_tokens=1) == 1  # never below one column
    for rows, vocab, chunk in ((2048, 151936, 441), (16384, 151936, 441), (3, 1000, 1), (4096, 32000, 7)):
        width = tile_columns(rows=rows, vocab=vocab, chunk_tokens=chunk)
        assert rows * width <= chunk * vocab and (width % TILE_ALIGN == 0 or width < TILE_ALIGN)
    assert tile_columns(rows=2048, vocab=151936, chunk_tokens=441) == 32640


def test_aligned_tiles_with_a_ragged_last_one_match_float64() -> None:
    """V = 1000 over 3 tokens with chunk_tokens=1: tiles of 256, 256, 256 and 232 columns."""
    hidden, weight, targets = problem(3, 8, 1000, seed=11, scale=2.0)
    targets[1] = 999  # a target in the last, ragged tile
    g, g_ent = torch.tensor([0.7, -1.2, 0.4]), torch.tensor([0.3, 0.5, -0.8])
    expected = oracle(hidden, weight, targets, 0.9, g, g_ent)
    got = run(linear_logprob, hidden, weight, targets, g, g_ent, temperature=0.9, impl="chunked", chunk_tokens=1)
    for name, a, b in zip(("logp", "entropy", "grad_hidden", "grad_weight"), got, expected):
        torch.testing.assert_close(a.double(), b, atol=2e-5, rtol=1e-4, msg=name)


def test_only_one_input_needs_a_gradient() -> None:
    hidden, weight, targets = problem(9, 6, 40, seed=12, ignored=(3,))
    g = torch.randn(9, generator=torch.Generator().manual_seed(13))
    _, _, gh, gw = oracle(hidden, weight, targets, 1.0, g, None)
    h = hidden.clone().requires_grad_(True)
    (linear_logprob(h, weight, targets, impl="chunked", chunk_tokens=2) * g).sum().backward()
    torch.testing.assert_close(h.grad.double(), gh, atol=1e-5, rtol=1e-4)
    w = weight.clone().requires_grad_(True)
    (linear_logprob(hidden, w, targets, impl="chunked", chunk_tokens=2) * g).sum().backward()
    torch.testing.assert_close(w.grad.double(), gw, atol=1e-5, rtol=1e-4)

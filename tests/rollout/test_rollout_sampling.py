"""Token choice from logits (greedy, temperature, top-k, top-p) and the per-sequence random streams."""

from __future__ import annotations

import torch

from megathink.rollout.rng import sequence_seed, uniform_streams
from megathink.rollout.sampling import choose_tokens
from megathink.rollout.types import SamplingParams

LOGITS = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, -3.0])  # [V]


def _draw(params: SamplingParams, draws: int = 20000) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(frequency of each token [V], sampled ids [N], their log-probs [N]) over `draws` rows of LOGITS."""
    uniforms = uniform_streams([sequence_seed(0, 0, 0)], [draws], torch.device("cpu"))[0]  # [N]
    ids, logprobs = choose_tokens(LOGITS.expand(draws, -1), uniforms, params)
    return torch.bincount(ids, minlength=LOGITS.numel()).double() / draws, ids, logprobs


def test_temperature_frequencies_and_full_distribution_logprobs() -> None:
    for temperature in (0.6, 1.0):
        freq, ids, logprobs = _draw(SamplingParams(temperature=temperature))
        assert (freq - torch.softmax(LOGITS.double() / temperature, -1)).abs().max() < 0.015
        torch.testing.assert_close(logprobs, torch.log_softmax(LOGITS / temperature, -1)[ids])


def test_top_k_and_top_p_renormalise_the_kept_tokens() -> None:
    probs = torch.softmax(LOGITS.double(), -1)
    freq, ids, logprobs = _draw(SamplingParams(temperature=1.0, top_k=2))
    assert freq[2:].sum() == 0
    assert (freq[:2] - probs[:2] / probs[:2].sum()).abs().max() < 0.015
    # log-probs stay those of the full distribution, not of the truncated one
    torch.testing.assert_close(logprobs, torch.log_softmax(LOGITS, -1)[ids])
    # top_p = 0.7: mass before token 2 is p0 + p1 ~ 0.77 > 0.7, so tokens 0..1 are kept
    assert probs[0] < 0.7 < probs[:2].sum()
    freq, _, _ = _draw(SamplingParams(temperature=1.0, top_p=0.7))
    assert freq[2:].sum() == 0 and (freq[:2] - probs[:2] / probs[:2].sum()).abs().max() < 0.015


def test_greedy_top_k_one_and_tiny_top_p_pick_the_argmax() -> None:
    logits = torch.randn(64, 50, generator=torch.Generator().manual_seed(0))  # [B, V]
    uniforms = torch.rand(64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)  # [B]
    argmax = logits.argmax(-1)
    greedy, greedy_lp = choose_tokens(logits, uniforms, SamplingParams(temperature=0))
    assert torch.equal(greedy, argmax)
    torch.testing.assert_close(greedy_lp, torch.log_softmax(logits, -1).gather(1, argmax[:, None])[:, 0])
    for params in (SamplingParams(temperature=1.0, top_k=1), SamplingParams(temperature=0.6, top_p=1e-6)):
        assert torch.equal(choose_tokens(logits, uniforms, params)[0], argmax)


def test_extreme_uniforms_never_pick_a_zero_probability_token() -> None:
    logits = torch.tensor([[0.0, 0.0, -1e4, -1e4], [-1e4, 5.0, 5.0, -1e4]])  # zero-prob tails
    for u in (0.0, 1.0 - 2**-53):
        ids, _ = choose_tokens(logits, torch.full((2,), u, dtype=torch.float64), SamplingParams(temperature=1.0))
        assert ids[0].item() in (0, 1) and ids[1].item() in (1, 2)
        ids, _ = choose_tokens(logits, torch.full((2,), u, dtype=torch.float64), SamplingParams(temperature=1.0, top_k=3))
        assert ids[0].item() in (0, 1) and ids[1].item() in (1, 2)


def test_streams_are_per_sequence_and_reproducible() -> None:
    seeds = [sequence_seed(7, r, s) for r in range(3) for s in range(2)]
    assert len(set(seeds)) == 6 and all(0 <= s < 2**63 for s in seeds)
    assert seeds == [sequence_seed(7, r, s) for r in range(3) for s in range(2)]
    assert sequence_seed(8, 0, 0) != sequence_seed(7, 0, 0)
    streams = uniform_streams(seeds, [4, 2, 4, 4, 1, 3], torch.device("cpu"))  # [6, 4]
    assert streams.shape == (6, 4) and streams.dtype == torch.float64
    assert streams[1, 2:].eq(0).all() and streams[4, 1:].eq(0).all()
    alone = uniform_streams(seeds[2:3], [4], torch.device("cpu"))
    assert torch.equal(alone[0], streams[2])

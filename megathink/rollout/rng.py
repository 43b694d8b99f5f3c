"""Per-sequence random streams: the same sample comes out however sequences are batched.

Every sequence (request r, sample s) of a `generate` call owns a CPU `torch.Generator` seeded
with `sequence_seed(params.seed, r, s)` (splitmix64 of the three numbers), and draws from it,
once, one float64 uniform per token it may generate (`[cap]`, its own max-new-tokens cap).
Step t of that sequence picks its token by inverse-CDF sampling with the t-th uniform
(`megathink.rollout.sampling`). Nothing depends on which other sequences share the batch, the
batch size, the device, or how many `generate` calls came before: no per-call counter and no
global RNG state is read or advanced.

Departure from SGLang: SGLang samples a whole batch from one device generator (or its own
per-request seeds), so its samples depend on batch composition; megathink's local engine
trades that for reproducible, batching-independent rollouts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def sequence_seed(seed: int, request_index: int, sample_index: int) -> int:
    """A 63-bit seed for sequence (request_index, sample_index) of a call seeded with `seed`."""
    state = _splitmix64(seed & _MASK64)
    state = _splitmix64(state ^ (request_index & _MASK64))
    state = _splitmix64(state ^ (sample_index & _MASK64))
    return state >> 1


def uniform_streams(seeds: Sequence[int], lengths: Sequence[int], device: torch.device) -> torch.Tensor:
    """Row i = the first lengths[i] uniforms [0, 1) of generator(seeds[i]), zero-padded: [B, max(lengths)] float64."""
    width = max(lengths, default=0)
    out = torch.zeros((len(seeds), width), dtype=torch.float64)  # [B, L]
    for row, (seed, length) in enumerate(zip(seeds, lengths)):
        generator = torch.Generator(device="cpu").manual_seed(seed)
        out[row, :length] = torch.rand(length, generator=generator, dtype=torch.float64)
    return out.to(device)

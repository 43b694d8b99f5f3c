"""`policy.sampling()`: where the sampler generates during evaluations.

With the megatron backend and SGLang engines serving rollouts, rank 0's HF copy is parked on
the CPU and moves to `trainer.device` only inside `sampling()` (also when the evaluation
fails), so a 7B's copy does not sit on rank 0's GPU while it trains. The sampler is a stub
that records its moves: this machine has no GPU to move it to.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from megathink.trainer.megatron_policy import MegatronPolicy
from megathink.trainer.policy import HFPolicy


class RecordingSampler:
    def __init__(self) -> None:
        self.device = torch.device("cpu")
        self.moves: list[str] = []

    def move_to(self, device: torch.device) -> None:
        self.device = device
        self.moves.append(device.type)


def _policy(sampler: RecordingSampler, generation_device: torch.device | None) -> MegatronPolicy:
    backend = SimpleNamespace(info=SimpleNamespace(rank=0))
    return MegatronPolicy(backend, sampler, {}, None, "bf16", generation_device=generation_device)  # type: ignore[arg-type]


def test_a_parked_sampler_visits_the_generation_device_and_comes_back() -> None:
    sampler = RecordingSampler()
    policy = _policy(sampler, torch.device("cuda"))
    with policy.sampling() as inside:
        assert inside is sampler and sampler.device.type == "cuda"
    assert sampler.device.type == "cpu" and sampler.moves == ["cuda", "cpu"]
    with pytest.raises(RuntimeError, match="evaluation failed"):
        with policy.sampling():
            raise RuntimeError("evaluation failed")
    assert sampler.device.type == "cpu"


def test_an_unparked_sampler_and_the_hf_policy_do_not_move() -> None:
    sampler = RecordingSampler()
    with _policy(sampler, None).sampling() as inside:
        assert inside is sampler
    assert sampler.moves == []
    backend = object()
    with HFPolicy(backend).sampling() as inside:  # type: ignore[arg-type]
        assert inside is backend

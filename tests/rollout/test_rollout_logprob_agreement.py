"""Rollout vs trainer: engine log-probs equal `backend.logprobs`; greedy equals `model.generate`."""

from __future__ import annotations

import pytest
import torch

from megathink.config import ModelConfig, TokenizerConfig
from megathink.data.tokenizer import load_tokenizer
from megathink.models import HFBackend, build_hf_backend
from megathink.rollout import LocalEngine, RolloutRequest, Sample, SamplingParams

SMALL = dict(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64)
PAD = 0
EOS = 0


def _backend(device: str = "cpu", sharpen: float = 4.0) -> HFBackend:
    backend = build_hf_backend(ModelConfig(**SMALL), load_tokenizer(TokenizerConfig()), device=device, seed=0)
    with torch.no_grad():
        backend.model.model.norm.weight.mul_(sharpen)
    return backend


def _requests() -> list[RolloutRequest]:
    return [
        RolloutRequest([10, 11, 12, 13, 14], group_id=0, forced_prefix=[5]),
        RolloutRequest([15], group_id=1, forced_prefix=[4, 25, 26]),
        RolloutRequest([16, 17, 18], group_id=2, max_new_tokens=5),
        RolloutRequest([19, 20, 21, 22, 23, 24, 25, 26], group_id=3),
    ]


def _trainer_logprobs(backend: HFBackend, samples: list[Sample], temperature: float) -> list[torch.Tensor]:
    """Score prompt + response as the trainer does: one left-padded batch through backend.logprobs."""
    width = max(len(s.prompt_ids) + len(s.response_ids) for s in samples)
    ids = torch.full((len(samples), width), PAD, dtype=torch.long)  # [B, T]
    mask = torch.zeros((len(samples), width), dtype=torch.long)  # [B, T]
    for row, s in enumerate(samples):
        full = s.prompt_ids + s.response_ids
        ids[row, width - len(full) :] = torch.tensor(full)
        mask[row, width - len(full) :] = 1
    with torch.no_grad():
        scored = backend.logprobs(ids, mask, temperature=temperature).cpu()  # [B, T]
    return [scored[row, width - len(s.response_ids) :] for row, s in enumerate(samples)]


def _max_gap(backend: HFBackend, params: SamplingParams) -> float:
    samples = LocalEngine(backend, pad_id=PAD, batch_size=5).generate(_requests(), params)
    assert any(s.forced for s in samples)
    assert params.greedy or any(s.finish_reason == "stop" for s in samples)
    trainer = _trainer_logprobs(backend, samples, params.logprob_temperature)
    return max(float((t - torch.tensor(s.logprobs)).abs().max()) for t, s in zip(trainer, samples))


@pytest.mark.parametrize("temperature", [0.6, 1.0])
def test_engine_logprobs_match_the_trainer_path(temperature: float) -> None:
    params = SamplingParams(temperature=temperature, max_new_tokens=12, n=4, stop_token_ids=tuple(range(40, 55)))
    assert _max_gap(_backend(), params) < 1e-5


def test_greedy_logprobs_are_at_temperature_one() -> None:
    params = SamplingParams(temperature=0, max_new_tokens=12, n=2, stop_token_ids=tuple(range(40, 55)))
    assert _max_gap(_backend(), params) < 1e-5


def test_greedy_equals_model_generate_with_left_padding() -> None:
    from transformers import GenerationConfig

    backend = _backend()
    prompts = [[10, 11, 12, 13, 14, 15, 16], [17], [18, 19, 20], [21, 22, 23, 24]]
    samples = LocalEngine(backend, pad_id=PAD).generate(
        [RolloutRequest(p, group_id=i) for i, p in enumerate(prompts)],
        SamplingParams(temperature=0, max_new_tokens=15, stop_token_ids=(EOS,)),
    )
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), PAD, dtype=torch.long)  # [B, P]
    mask = torch.zeros((len(prompts), width), dtype=torch.long)  # [B, P]
    for row, p in enumerate(prompts):
        ids[row, width - len(p) :] = torch.tensor(p)
        mask[row, width - len(p) :] = 1
    config = GenerationConfig(
        max_new_tokens=15, do_sample=False, num_beams=1, eos_token_id=EOS, pad_token_id=PAD, repetition_penalty=1.0,
    )
    with torch.no_grad():
        out = backend.model.generate(input_ids=ids, attention_mask=mask, generation_config=config)[:, width:]
    for sample, row in zip(samples, out.tolist()):
        expected = row[: row.index(EOS) + 1] if EOS in row else row
        assert sample.response_ids == expected
        assert sample.finish_reason == ("stop" if EOS in row else "length")
    for top in (dict(top_k=1), dict(top_p=1e-6)):
        sampled = LocalEngine(backend, pad_id=PAD).generate(
            [RolloutRequest(p, group_id=i) for i, p in enumerate(prompts)],
            SamplingParams(temperature=1.0, max_new_tokens=15, stop_token_ids=(EOS,), **top),
        )
        assert [s.response_ids for s in sampled] == [s.response_ids for s in samples]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_engine_runs_on_the_backend_device() -> None:
    params = SamplingParams(temperature=0.6, max_new_tokens=12, n=4, stop_token_ids=tuple(range(40, 55)))
    assert _max_gap(_backend(device="cuda"), params) < 1e-4

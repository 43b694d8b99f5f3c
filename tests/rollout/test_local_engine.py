"""LocalEngine bookkeeping: n per request, group ids, forced prefixes, caps, stop ids, seeds, batching."""

from __future__ import annotations

import pytest
import torch

from megathink.config import ModelConfig, TokenizerConfig
from megathink.data.tokenizer import load_tokenizer
from megathink.models import HFBackend, build_hf_backend
from megathink.rollout import LocalEngine, RolloutEngine, RolloutRequest, Sample, SamplingParams

SMALL = dict(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64)
PAD = 0


def _backend(seed: int = 0, sharpen: float = 1.0) -> HFBackend:
    """A tiny random model; `sharpen` scales the final norm so the next-token distribution is peaky."""
    backend = build_hf_backend(ModelConfig(**SMALL), load_tokenizer(TokenizerConfig()), device="cpu", seed=seed)
    with torch.no_grad():
        backend.model.model.norm.weight.mul_(sharpen)
    return backend


def _requests() -> list[RolloutRequest]:
    return [
        RolloutRequest([10, 11, 12], group_id=7, forced_prefix=[5, 20]),
        RolloutRequest([13, 14, 15, 16, 17, 18], group_id=3, max_new_tokens=4),
        RolloutRequest([19], group_id=9),
        RolloutRequest([21, 22], group_id=9, forced_prefix=[4], max_new_tokens=2),
    ]


def _key(samples: list[Sample]) -> list[tuple[int, int, tuple[int, ...], str]]:
    return [(s.group_id, s.sample_index, tuple(s.response_ids), s.finish_reason) for s in samples]


def test_bookkeeping_groups_forced_prefix_and_caps() -> None:
    engine = LocalEngine(_backend(), pad_id=PAD, batch_size=5)
    assert isinstance(engine, RolloutEngine) and engine.weight_version == 0
    requests = _requests()
    samples = engine.generate(requests, SamplingParams(temperature=1.0, max_new_tokens=6, n=3))
    assert len(samples) == 3 * len(requests)
    for index, sample in enumerate(samples):
        request = requests[index // 3]
        assert sample.group_id == request.group_id and sample.sample_index == index % 3
        assert sample.prompt_ids == request.prompt_ids and sample.weight_version == 0
        assert sample.forced == len(request.forced_prefix)
        assert sample.response_ids[: sample.forced] == request.forced_prefix
        assert len(sample.logprobs) == len(sample.response_ids)
        assert all(lp <= 0 for lp in sample.logprobs)
        # no stop ids: every sample runs to its own cap, counted after the forced prefix
        assert sample.finish_reason == "length" and sample.num_generated == request.cap(SamplingParams(max_new_tokens=6))
    assert engine.generate([], SamplingParams()) == []


def test_stop_ids_end_a_sample_and_are_kept() -> None:
    engine = LocalEngine(_backend(), pad_id=PAD, batch_size=16)
    stop = tuple(range(30, 40))  # ~11% of the vocabulary: some samples stop, some reach the cap
    requests = [RolloutRequest([10 + i, 11], group_id=i, forced_prefix=[stop[0]]) for i in range(8)]
    samples = engine.generate(requests, SamplingParams(temperature=1.0, max_new_tokens=12, n=4, stop_token_ids=stop))
    reasons = {s.finish_reason for s in samples}
    assert reasons == {"stop", "length"}
    for sample in samples:
        generated = sample.response_ids[sample.forced :]
        assert sample.response_ids[0] == stop[0]  # a forced stop id does not end the sample
        assert all(token not in stop for token in generated[:-1])
        if sample.finish_reason == "stop":
            assert generated[-1] in stop and len(generated) <= 12
        else:
            assert generated[-1] not in stop and len(generated) == 12


def test_same_seed_same_samples_other_seed_other_samples() -> None:
    engine = LocalEngine(_backend(), pad_id=PAD)
    params = SamplingParams(temperature=1.0, max_new_tokens=8, n=2, seed=11)
    first = engine.generate(_requests(), params)
    again = engine.generate(_requests(), params)
    assert _key(first) == _key(again)
    assert [s.logprobs for s in first] == [s.logprobs for s in again]
    other = engine.generate(_requests(), SamplingParams(temperature=1.0, max_new_tokens=8, n=2, seed=12))
    assert _key(first) != _key(other)
    # the n samples of a request differ from each other (their own streams)
    assert first[4].response_ids != first[5].response_ids


@pytest.mark.parametrize("params", [
    SamplingParams(temperature=1.0, max_new_tokens=10, n=3, stop_token_ids=tuple(range(40, 60))),
    SamplingParams(temperature=0.6, top_p=0.9, top_k=20, max_new_tokens=10, n=3, stop_token_ids=(41, 42, 43)),
])
def test_batch_size_does_not_change_the_samples(params: SamplingParams) -> None:
    backend = _backend(sharpen=4.0)
    reference = LocalEngine(backend, pad_id=PAD, batch_size=64).generate(_requests(), params)
    for batch_size in (1, 5):
        samples = LocalEngine(backend, pad_id=PAD, batch_size=batch_size).generate(_requests(), params)
        assert _key(samples) == _key(reference)
        for got, want in zip(samples, reference):
            torch.testing.assert_close(torch.tensor(got.logprobs), torch.tensor(want.logprobs), atol=1e-5, rtol=0)


def test_first_token_frequencies_match_the_softmax() -> None:
    backend = _backend(sharpen=6.0)
    prompt = [10, 11, 12]
    with torch.no_grad():
        logits = backend.model(input_ids=torch.tensor([prompt])).logits[0, -1]  # [V]
    engine = LocalEngine(backend, pad_id=PAD, batch_size=1000)
    for temperature in (0.6, 1.0):
        params = SamplingParams(temperature=temperature, max_new_tokens=1, n=2000, seed=3)
        samples = engine.generate([RolloutRequest(prompt, group_id=0)], params)
        first = torch.tensor([s.response_ids[0] for s in samples])
        freq = torch.bincount(first, minlength=logits.numel()).double() / len(samples)
        target = torch.softmax(logits.double() / temperature, -1)
        assert target.max() > 0.3  # a peaky distribution, so the check has teeth
        assert (freq - target).abs().max() < 0.05


def test_eval_mode_during_generation_and_mode_restored() -> None:
    backend = _backend()
    engine = LocalEngine(backend, pad_id=PAD)
    seen: list[bool] = []
    handle = backend.model.register_forward_pre_hook(lambda module, args: seen.append(module.training))
    for mode in (True, False):
        backend.model.train(mode)
        engine.generate(_requests()[:1], SamplingParams(max_new_tokens=3))
        assert backend.model.training is mode
    handle.remove()
    assert seen and not any(seen)


def test_sync_weights_versions_and_loading() -> None:
    backend = _backend(seed=0)
    engine = LocalEngine(backend, pad_id=PAD)
    params = SamplingParams(temperature=1.0, max_new_tokens=5, n=2)
    assert engine.sync_weights(backend) == 1 and engine.weight_version == 1
    assert {s.weight_version for s in engine.generate(_requests(), params)} == {1}
    other = _backend(seed=5)
    want = LocalEngine(other, pad_id=PAD).generate(_requests(), params)
    assert engine.sync_weights(other) == 2
    assert _key(engine.generate(_requests(), params)) == _key(want)
    assert engine.sync_weights(_backend(seed=0).state_dict()) == 3
    assert _key(engine.generate(_requests(), params)) != _key(want)


def test_bad_inputs_name_what_is_wrong() -> None:
    engine = LocalEngine(_backend(), pad_id=PAD)
    vocab = engine.backend.model.get_input_embeddings().num_embeddings
    with pytest.raises(ValueError, match=r"requests\[1\].forced_prefix"):
        engine.generate([RolloutRequest([1], 0), RolloutRequest([1], 0, forced_prefix=[vocab])], SamplingParams())
    with pytest.raises(ValueError, match="SamplingParams.stop_token_ids"):
        engine.generate([RolloutRequest([1], 0)], SamplingParams(stop_token_ids=(vocab + 3,)))
    with pytest.raises(ValueError, match="LocalEngine.batch_size"):
        LocalEngine(engine.backend, pad_id=PAD, batch_size=0)

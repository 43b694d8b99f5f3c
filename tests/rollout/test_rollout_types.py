"""SamplingParams / RolloutRequest: defaults, per-request caps, errors that name the field."""

from __future__ import annotations

import pytest

from megathink.rollout import RolloutRequest, Sample, SamplingParams


def test_defaults_and_caps() -> None:
    params = SamplingParams()
    assert (params.temperature, params.top_p, params.top_k, params.max_new_tokens, params.n, params.seed) == (
        0.6, 1.0, 0, 256, 1, 0,
    )
    assert params.stop_token_ids == () and not params.greedy and params.logprob_temperature == 0.6
    greedy = SamplingParams(temperature=0, stop_token_ids=[3, 4])
    assert greedy.greedy and greedy.logprob_temperature == 1.0 and greedy.stop_token_ids == (3, 4)
    assert RolloutRequest([1, 2], 0).cap(params) == 256
    assert RolloutRequest([1, 2], 0, max_new_tokens=7).cap(params) == 7
    sample = Sample(0, [1], [5, 6, 7], [-1.0, -1.0, -1.0], 1, "stop", 0, 0)
    assert sample.num_generated == 2


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(temperature=-0.1), "SamplingParams.temperature"),
        (dict(temperature=float("nan")), "SamplingParams.temperature"),
        (dict(top_p=0.0), "SamplingParams.top_p"),
        (dict(top_p=1.5), "SamplingParams.top_p"),
        (dict(top_k=-1), "SamplingParams.top_k"),
        (dict(max_new_tokens=0), "SamplingParams.max_new_tokens"),
        (dict(stop_token_ids=[1, -2]), "SamplingParams.stop_token_ids"),
        (dict(n=0), "SamplingParams.n"),
        (dict(seed=1.5), "SamplingParams.seed"),
    ],
)
def test_sampling_params_errors_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        SamplingParams(**kwargs)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(prompt_ids=[]), "RolloutRequest.prompt_ids"),
        (dict(prompt_ids="abc"), "RolloutRequest.prompt_ids"),
        (dict(prompt_ids=[1, 2], forced_prefix=[-1]), "RolloutRequest.forced_prefix"),
        (dict(prompt_ids=[1, 2], max_new_tokens=0), "RolloutRequest.max_new_tokens"),
    ],
)
def test_request_errors_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        RolloutRequest(group_id=0, **kwargs)

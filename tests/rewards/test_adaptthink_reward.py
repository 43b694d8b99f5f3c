"""AdaptThink's advantage delta * 1[NoThinking] + R - Rbar_ref, by hand."""

import pytest

from megathink.errors import DataError
from megathink.rewards import adaptthink_advantages


def test_every_case_by_hand() -> None:
    #                 NoThinking correct, NoThinking wrong, Thinking correct, Thinking wrong
    got = adaptthink_advantages([True, True, False, False], [True, False, True, False], [0.75, 0.75, 0.5, 1.0], delta=0.05)
    assert got == pytest.approx([0.05 + 1 - 0.75, 0.05 - 0.75, 1 - 0.5, -1.0])


def test_zero_delta_and_the_reference_as_baseline() -> None:
    # A model as good as the reference: correct Thinking earns nothing, only NoThinking's bonus pays.
    assert adaptthink_advantages([False, True], [True, True], [1.0, 1.0], delta=0.0) == [0.0, 0.0]
    assert adaptthink_advantages([False, True], [True, True], [1.0, 1.0], delta=0.2) == pytest.approx([0.0, 0.2])


@pytest.mark.parametrize("args, kwargs, match", [
    (([True], [True, False], [0.5]), dict(delta=0.05), "1 modes, 2 correctness flags and 1 Rbar_ref"),
    (([True], [True], [1.5]), dict(delta=0.05), "Rbar_ref = 1.5 is invalid"),
    (([True], [True], [0.5]), dict(delta=-0.1), r"delta = -0\.1 is invalid.*algorithm\.delta"),
    (([True], [True], [0.5]), dict(delta=float("nan")), "delta = nan"),
])
def test_bad_input_names_the_problem(args, kwargs, match) -> None:
    with pytest.raises(DataError, match=match):
        adaptthink_advantages(*args, **kwargs)

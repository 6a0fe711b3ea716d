"""The one deadline rule (runner.runtimes.deadline.call_timeout): the smallest limit set wins."""

from __future__ import annotations

import pytest

from runner.errors import DeadlineExceeded
from runner.runtimes.deadline import call_timeout


@pytest.mark.parametrize(
    ("client", "setting", "bundle", "expected"),
    [
        (None, None, None, None),  # nothing set: unbounded (a runtime used on its own)
        (None, 30.0, None, 30.0),  # the service's predict_timeout
        (None, 30.0, 10.0, 10.0),  # a bundle's timeout_seconds lowers it
        (5.0, 30.0, 10.0, 5.0),  # a client's shorter deadline wins
        (60.0, 30.0, None, 30.0),  # a client cannot raise the service's bound
        (60.0, 30.0, 10.0, 10.0),  # nor the bundle's
        (0.25, None, None, 0.25),
        (None, None, 2.0, 2.0),
    ],
)
def test_the_smallest_limit_set_wins(
    client: float | None, setting: float | None, bundle: float | None, expected: float | None
) -> None:
    assert call_timeout(client, setting=setting, bundle=bundle) == expected


def test_taking_it_again_changes_nothing() -> None:
    """The runtimes apply the rule again with the bundle's limit: the data plane's answer stands."""
    first = call_timeout(12.0, setting=30.0, bundle=20.0)
    assert call_timeout(first, bundle=20.0) == first == 12.0


@pytest.mark.parametrize("client", [0.0, -1.5])
def test_a_passed_client_deadline_ends_the_call_before_the_model(client: float) -> None:
    with pytest.raises(DeadlineExceeded) as info:
        call_timeout(client, setting=30.0, bundle=10.0)
    assert "before the model was called" in info.value.message

"""Waiting in tests on an explicit signal, never on a fixed sleep.

``wait_for`` polls a condition (a file the model wrote, the registry's counts, a serving record, a
process's state...) until it holds, and fails the test saying what never happened. Its deadline is a
generous bound against hangs, not a speed assertion: a fast machine never waits for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 60.0,
    what: str = "condition",
    *,
    interval: float = 0.01,
    describe: Callable[[], str] | None = None,
) -> Any:
    """Poll until ``predicate()`` is truthy and return that value; after ``timeout`` seconds fail the
    test with "timed out ... waiting for {what}", plus ``describe()`` (e.g. a log's tail) if given."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = f"\n{describe()}" if describe is not None else ""
            pytest.fail(f"timed out after {timeout:g} s waiting for {what} (last: {value!r}){detail}")
        time.sleep(interval)

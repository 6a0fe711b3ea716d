"""runner.runtimes.stuck: a Python call abandoned at its deadline is recorded while it still runs, becomes
stuck past the grace with its stack, and leaves the list when it returns (a real PythonModel and its
DaemonPool)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.errors import DeadlineExceeded, enter_request, leave_request
from runner.runtimes import Model, stuck
from runner.runtimes.python.calls import DaemonPool, WaitTimeout
from tests.runner.runtimes.test_python_model import call, load, make_bundle
from tests.waiting import wait_for

PROTO = """
syntax = "proto3";
package holding;
message Flower { double sepal_length = 1; double sepal_width = 2; double petal_length = 3; double petal_width = 4; }
message Species { string species = 1; }
service Holding { rpc Classify(Flower) returns (Species); }
"""

# Classify holds until the test lets it go (a file it polls): "stuck" without sleeping in the test
HOLDING = """
    import os, time

    class IrisClassifier:
        def __init__(self, folder):
            self.release = os.path.join(str(folder), "release")

        def classify(self, sepal_length: float, sepal_width: float, petal_length: float,
                     petal_width: float) -> str:
            while not os.path.exists(self.release):
                time.sleep(0.01)   # the stack shows this line
            return "setosa"
"""


@pytest.fixture
def holding(tmp_path: Path) -> Iterator[tuple[Model, object, Path]]:
    folder = make_bundle(
        tmp_path / "models" / "iris-python" / "versions" / "7", {"iris_model.py": HOLDING}, proto=PROTO
    )
    model, contract = load(folder)
    yield model, contract, folder / "release"
    (folder / "release").touch()
    model.close()


def ours(calls: list[stuck.StuckCall]) -> list[stuck.StuckCall]:
    return [c for c in calls if c.model == "iris-python" and c.version == "7"]


def test_abandoned_call_becomes_stuck_then_clears(holding: tuple[Model, object, Path]) -> None:
    model, contract, release = holding
    watch = stuck.StuckWatch(grace=0.3)
    watch.poll()  # what earlier tests left is not ours to count
    token = enter_request("req-stuck-1")
    try:
        with pytest.raises(DeadlineExceeded):
            call(model, contract, "Classify", {"sepal_length": 1.0}, timeout=0.1)  # type: ignore[arg-type]
    finally:
        leave_request(token)

    # abandoned while running: counted at once, not stuck before the grace
    first = watch.poll()
    assert first.abandoned.get(("iris-python", "7")) == 1
    assert ours(stuck.python_calls(0.3, abandoned_too=True))
    stuck_now = wait_for(lambda: ours(stuck.current(0.3)), 10, "the abandoned call to become stuck")
    [record] = stuck_now
    assert (record.runtime, record.rpc, record.request_id) == ("python", "Classify", "req-stuck-1")
    assert record.thread.startswith("model-iris-python-")
    assert record.overdue_seconds >= 0.3
    assert "iris_model.py" in record.stack and "time.sleep(0.01)" in record.stack

    newly = wait_for(lambda: ours(watch.poll().newly_stuck), 10, "the watch to report it")
    assert [c.key for c in newly] == [record.key]
    again = watch.poll()
    assert not ours(again.newly_stuck) and ours(again.stuck)  # reported once, still stuck
    assert not again.abandoned.get(("iris-python", "7"))  # counted once

    release.touch()  # the call returns at last: no longer listed
    wait_for(lambda: not ours(stuck.python_calls(0.0, abandoned_too=True)), 10, "the call to leave the list")
    assert not ours(watch.poll().stuck)


def test_call_answered_in_time_is_never_recorded(holding: tuple[Model, object, Path]) -> None:
    model, contract, release = holding
    release.touch()
    watch = stuck.StuckWatch(grace=0.0)
    watch.poll()
    assert call(model, contract, "Classify", {"sepal_length": 1.0}, timeout=5)["species"] == "setosa"  # type: ignore[arg-type]
    assert not ours(stuck.python_calls(0.0, abandoned_too=True))
    assert not watch.poll().abandoned.get(("iris-python", "7"))


def test_pool_records_only_owned_running_calls() -> None:
    pool = DaemonPool("stuck-test", 1)
    gate = threading.Event()
    owner = stuck.CallOwner("pool-model", "1", "Run")
    try:
        running = pool.submit(gate.wait, 30, owner=owner)
        queued = pool.submit(lambda: "never", owner=owner)
        with pytest.raises(WaitTimeout):
            pool.wait(queued, 0.05)  # not started: cancelled, never recorded
        with pytest.raises(WaitTimeout):
            pool.wait(running, 0.05)
        [record] = [c for c in stuck.python_calls(0.0, abandoned_too=True) if c.model == "pool-model"]
        assert record.thread == "stuck-test-1" and "wait" in record.stack
        unowned = pool.submit(gate.wait, 30)
        with pytest.raises(WaitTimeout):
            pool.wait(unowned, 0.05)  # no owner: nothing to name, nothing recorded
        assert len([c for c in stuck.python_calls(0.0, abandoned_too=True) if c.model == "pool-model"]) == 1
    finally:
        gate.set()
    wait_for(
        lambda: not [c for c in stuck.python_calls(0.0, abandoned_too=True) if c.model == "pool-model"],
        10,
        "the released call to leave the list",
    )
    pool.shutdown()

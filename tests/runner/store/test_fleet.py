"""The serving records: what each serving process serves, liveness, waiting for a swap to land."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest

from runner.errors import BadInput
from runner.store import Fleet, Repository


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    return Fleet(tmp_path / "repo")


def test_serving_records_and_wait_until_served(fleet: Fleet) -> None:
    fleet.record_serving("p1", {"kind": "http", "models": {"m": 1}})
    live = fleet.live_processes()
    assert set(live) == {"p1"} and live["p1"]["pid"] == os.getpid() and live["p1"]["models"] == {"m": 1}
    assert fleet.wait_until_served("m", 1, timeout=0.1) == []
    assert fleet.wait_until_served("m", 2, timeout=0.1) == ["p1"]
    assert fleet.wait_until_served("m", None, timeout=0.1) == ["p1"]

    def serve_later() -> None:
        time.sleep(0.2)
        fleet.record_serving("p1", {"kind": "http", "models": {"m": 2}})

    t = threading.Thread(target=serve_later)
    t.start()
    assert fleet.wait_until_served("m", 2, timeout=10) == []
    t.join()
    # A process that reported it failed to load the version is not waited for until the deadline.
    fleet.record_serving(
        "p1", {"kind": "http", "models": {"m": 2}, "errors": {"m": {"version": 3, "error": "x"}}}
    )
    assert fleet.wait_until_served("m", 3, timeout=60) == ["p1"]
    fleet.remove_serving("p1")
    assert fleet.live_processes() == {}
    assert fleet.wait_until_served("m", 3, timeout=0) == []  # nobody serving: nothing to wait for


def test_stale_and_dead_serving_records_are_not_live(fleet: Fleet) -> None:
    # a process on another host that stopped beating: not live, but its record is kept a while
    fleet.record_serving(
        "old", {"kind": "http", "models": {}, "heartbeat": time.time() - 10, "host": "elsewhere"}
    )
    proc = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(0,))
    proc.start()
    proc.join()
    fleet.record_serving("dead", {"kind": "grpc", "models": {}, "pid": proc.pid})
    assert fleet.live_processes() == {}
    assert not (fleet.serving_root / "dead.json").exists()  # dead local pid: cleaned
    assert (fleet.serving_root / "old.json").exists()  # merely late: kept, not live


def test_a_live_local_process_late_with_its_heartbeat_is_waited_for(fleet: Fleet) -> None:
    # this (alive) process, 10 s late with its heartbeat and still serving nothing
    fleet.record_serving("late", {"kind": "http", "models": {}, "heartbeat": time.time() - 10})
    assert set(fleet.live_processes()) == {"late"}
    assert fleet.wait_until_served("m", 1, timeout=0.2) == ["late"]  # a laggard, not forgotten


def test_records_keep_extra_facts_and_fill_in_pid_host_heartbeat(fleet: Fleet) -> None:
    before = time.time()
    fleet.record_serving("p1", {"kind": "grpc", "models": {}, "jvm_options": ["-Xss2m"]})
    record = fleet.live_processes()["p1"]
    assert record["jvm_options"] == ["-Xss2m"] and record["kind"] == "grpc"
    assert record["pid"] == os.getpid() and record["heartbeat"] >= before and record["host"]


def test_invalid_process_id_is_refused(fleet: Fleet) -> None:
    with pytest.raises(BadInput):
        fleet.record_serving("../escape", {"models": {}})


def test_a_repository_fleet_is_the_serving_folder_of_its_root(tmp_path: Path) -> None:
    repo = Repository(tmp_path / "repo")
    Fleet(tmp_path / "repo").record_serving("p1", {"kind": "http", "models": {"m": 3}})
    assert repo.fleet.served_versions("m") == {3}
    assert repo.fleet.serving_root == tmp_path / "repo" / "serving"


def test_wait_until_served_stops_when_cancelled(fleet: Fleet) -> None:
    """A publisher stops waiting as soon as its version is no longer current (``cancelled``)."""
    fleet.record_serving("p1", {"kind": "http", "models": {"m": 1}})
    superseded = threading.Event()
    calls: list[bool] = []

    def cancelled() -> bool:
        calls.append(superseded.is_set())
        return superseded.is_set()

    threading.Timer(0, superseded.set).start()
    assert fleet.wait_until_served("m", 2, timeout=60, cancelled=cancelled) == ["p1"]
    assert calls[-1] is True
    # once every live process serves the version, the wait succeeds whatever ``cancelled`` says
    assert fleet.wait_until_served("m", 1, timeout=60, cancelled=lambda: True) == []

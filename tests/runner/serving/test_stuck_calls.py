"""runner.serving.stuck_calls: the watch logs each stuck call once (model logger, stack, request id), counts
abandoned and stuck calls in the metrics, and calls the retire callback once past max_stuck_calls."""

from __future__ import annotations

import logging
import threading

import pytest

from runner.runtimes import stuck
from runner.runtimes.python.calls import DaemonPool, WaitTimeout
from runner.serving import metrics
from runner.serving.stuck_calls import StuckCallWatch
from runner.settings import Settings
from tests.waiting import wait_for


def sample(name: str, **labels: str) -> float:
    text = metrics.render()[0].decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_watch_logs_counts_and_retires_once(caplog: pytest.LogCaptureFixture) -> None:
    retired: list[str] = []
    watch = StuckCallWatch(Settings(max_stuck_calls=1, stuck_grace=0.0), "test process", retired.append)
    watch.check()  # what earlier tests left
    before = sample("model_runner_abandoned_calls_total", model="watched")
    pool = DaemonPool("watched", 4)
    gate = threading.Event()
    try:
        for i in range(2):
            call = pool.submit(gate.wait, 30, owner=stuck.CallOwner("watched", "2", "Hold", f"req-{i}"))
            with pytest.raises(WaitTimeout):
                pool.wait(call, 0.01)
        with caplog.at_level(logging.WARNING):
            mine = [c for c in watch.check() if c.model == "watched"]
            assert len(mine) == 2
            watch.check()  # logged and counted once
        lines = [r.getMessage() for r in caplog.records if r.name == "model.watched"]
        assert len(lines) == 2 and all("call Hold is stuck" in line for line in lines)
        assert {"request req-0", "request req-1"} == {line.split(":")[0].split("] ")[1] for line in lines}
        assert all("in wait" in line for line in lines)  # the thread's stack
        assert sample("model_runner_abandoned_calls_total", model="watched") == before + 2
        assert sample("model_runner_stuck_calls", model="watched", version="2") == 2
        assert len(retired) == 1 and "watched version 2 (2)" in retired[0]
        assert any("test process retires" in r.getMessage() for r in caplog.records)
    finally:
        gate.set()
    wait_for(lambda: not [c for c in stuck.current(0.0) if c.model == "watched"], 10, "the calls to return")
    watch.check()
    assert sample("model_runner_stuck_calls", model="watched", version="2") == 0
    assert len(retired) == 1
    pool.shutdown()

"""A real `serve` with a healthy model in-process and a faulty Python model isolated in child processes
(``isolation = "process"``): while the faulty model segfaults, exits past every guard and hangs, a load
client on the healthy model sees no failure, the faulty model's callers get their error (500 with a clear
message, or 504 at their deadline), the faulty model serves again right after, and no serving process
(gunicorn worker) was replaced."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from tests.e2e.load import HealthyLoad
from tests.e2e.serve_process import alive, children_of, start_serve
from tests.runner.runtimes.test_process_isolation import python_bundle
from tests.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]


def test_faults_of_an_isolated_model_touch_nothing_else(
    sample_bundles: dict[str, Path], tmp_path: Path
) -> None:
    faulty = python_bundle(tmp_path / "faulty", examples={"Classify": [{"sepal_length": 0}]})
    # one worker: the healthy model's calls share the process whose faulty model crashes (and each
    # fault surely reaches the child the previous one left running or restarted)
    served = start_serve([str(sample_bundles["iris-python"]), str(faulty)], tmp_path, workers=1, threads=8)
    try:
        workers = children_of(served.proc.pid)
        assert len(workers) == 1, served.log_text()[-3000:]
        faulty_url = f"{served.base}/models/faulty/methods/Classify"

        def fault(how: int, **headers: str) -> requests.Response:
            return requests.post(faulty_url, json={"sepal_length": how}, headers=headers, timeout=60)

        def faulty_serves() -> bool:
            return fault(0).status_code == 200

        with HealthyLoad(served.base, ["iris-python"], threads=4) as load:
            wait_for(faulty_serves, 60, "the faulty model to serve")
            for how, what in ((2, "exited with signal SIGSEGV"), (1, "exited with code 7")):
                r = fault(how)
                assert r.status_code == 500, r.text
                error = r.json()["error"]
                assert error["kind"] == "model_error"
                assert (
                    "the model process of faulty version 1 " + what + " while running Classify"
                    in error["message"]
                )
                assert "it is being restarted" in error["message"]
                wait_for(faulty_serves, 60, f"the faulty model to serve again after it {what}")

            began = time.monotonic()
            r = fault(3, **{"X-Timeout-Seconds": "1"})  # a busy loop that never returns
            took = time.monotonic() - began
            assert r.status_code == 504, r.text
            assert 1.0 <= took < 2.5, took
            # the stuck child is replaced stuck_grace (2 s) past the deadline; the model serves throughout
            wait_for(lambda: "still runs Classify" in served.log_text(), 60, "the stuck child to be replaced")
            wait_for(lambda: "replaced pid" in served.log_text(), 60, "the replacement to take over")
            assert faulty_serves()

        assert load.failures == [], load.failures[:5]
        assert load.answered["iris-python"] > 50
        assert children_of(served.proc.pid) == workers and all(alive(pid) for pid in workers)
        log = served.log_text()
        assert (
            "the model process of faulty version 1 (pid" in log
            and "exited with signal SIGSEGV: restarting it" in log
        )
        assert "Fatal Python error: Segmentation fault" in log  # the child's own report reaches the log
    finally:
        served.stop()
    assert not list(tmp_path.glob("core*")) and not list(tmp_path.glob("hs_err_pid*.log"))

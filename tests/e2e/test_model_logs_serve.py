"""A Java model's output and errors in the log of a real `model-runner serve` (gunicorn worker and gRPC
process): each line the model prints is one record of logger ``model.<name>`` tagged with the model, its
version and the process that ran it; a call that throws is logged once with the Java stack trace, under
the request id the caller gets, and the stack stays out of the answer."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests

from tests.bridge.artifacts import build_jar, java_bundle
from tests.bridge.test_model_logs import CHATTY, PROTO
from tests.e2e.serve_process import descendants_of, start_serve
from tests.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]


def test_model_output_and_exceptions_reach_the_serve_log_tagged(tmp_path: Path) -> None:
    bundle = java_bundle(
        tmp_path / "chatty", name="chatty", entry_point=CHATTY, proto=PROTO, model_jar=build_jar("logs")
    )
    served = start_serve([str(bundle)], tmp_path, workers=1, grpc_processes=1)
    try:
        r = requests.post(
            f"{served.base}/models/chatty/methods/Say", json={"text": "hello from e2e", "n": 1}, timeout=60
        )
        assert r.status_code == 200, r.text
        request_id = "e2e-fail-1"  # the client's own id: the log and the answer use it
        r = requests.post(
            f"{served.base}/models/chatty/methods/Fail",
            json={"text": "e2e"},
            headers={"X-Request-Id": request_id},
            timeout=60,
        )
        assert r.status_code == 500, r.text
        error = r.json()["error"]
        assert error["detail"]["request_id"] == request_id and r.headers["X-Request-Id"] == request_id
        assert error["detail"]["java_class"] == "java.lang.IllegalStateException"
        assert "java_stack" not in error["detail"]  # error_traces is off: the stack is in the log only

        said = re.compile(
            r"http\[(\d+)\] INFO model\.chatty: \[model=chatty version=1 pid=(\d+)\] hello from e2e 0$", re.M
        )
        match = wait_for(
            lambda: said.search(served.log_text()),
            60,
            "the model's line in serve's log",
            describe=lambda: served.log_text()[-6000:],
        )
        worker = int(match.group(1))
        assert int(match.group(2)) == worker and worker in descendants_of(served.proc.pid)

        def logged_failure() -> str | None:
            # the failure, logged by the request's thread, and the line the model printed before it
            # threw, logged by the drainer (a few ms later)
            text = served.log_text()
            return text if f"request {request_id}:" in text and "about to fail: e2e" in text else None

        log = wait_for(
            logged_failure,
            60,
            "the model's exception in serve's log",
            describe=lambda: served.log_text()[-6000:],
        )
        failure = log[log.index(f"[model=chatty version=1 pid={worker}] request {request_id}:") :]
        assert failure.startswith(
            f"[model=chatty version=1 pid={worker}] request {request_id}: chatty.Fail: fail threw "
            "java.lang.IllegalStateException: boom e2e\njava.lang.IllegalStateException: boom e2e\n"
        )
        assert re.search(r"^\tat \S*org\.acme\.logs\.Chatty\.fail\(Chatty\.java:\d+\)$", failure, re.M)
        assert log.count(f"request {request_id}") == 1  # logged once, by the runtime, not again by the edge
        assert f"WARNING model.chatty: [model=chatty version=1 pid={worker}] about to fail: e2e" in log

        # the gRPC process loaded the model too: its class initialiser's line, tagged with its own pid
        inits = {
            int(p)
            for p in re.findall(r"\[model=chatty version=1 pid=(\d+)\] chatty: static initialiser", log)
        }
        assert worker in inits and len(inits) >= 2, inits
    finally:
        assert served.stop() == 0

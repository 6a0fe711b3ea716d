"""A serving process whose JVM crashes (an HTTP worker, a gRPC process): the crash report goes to the temp
dir (not serve's working directory), serve's log says where it is, and a fresh process takes its place."""

from __future__ import annotations

import os
import re
import resource
import signal
from pathlib import Path

import pytest
import requests

from tests.e2e.serve_process import alive, command_line, descendants_of, start_serve
from tests.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def _serving(serve_pid: int, command: str) -> list[int]:
    return [pid for pid in descendants_of(serve_pid) if command in command_line(pid)]


def _answers(base: str) -> bool:
    try:
        return requests.post(f"{base}/models/iris/methods/Classify", json=SETOSA, timeout=30).ok
    except requests.ConnectionError:
        return False


def test_a_jvm_crash_is_logged_with_where_its_report_is(
    sample_bundles: dict[str, Path], tmp_path: Path
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    core = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (0, core[1]))  # serve inherits it: no core file of the crashes
    try:
        # a Java model: every serving process runs a JVM
        served = start_serve(
            [str(sample_bundles["iris"])],
            tmp_path,
            workers=1,
            grpc_processes=1,
            env_extra={"TMPDIR": str(tmp)},
        )
    finally:
        resource.setrlimit(resource.RLIMIT_CORE, core)
    try:
        [worker] = _serving(served.proc.pid, "runner serve")
        [grpc] = _serving(served.proc.pid, "runner.grpc")
        for pid, what in ((worker, "HTTP worker"), (grpc, "gRPC process")):
            os.kill(pid, signal.SIGSEGV)  # the JVM takes it for a crash in native code
            report = tmp / f"model-runner-hs_err_pid{pid}.log"
            line = f"{what} {pid}: its JVM crashed; the JVM's crash report: {report}"
            wait_for(lambda: line in served.log_text(), 120, f"the log line {line!r}", interval=0.1)
            assert report.is_file() and "SIGSEGV" in report.read_text(errors="replace")
            wait_for(lambda: not alive(pid), 60, f"the crashed {what} to be gone")
        assert not [p for p in tmp_path.iterdir() if re.match(r"hs_err_pid\d+\.log", p.name)]
        wait_for(lambda: _answers(served.base), 120, "a fresh worker to answer", interval=0.2)
    finally:
        assert served.stop() == 0

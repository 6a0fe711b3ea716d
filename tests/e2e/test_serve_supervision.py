"""Process supervision of `serve`: its serving processes die with it (kill -9 of the master leaves no
worker, gRPC process or JVM behind), and a stop takes at most its bound, naming what held it (threads a
model left running), however the models behave."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import textwrap
import time
import zipfile
from pathlib import Path

import pytest
import requests

from runner.bundle import write_bundle_zip
from tests.e2e.serve_process import alive, command_line, descendants_of, start_serve
from tests.http.conftest import write_toy_bundle
from tests.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

CLOSE_GRACE = 5.0  # runner.serving.lifecycle.CLOSE_GRACE

STUBBORN_PYTHON = textwrap.dedent('''
    import threading
    import time


    class Stubborn:
        """Starts a non-daemon thread that never ends (and is never stopped)."""

        def __init__(self):
            threading.Thread(target=self._forever, name="stubborn-python", daemon=False).start()

        def _forever(self):
            while True:
                time.sleep(0.2)

        def echo(self, text: str) -> str:
            return text
''')

STUBBORN_JAVA = textwrap.dedent("""
    package org.acme;

    /** Starts a non-daemon thread that never ends, not even when interrupted. */
    public class Stubborn {
        public Stubborn() {
            Thread t = new Thread(() -> {
                while (true) {
                    try { Thread.sleep(200); } catch (InterruptedException e) { /* keeps going */ }
                }
            }, "stubborn-java");
            t.setDaemon(false);
            t.start();
        }

        public String echo(String text) { return text; }
    }
""")


def _stubborn_python_bundle(dest: Path) -> Path:
    write_toy_bundle(dest)
    (dest / "toy_model.py").unlink()
    (dest / "stubborn.py").write_text(STUBBORN_PYTHON)
    (dest / "model.proto").write_text(
        'syntax = "proto3";\npackage stubborn;\nmessage EchoRequest { string text = 1; }\n'
        "message EchoResponse { string value = 1; }\n"
        "service Stubborn { rpc Echo (EchoRequest) returns (EchoResponse); }\n"
    )
    meta = json.loads((dest / "metadata.json").read_text())
    meta.update(name="stubborn-py", entry_point="stubborn:Stubborn", examples={"Echo": [{"text": "hi"}]})
    (dest / "metadata.json").write_text(json.dumps(meta))
    return dest


def _javac() -> str:
    home = os.environ.get("JAVA_HOME")
    javac = str(Path(home) / "bin" / "javac") if home else shutil.which("javac")
    if not javac or not Path(javac).exists():
        pytest.skip("no javac")
    return javac


def _stubborn_jar(work: Path) -> Path:
    src = work / "src" / "org" / "acme" / "Stubborn.java"
    src.parent.mkdir(parents=True)
    src.write_text(STUBBORN_JAVA)
    classes = work / "classes"
    subprocess.run(
        [_javac(), "--release", "17", "-parameters", "-d", str(classes), str(src)], check=True, timeout=120
    )
    jar = work / "stubborn.jar"
    with zipfile.ZipFile(jar, "w") as z:
        for f in sorted(classes.rglob("*.class")):
            z.write(f, f.relative_to(classes).as_posix())
    return jar


def _serving_pids(serve_pid: int) -> dict[int, str]:
    return {pid: command_line(pid) for pid in descendants_of(serve_pid)}


def test_kill_9_of_serve_leaves_no_serving_process(sample_bundles: dict[str, Path], tmp_path: Path) -> None:
    """kill -9 of the master right after a push: every worker, gRPC process (with their JVMs) and helper
    is gone within a few seconds."""
    served = start_serve([str(sample_bundles["iris"])], tmp_path, workers=2, grpc_processes=1)
    processes: dict[int, str] = {}
    try:
        r = requests.put(
            f"{served.base}/models/iris",
            data=write_bundle_zip(sample_bundles["iris-v2"]),
            headers={**served.auth, "Content-Type": "application/zip"},
            timeout=120,
        )
        assert r.status_code == 200, r.text
        processes = _serving_pids(served.proc.pid)
        commands = list(processes.values())
        assert sum("runner.grpc" in c for c in commands) == 1, commands
        assert sum("runner serve" in c for c in commands) == 2, commands  # the two workers, nothing else
        assert not any("resource_tracker" in c for c in commands), commands

        served.proc.send_signal(signal.SIGKILL)
        served.proc.wait()
        killed = time.monotonic()
        wait_for(
            lambda: not any(alive(pid) for pid in processes),
            30,
            "every serving process to exit after its parent's SIGKILL",
            interval=0.05,
            describe=lambda: (
                f"alive: {[(p, processes[p]) for p in processes if alive(p)]}\n" + served.log_text()[-3000:]
            ),
        )
        took = time.monotonic() - killed
        assert took < 10, f"serving processes outlived serve by {took:.1f} s"
    finally:
        served.kill()
        for pid in processes:  # orphans of a failed test: ours, by pid
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_sigterm_with_models_holding_non_daemon_threads(tmp_path: Path) -> None:
    """A Python and a Java model each start a non-daemon thread that never ends: SIGTERM still stops
    serve within stop_timeout + CLOSE_GRACE, and the log names the threads and their models."""
    bundle = _stubborn_python_bundle(tmp_path / "stubborn-py")
    jar = _stubborn_jar(tmp_path / "java")
    stop_timeout = 1.0
    served = start_serve(
        [str(bundle), str(jar), "--class", "org.acme.Stubborn"],
        tmp_path,
        workers=2,
        grpc_processes=1,
        env_extra={"MODEL_RUNNER_STOP_TIMEOUT": str(stop_timeout)},
    )
    try:
        java_model = re.findall(r"^(\S+): published version 1$", served.log_text(), re.M)
        assert sorted(java_model) == sorted(["stubborn-py", java_model[-1]]) and len(java_model) == 2
        java_model.remove("stubborn-py")
        java = java_model[0]  # named after the class by onboarding
        for model in ("stubborn-py", java):
            r = requests.post(f"{served.base}/models/{model}/methods/Echo", json={"text": "hi"}, timeout=30)
            assert r.status_code == 200, r.text
        processes = _serving_pids(served.proc.pid)
        started = time.monotonic()
        status = served.stop(timeout=60)
        took = time.monotonic() - started
        log = served.log_text()
        assert status == 0, log[-4000:]
        bound = stop_timeout + CLOSE_GRACE + 4  # + the master's own stop and process start-up slack
        assert took < bound, f"serve took {took:.1f} s to stop (bound {bound:.0f} s):\n{log[-4000:]}"
        assert not any(alive(pid) for pid in processes)
        # each serving process (2 HTTP workers, 1 gRPC process) says what it left behind, and whose
        for kind in ("HTTP worker", "gRPC process"):
            lines = [line for line in log.splitlines() if re.search(rf"{kind} \d+: .*still running", line)]
            assert len(lines) == (2 if kind == "HTTP worker" else 1), (kind, log[-4000:])
            for line in lines:
                assert "Python thread 'stubborn-python' of model stubborn-py version 1" in line, line
                assert f"Java thread 'stubborn-java' of model {java} version 1" in line, line
    finally:
        served.kill()


def test_a_worker_ending_leaves_serve_s_other_processes_alone(tmp_path: Path) -> None:
    """A worker that ends (SIGHUP rolls the workers) ends alone: it used to unwind into serve's own
    clean-up (gunicorn forks it inside the master's loop) and stop the gRPC processes with it."""
    served = start_serve([str(write_toy_bundle(tmp_path / "toy"))], tmp_path, workers=1, grpc_processes=1)
    try:
        children = _serving_pids(served.proc.pid)
        grpc = [pid for pid, cmd in children.items() if "runner.grpc" in cmd]
        workers = [pid for pid, cmd in children.items() if "runner serve" in cmd]
        assert len(grpc) == 1 and len(workers) == 1, children
        served.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: not alive(workers[0]), 60, "the old worker to exit after SIGHUP")
        wait_for(
            lambda: any(
                "runner serve" in c for p, c in _serving_pids(served.proc.pid).items() if p != workers[0]
            ),
            60,
            "a new worker",
        )
        r = requests.post(f"{served.base}/models/toy/methods/Echo", json={"text": "hi"}, timeout=30)
        assert r.status_code == 200, r.text
        assert alive(grpc[0]) and "signal 15: stopping" not in served.log_text(), served.log_text()[-3000:]
        assert served.ready.exists()
    finally:
        assert served.stop() == 0

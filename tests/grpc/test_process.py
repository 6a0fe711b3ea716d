"""`python -m runner.grpc`: a standalone serving process (own registry), several sharing one port."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

from runner.contract import Contract
from runner.settings import Settings
from runner.store import Repository
from tests.grpc.conftest import SETOSA, TOOLS_PROTO, iris_python_bundle, tools_bundle
from tests.grpc.reflection_client import ReflectionClient
from tests.waiting import wait_for

# real serving processes (`python -m runner.grpc`), each given up to 120 s to be ready
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

READY = re.compile(r"model-runner grpc ready host=(\S+) port=(\d+) pid=(\d+)")


class GrpcProcess:
    def __init__(self, settings: Settings, *args: str):
        env = {**os.environ, **settings.to_env()}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runner.grpc", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, args=(self.proc.stdout, self.lines.put), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr.append), daemon=True).start()

    @staticmethod
    def _read(stream, sink) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            sink(line)

    def wait_ready(self, timeout: float = 120) -> int:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail("no ready line; stderr:\n" + "".join(self.stderr[-40:]))
        m = READY.search(line)
        assert m, line
        assert int(m.group(3)) == self.proc.pid
        return int(m.group(2))

    def terminate(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail("did not stop on SIGTERM; stderr:\n" + "".join(self.stderr[-40:]))


@pytest.fixture
def procs() -> list[GrpcProcess]:
    started: list[GrpcProcess] = []
    yield started
    for p in started:
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()


def test_standalone_processes_share_a_port_and_count_in_swaps(
    tmp_path: Path, procs: list[GrpcProcess]
) -> None:
    repo_dir = tmp_path / "repo"
    repo = Repository(repo_dir)
    repo.publish("iris-python", iris_python_bundle(tmp_path / "b1"), expected_version=None, caller="test")
    repo.publish("tools", tools_bundle(tmp_path / "b2"), expected_version=None, caller="test")
    settings = Settings(repo=repo_dir, grpc_port=0, poll_interval=0.05)

    first = GrpcProcess(settings)
    procs.append(first)
    port = first.wait_ready()
    second = GrpcProcess(settings, "--port", str(port))  # SO_REUSEPORT: both listen on one port
    procs.append(second)
    assert second.wait_ready() == port

    records = {info["pid"]: info for info in repo.fleet.live_processes().values()}
    for p in (first, second):
        assert records[p.proc.pid]["kind"] == "grpc"
        assert records[p.proc.pid]["models"] == {"iris-python": 1, "tools": 1}

    target = f"127.0.0.1:{port}"
    channel = grpc.insecure_channel(target)
    client = ReflectionClient(channel)
    svc = client.service("iris.IrisClassifier")
    out, md = client.call(svc, "Classify", json_format.ParseDict(SETOSA, svc.input_class("Classify")()))
    assert out.species == "setosa" and md == {"x-model-name": "iris-python", "x-model-version": "1"}
    health = health_pb2_grpc.HealthStub(channel)
    assert (
        health.Check(health_pb2.HealthCheckRequest(service="iris-python"), timeout=10).status
        == health_pb2.HealthCheckResponse.SERVING
    )

    # a swap is acknowledged only once both processes serve it; then every connection sees it
    version = repo.publish(
        "tools", tools_bundle(tmp_path / "b3", label="v2"), expected_version=None, caller="test"
    )
    assert repo.fleet.wait_until_served("tools", version, timeout=60) == []
    tools = Contract.compile(TOOLS_PROTO % "")
    request = tools.input_class("Echo")(text="x").SerializeToString()
    for _ in range(8):  # fresh connections: the kernel spreads them over both processes
        with grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as ch:
            body, call = ch.unary_unary("/tools.Tools/Echo").with_call(request, timeout=10)
        assert tools.output_class("Echo").FromString(body).text == "v2:x"
        assert dict(call.initial_metadata())["x-model-version"] == "2"
    channel.close()

    # SIGTERM: graceful stop, exit 0, serving records gone
    assert first.terminate() == 0
    assert second.terminate() == 0
    pids = {info["pid"] for info in repo.fleet.live_processes().values()}
    assert first.proc.pid not in pids and second.proc.pid not in pids


def test_java_model_arriving_later_and_sigterm(
    tmp_path: Path, procs: list[GrpcProcess], sample_bundles: dict[str, Path]
) -> None:
    """The JVM starts only when a Java model arrives (and installs its own signal handlers): the
    process still serves it and still stops gracefully on SIGTERM."""
    repo_dir = tmp_path / "repo"
    repo = Repository(repo_dir)
    repo.publish("tools", tools_bundle(tmp_path / "b1"), expected_version=None, caller="test")
    proc = GrpcProcess(Settings(repo=repo_dir, grpc_port=0, poll_interval=0.05))
    procs.append(proc)
    port = proc.wait_ready()

    version = repo.publish("iris", sample_bundles["iris"], expected_version=None, caller="test")
    assert repo.fleet.wait_until_served("iris", version, timeout=120) == []
    iris = Contract.compile((Path(__file__).parents[2] / "protos" / "iris.proto").read_text())
    request = json_format.ParseDict(SETOSA, iris.input_class("Classify")()).SerializeToString()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        body, call = ch.unary_unary("/iris.IrisClassifier/Classify").with_call(request, timeout=30)
    assert iris.output_class("Classify").FromString(body).species == "setosa"
    assert dict(call.initial_metadata()) == {"x-model-name": "iris", "x-model-version": "1"}
    # the Open Inference Protocol's service on the same port, in a real serving process
    inputs = []
    for name, value in SETOSA.items():
        tensor = triton.InferInput(name, [1], "FP64")
        tensor.set_data_from_numpy(np.array([value]))
        inputs.append(tensor)
    oip = triton.InferenceServerClient(f"127.0.0.1:{port}")
    assert oip.is_model_ready("iris")
    assert oip.infer("iris", inputs).as_numpy("species").tolist() == [b"setosa"]

    assert proc.terminate() == 0
    assert "stopped" in "".join(proc.stderr)


def test_a_grpc_process_whose_parent_is_killed_stops(tmp_path: Path) -> None:
    """`serve` killed with SIGKILL cannot stop its gRPC children: they must not hold the port forever."""
    repo = Repository(tmp_path / "repo")
    settings = Settings(repo=repo.root, grpc_port=0)
    env = {**os.environ, **settings.to_env()}
    # a stand-in for `serve`: starts the gRPC process, reports its pid, then waits to be killed
    parent_code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-m', 'runner.grpc', '--port', '0'],"
        " stdout=subprocess.PIPE, text=True)\n"
        "print(child.pid, child.stdout.readline().strip(), flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = parent.stdout.readline()  # type: ignore[union-attr]
        child_pid = int(line.split()[0])
        assert "model-runner grpc ready" in line, line
        parent.kill()
        parent.wait()
        try:
            wait_for(
                lambda: not _running(child_pid),
                30,
                "the gRPC process to stop after its parent was killed",
                interval=0.05,
            )
        finally:
            if _running(child_pid):
                os.kill(child_pid, signal.SIGKILL)
    finally:
        if parent.poll() is None:
            parent.kill()


def _running(pid: int) -> bool:
    """Alive and not a zombie (an exited orphan may wait a while for whoever adopted it to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"

"""Calls that never stop, in a real `serve` (2 HTTP workers, 2 gRPC processes, max_stuck_calls=1): each
call to a Python model that busy-loops for ever answers at its deadline (504, DEADLINE_EXCEEDED), is
counted and logged with its stack once stuck, and a process holding two of them retires and is replaced
(HTTP: a fresh gunicorn worker; gRPC: `serve` starts a fresh process) while load on a healthy model, over
HTTP keep-alive connections and over gRPC, sees no failure at all."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from runner.contract import Contract
from runner.samples import find_repo_root
from tests.e2e.load import ClientThreads
from tests.e2e.serve_process import Serve, alive, start_serve
from tests.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

FLOWER = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
IRIS = Contract.compile((find_repo_root() / "protos" / "iris.proto").read_text())

SPIN_PROTO = """syntax = "proto3";
package spin;
message SpinRequest { int64 n = 1; }
message SpinReply { int64 n = 1; }
service Spinner {
  rpc Spin (SpinRequest) returns (SpinReply);
}
"""
SPIN_MODEL = """
class Spinner:
    def spin(self, n: int) -> int:
        x = 0
        while n:  # n != 0: busy-loops for ever (a thread nothing can stop)
            x += n
        return x
"""
SPIN = Contract.compile(SPIN_PROTO)
DEADLINE = 1.0


def spin_bundle(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "spin_model.py").write_text(SPIN_MODEL)
    (folder / "model.proto").write_text(SPIN_PROTO)
    meta = {
        "name": "spin",
        "runtime": "python",
        "entry_point": "spin_model:Spinner",
        "examples": {"Spin": [{"n": 0}]},  # validation returns at once
    }
    (folder / "metadata.json").write_text(json.dumps(meta))
    return folder


@pytest.fixture(scope="module")
def served(sample_bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    tmp = tmp_path_factory.mktemp("stuck-e2e")
    serve = start_serve(
        [str(sample_bundles["iris"]), str(spin_bundle(tmp / "spin"))],
        tmp,
        workers=2,
        threads=4,
        grpc_processes=2,
        env_extra={"MODEL_RUNNER_MAX_STUCK_CALLS": "1", "MODEL_RUNNER_STUCK_GRACE": "0.5"},
    )
    with grpc.insecure_channel(f"127.0.0.1:{serve.info['grpc_port']}") as channel:
        grpc.channel_ready_future(channel).result(timeout=120)
    yield serve
    serve.stop()


def serving_pids(serve: Serve, kind: str) -> set[int]:
    """The live serving processes of ``kind`` (http, grpc), from their serving records."""
    pids = set()
    for record in (serve.repo / "serving").glob("*.json"):
        try:
            info = json.loads(record.read_text())
        except (OSError, ValueError):
            continue
        if info.get("kind") == kind and alive(int(info["pid"])) and info.get("ready"):
            pids.add(int(info["pid"]))
    return pids


def metric(serve: Serve, name: str, **labels: str) -> float:
    r = requests.get(f"{serve.base}/metrics", timeout=30)
    assert r.status_code == 200, r.text
    return sum(
        s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
        if s.name == name and labels.items() <= s.labels.items()
    )


class Load(ClientThreads):
    """Predictions on iris throughout: HTTP threads sharing one keep-alive session, gRPC threads each on
    one long-lived channel. Every failure is kept."""

    def __init__(self, serve: Serve, http_threads: int = 4, grpc_threads: int = 2) -> None:
        super().__init__()
        self.serve = serve
        self.failures: list[str] = []
        self.answered = {"http": 0, "grpc": 0}
        self._lock = threading.Lock()
        self.session = requests.Session()
        self.threads = [
            *(threading.Thread(target=self._http, daemon=True) for _ in range(http_threads)),
            *(threading.Thread(target=self._grpc, daemon=True) for _ in range(grpc_threads)),
        ]

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self.session.close()

    def _count(self, protocol: str, failure: str | None) -> None:
        with self._lock:
            if failure is None:
                self.answered[protocol] += 1
            else:
                self.failures.append(f"{protocol}: {failure}")

    def _http(self) -> None:
        url = f"{self.serve.base}/models/iris/methods/Classify"
        while not self.stop.is_set():
            try:
                r = self.session.post(url, json=FLOWER, timeout=60)
                self._count("http", None if r.status_code == 200 else f"{r.status_code} {r.text[:200]}")
            except requests.RequestException as err:
                self._count("http", repr(err))

    def _grpc(self) -> None:
        request = IRIS.input_class("Classify")(**FLOWER).SerializeToString()
        with grpc.insecure_channel(f"127.0.0.1:{self.serve.info['grpc_port']}") as channel:
            call = channel.unary_unary(f"/{IRIS.full_service_name}/Classify")
            while not self.stop.is_set():
                try:
                    call(request, timeout=60)
                    self._count("grpc", None)
                except grpc.RpcError as err:
                    self._count("grpc", f"{err.code()} {err.details()}")  # type: ignore[attr-defined]


def http_spin(serve: Serve, request_id: str) -> float:
    """One call to the spinning model with a 1 s deadline: it answers 504 at about that; the seconds."""
    began = time.monotonic()
    r = requests.post(
        f"{serve.base}/models/spin/methods/Spin",
        json={"n": 1},
        headers={"X-Timeout-Seconds": str(DEADLINE), "X-Request-Id": request_id, "Connection": "close"},
        timeout=60,
    )
    took = time.monotonic() - began
    assert r.status_code == 504, r.text
    assert r.json()["error"]["kind"] == "deadline"
    return took


def grpc_spin(serve: Serve, request_id: str) -> float:
    """The same over gRPC (a new connection each time, so that calls spread over the processes: a local
    subchannel pool, or grpc reuses a connection another channel to the same address holds)."""
    request = SPIN.input_class("Spin")(n=1).SerializeToString()
    began = time.monotonic()
    address = f"127.0.0.1:{serve.info['grpc_port']}"
    with grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
        call = channel.unary_unary(f"/{SPIN.full_service_name}/Spin")
        with pytest.raises(grpc.RpcError) as raised:
            call(request, timeout=DEADLINE, metadata=[("x-request-id", request_id)])
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
    return time.monotonic() - began


def answered_by(serve: Serve, process: str, request_id: str) -> int | None:
    match = re.search(
        rf"{process}\[(\d+)\] access: .* request_id={re.escape(request_id)}\b", serve.log_text()
    )
    return int(match.group(1)) if match else None


def retire_all(serve: Serve, kind: str, spin: object, tag: str) -> tuple[set[int], list[float]]:
    """Call the spinning model until every serving process of ``kind`` seen at first has retired and
    been replaced; the replacements' pids and how long each call took."""
    first = serving_pids(serve, kind)
    assert len(first) == 2
    took: list[float] = []
    for i in range(60):
        took.append(spin(serve, f"{tag}-{i}"))  # type: ignore[operator]
        now = serving_pids(serve, kind)
        if not (first & now) and len(now) == 2:
            return now, took
    fresh = wait_for(
        lambda: (lambda now: now if not (first & now) and len(now) == 2 else None)(serving_pids(serve, kind)),
        120,
        f"every first {kind} process {first} to retire and be replaced",
        interval=0.2,
        describe=lambda: serve.log_text()[-6000:],
    )
    return fresh, took


def test_stuck_calls_retire_processes_without_failing_other_requests(served: Serve) -> None:
    with Load(served) as load:
        wait_for(lambda: load.answered["http"] and load.answered["grpc"], 60, "the load to get answers")

        # HTTP: each call answers 504 at its deadline; two stuck in a worker retire it
        fresh_http, took = retire_all(served, "http", http_spin, "spin-http")
        assert all(DEADLINE * 0.9 <= t < DEADLINE + 3 for t in took), took
        # the spinning model answers again, at its deadline, from a fresh worker
        for i in range(20):
            http_spin(served, f"spin-fresh-{i}")
            pid = wait_for(lambda i=i: answered_by(served, "http", f"spin-fresh-{i}"), 30, "the access line")  # type: ignore[misc]
            if pid in fresh_http:
                break
        else:
            pytest.fail(f"no spin call answered by a fresh worker {fresh_http}")

        # gRPC: the same; `serve` replaces each retired process
        fresh_grpc, took = retire_all(served, "grpc", grpc_spin, "spin-grpc")
        assert all(t < DEADLINE + 3 for t in took), took
        grpc_spin(served, "spin-grpc-fresh")
        assert answered_by(served, "grpc", "spin-grpc-fresh") in fresh_grpc | {None}

        before = dict(load.answered)
        wait_for(
            lambda: all(load.answered[p] > before[p] + 10 for p in before),
            60,
            "the load to go on after the replacements",
        )
    assert not load.failures, f"{len(load.failures)} failed: {load.failures[:10]}"

    # counted: every call abandoned while the model ran; stuck now in the live (fresh) processes
    assert metric(served, "model_runner_abandoned_calls_total", model="spin") >= 8
    wait_for(
        lambda: metric(served, "model_runner_stuck_calls", model="spin") >= 1,
        30,
        "the fresh processes' stuck calls in the gauge",
    )
    log = served.log_text()
    # logged once per stuck call, with its thread's stack; each retirement says why
    stuck_lines = re.findall(r"\[model=spin version=1 pid=\d+\] request (\S+): call Spin is stuck", log)
    assert stuck_lines and len(stuck_lines) == len(set(stuck_lines)), stuck_lines
    assert re.search(r'versions/1/spin_model\.py", line \d+, in spin', log), "no stack in the log"
    assert len(re.findall(r"HTTP worker \d+ retires: it holds \d+ stuck calls.*spin version 1", log)) >= 2
    assert len(re.findall(r"gRPC process \d+ retires: it holds", log)) >= 2
    # `serve` replaced each; the exit status says it retired (unless its model threads starved its bounded
    # end of the GIL so long that the last resort ended it: then it says that status, and it is replaced too)
    assert len(re.findall(r"gRPC process \d+ replaces \d+", log)) >= 2
    assert re.search(r"gRPC process \d+ retired \(too many stuck calls\) after", log)


# ------------------------------------------------------------------------------------------------- Java

JAVA_SOURCE = Path(__file__).parent / "java_stuck" / "stuckjava" / "Stuck.java"
JAVA_PROTO = """syntax = "proto3";
package stuckjava;
message Req { int64 n = 1; }
message Reply { int64 n = 1; }
service Stuck {
  rpc Spin (Req) returns (Reply);
}
"""


def java_stuck_bundle(folder: Path) -> Path:
    """The Java model of tests/e2e/java_stuck (its Spin swallows every Throwable), compiled into a bundle."""
    javac = shutil.which("javac")
    if javac is None:
        pytest.skip("javac not found (.ci/setup installs a JDK)")
    classes = folder / "classes"
    subprocess.run(
        [javac, "--release", "17", "-d", str(classes), str(JAVA_SOURCE)], check=True, capture_output=True
    )
    bundle = folder / "bundle"
    bundle.mkdir(parents=True)
    shutil.make_archive(str(folder / "model"), "zip", classes)
    (folder / "model.zip").rename(bundle / "model.jar")
    (bundle / "model.proto").write_text(JAVA_PROTO)
    meta = {
        "name": "stuck-java",
        "runtime": "java",
        "entry_point": "stuckjava.Stuck",
        "examples": {"Spin": [{"n": 0}]},
    }
    (bundle / "metadata.json").write_text(json.dumps(meta))
    return bundle


def test_stuck_java_calls_retire_workers(sample_bundles: dict[str, Path], tmp_path: Path) -> None:
    serve = start_serve(
        [str(sample_bundles["iris"]), str(java_stuck_bundle(tmp_path / "java"))],
        tmp_path,
        workers=2,
        threads=4,
        env_extra={"MODEL_RUNNER_MAX_STUCK_CALLS": "1", "MODEL_RUNNER_STUCK_GRACE": "0.5"},
    )
    try:
        with Load(serve, http_threads=3, grpc_threads=0) as load:
            wait_for(lambda: load.answered["http"], 60, "the load to get answers")

            def java_spin(served: Serve, request_id: str) -> float:
                began = time.monotonic()
                r = requests.post(
                    f"{served.base}/models/stuck-java/methods/Spin",
                    json={"n": 1},
                    headers={"X-Timeout-Seconds": str(DEADLINE), "X-Request-Id": request_id},
                    timeout=60,
                )
                assert r.status_code == 504, r.text
                return time.monotonic() - began

            _fresh, took = retire_all(serve, "http", java_spin, "java-spin")
            assert all(DEADLINE * 0.9 <= t < DEADLINE + 3 for t in took), took
        assert not load.failures, f"{len(load.failures)} failed: {load.failures[:10]}"
        assert metric(serve, "model_runner_abandoned_calls_total", model="stuck-java") >= 4
        log = serve.log_text()
        assert re.search(r"\[model=stuck-java version=1 pid=\d+\] call Spin is stuck: .* on Java thread", log)
        assert "stuckjava.Stuck.churn" in log or "Stuck.churn" in log, "no Java stack in the log"
        assert len(re.findall(r"HTTP worker \d+ retires: it holds \d+ stuck calls.*stuck-java", log)) >= 2
    finally:
        serve.stop()


# ------------------------------------------------------------------------- HTTP connections of a retiree


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response read off ``sock`` (status, lower-cased headers, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed before an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed in the middle of an answer"
        body += chunk
    return int(lines[0].split()[1]), headers, body


def test_a_retiring_worker_answers_requests_arriving_on_its_idle_connections(tmp_path: Path) -> None:
    """A lone worker retires at once: a request sent on a kept-alive connection that was idle, and the
    first request of a connection accepted before the retirement, both arrive while it stops: answered."""
    serve = start_serve(
        [str(spin_bundle(tmp_path / "spin"))],
        tmp_path,
        workers=1,
        threads=4,
        env_extra={"MODEL_RUNNER_MAX_STUCK_CALLS": "1", "MODEL_RUNNER_STUCK_GRACE": "0.2"},
    )
    request = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{serve.port}\r\n\r\n".encode()
    try:
        [worker] = serving_pids(serve, "http")
        idle = socket.create_connection(("127.0.0.1", serve.port), timeout=30)
        idle.sendall(request)
        status, headers, _ = read_response(idle)
        assert status == 200 and headers.get("connection") != "close"  # kept alive, idle from now on
        fresh = socket.create_connection(("127.0.0.1", serve.port), timeout=30)  # accepted, sends nothing yet
        for i in range(2):
            http_spin(serve, f"retire-{i}")
        wait_for(
            lambda: f"HTTP worker {worker} retires" in serve.log_text(),
            30,
            "the worker to retire",
            describe=lambda: serve.log_text()[-4000:],
        )
        # both arrive while it stops (a client that sends nothing for the 2 s it lingers is closed, as
        # gunicorn closes idle kept-alive connections then)
        idle.sendall(request)
        fresh.sendall(request)
        for sock in (idle, fresh):
            status, headers, _ = read_response(sock)
            assert status == 200, headers
            assert sock.recv(1) == b""  # then the worker closes the connection (a clean end, no reset)
        wait_for(
            lambda: (lambda now: now if now and worker not in now else None)(serving_pids(serve, "http")),
            120,
            "a fresh worker",
        )
        idle.close()
        fresh.close()
    finally:
        serve.stop()

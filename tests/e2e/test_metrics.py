"""Metrics, request ids and the access log of a real `serve`: 2 gunicorn workers and 2 gRPC processes
writing into one metrics folder, one scrape of /metrics showing them all (and still the counts of a
worker killed with SIGKILL, without its gauges), a real Prometheus server scraping it, and the request
ids of HTTP and gRPC calls in the access lines and in the model error log lines."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from runner.contract import Contract
from runner.grpc.oip import oip_contract
from runner.samples import find_repo_root
from runner.serving.metrics import PROTOCOLS
from tests.e2e.serve_process import Serve, alive, start_serve
from tests.http.conftest import write_toy_bundle
from tests.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]

FLOWER = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
IRIS = Contract.compile((find_repo_root() / "protos" / "iris.proto").read_text())

FAILING_PROTO = """syntax = "proto3";
package failing;
message Req { string text = 1; }
message Resp { string text = 1; }
service Failing {
  rpc Say (Req) returns (Resp);
}
"""
FAILING_JAVA = """package failing;

/** Echoes, and throws when asked to: a model error logged by the Java runtime. */
public class Failing {
    public static class Req { public String text; }
    public static class Resp { public String text; }

    public Resp say(Req req) {
        if ("boom".equals(req.text)) throw new IllegalStateException("asked to fail");
        Resp out = new Resp();
        out.text = req.text;
        return out;
    }
}
"""

Samples = dict[str, list[tuple[dict[str, str], float]]]


def failing_java_bundle(folder: Path) -> Path:
    javac = shutil.which("javac")
    if javac is None:
        pytest.skip("javac not found (.ci/setup installs a JDK)")
    src = folder / "src" / "failing" / "Failing.java"
    src.parent.mkdir(parents=True)
    src.write_text(FAILING_JAVA)
    classes = folder / "classes"
    subprocess.run([javac, "--release", "17", "-d", str(classes), str(src)], check=True, capture_output=True)
    bundle = folder / "bundle"
    bundle.mkdir()
    shutil.make_archive(str(folder / "model"), "zip", classes)
    (folder / "model.zip").rename(bundle / "model.jar")
    (bundle / "model.proto").write_text(FAILING_PROTO)
    meta = {"name": "failing", "runtime": "java", "entry_point": "failing.Failing"}
    (bundle / "metadata.json").write_text(json.dumps(meta))
    return bundle


@pytest.fixture(scope="module")
def served(sample_bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    tmp = tmp_path_factory.mktemp("metrics-e2e")
    bundles = [
        str(sample_bundles["iris"]),
        str(write_toy_bundle(tmp / "toy")),
        str(failing_java_bundle(tmp / "failing")),
    ]
    # a separate metrics port too (0: a free one, in the ready file)
    serve = start_serve(
        bundles, tmp, workers=2, threads=4, grpc_processes=2, env_extra={"MODEL_RUNNER_METRICS_PORT": "0"}
    )
    # `serve` is ready once every process's registry serves every model, which a gRPC process reports
    # before its port is bound (runner.grpc.__main__): wait for the port too
    with grpc.insecure_channel(f"127.0.0.1:{serve.info['grpc_port']}") as channel:
        grpc.channel_ready_future(channel).result(timeout=120)
    yield serve
    serve.stop()


# ------------------------------------------------------------------------------------------ helpers


def scrape(serve: Serve, url: str | None = None) -> Samples:
    r = requests.get(url or f"{serve.base}/metrics", timeout=30)
    assert r.status_code == 200, r.text
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


def total(samples: Samples, name: str = "model_runner_requests_total", **labels: str) -> float:
    return sum(v for got, v in samples.get(name, []) if labels.items() <= got.items())


def settled(serve: Serve, reached: Callable[[Samples], bool], what: str) -> Samples:
    """The first scrape where ``reached`` holds (each process writes its counts within 0.1 s)."""
    return wait_for(lambda: (lambda s: s if reached(s) else None)(scrape(serve)), 30, what, interval=0.05)


def pids_of(samples: Samples, name: str) -> set[str]:
    return {labels["pid"] for labels, _ in samples.get(name, [])}


def serving_pids(serve: Serve, kind: str) -> set[int]:
    """The live serving processes of ``kind`` (http, grpc), from their serving records."""
    pids = set()
    for record in (serve.repo / "serving").glob("*.json"):
        try:
            info = json.loads(record.read_text())
        except (OSError, ValueError):
            continue
        if info.get("kind") == kind and alive(int(info["pid"])):
            pids.add(int(info["pid"]))
    return pids


def answering_pids(serve: Serve, process: str, tag: str) -> set[int]:
    """The pids whose access lines carry a request id starting with ``tag``."""
    pattern = re.compile(rf"{process}\[(\d+)\] access: .* request_id={re.escape(tag)}-\d+ ")
    return {int(m.group(1)) for m in pattern.finditer(serve.log_text())}


def spread(send: Callable[[str], None], serve: Serve, process: str, tag: str, pids: set[int]) -> int:
    """Send predictions (8 at a time, each on a new connection, request ids ``tag-N``) until every one
    of ``pids`` has answered some; how many were sent."""
    sent = 0
    with ThreadPoolExecutor(8) as pool:
        for _ in range(100):
            list(pool.map(send, [f"{tag}-{sent + i}" for i in range(8)]))
            sent += 8
            if pids <= answering_pids(serve, process, tag):
                return sent
    pytest.fail(f"{process} processes {pids} did not all answer: {answering_pids(serve, process, tag)}")


def http_predict(serve: Serve) -> Callable[[str], None]:
    def send(request_id: str) -> None:
        r = requests.post(
            f"{serve.base}/models/iris/methods/Classify",
            json=FLOWER,
            headers={"X-Request-Id": request_id, "Connection": "close"},
            timeout=60,
        )
        assert r.status_code == 200, r.text

    return send


def grpc_predict(serve: Serve) -> Callable[[str], None]:
    request = IRIS.input_class("Classify")(**FLOWER).SerializeToString()

    def send(request_id: str) -> None:
        with grpc.insecure_channel(f"127.0.0.1:{serve.info['grpc_port']}") as channel:  # a new connection
            call = channel.unary_unary(f"/{IRIS.full_service_name}/Classify")
            try:
                call(request, metadata=[("x-request-id", request_id)], timeout=60)
            except grpc.RpcError as err:
                raise AssertionError(f"{err}\nserve's log:\n{serve.log_text()[-6000:]}") from err

    return send


def oip_rest_infer(serve: Serve) -> None:
    inputs = [{"name": k, "datatype": "FP64", "shape": [1], "data": [v]} for k, v in FLOWER.items()]
    r = requests.post(f"{serve.base}/v2/models/iris/infer", json={"inputs": inputs}, timeout=60)
    assert r.status_code == 200, r.text


def oip_grpc_infer(serve: Serve) -> None:
    contract = oip_contract()
    request = contract.input_class("ModelInfer")(model_name="iris")
    for name, value in FLOWER.items():
        request.inputs.add(name=name, datatype="FP64", shape=[1]).contents.fp64_contents.append(value)
    with grpc.insecure_channel(f"127.0.0.1:{serve.info['grpc_port']}") as channel:
        call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        try:
            call(request.SerializeToString(), timeout=60)
        except grpc.RpcError as err:
            raise AssertionError(f"{err}\nserve's log:\n{serve.log_text()[-6000:]}") from err


# -------------------------------------------------------------------------------------------- tests


def test_predictions_over_every_process_are_counted_exactly_in_one_scrape_even_past_killed_processes(
    served: Serve,
) -> None:
    http_workers, grpc_processes = serving_pids(served, "http"), serving_pids(served, "grpc")
    assert len(http_workers) == 2 and len(grpc_processes) == 2
    before = scrape(served)

    sent = {
        "http": spread(http_predict(served), served, "http", "count-http", http_workers),
        "grpc": spread(grpc_predict(served), served, "grpc", "count-grpc", grpc_processes),
        "oip-http": 5,
        "oip-grpc": 5,
    }
    for _ in range(5):
        oip_rest_infer(served)
        oip_grpc_infer(served)
    n = sum(sent.values())

    # one scrape: every process's counts
    after = settled(served, lambda s: total(s) - total(before) >= n, f"{n} predictions counted")
    for protocol in PROTOCOLS:
        got = total(after, protocol=protocol) - total(before, protocol=protocol)
        assert got == sent[protocol], (protocol, got, sent)
    assert total(after) - total(before) == n
    ok = {"model": "iris", "version": "1", "outcome": "ok"}
    assert total(after, **ok) - total(before, **ok) == n
    assert (
        total(after, "model_runner_request_duration_seconds_count")
        - total(before, "model_runner_request_duration_seconds_count")
        == n
    )
    assert total(after, "model_runner_serving_processes", process="http") == 2
    assert total(after, "model_runner_serving_processes", process="grpc") == 2
    live = {str(p) for p in http_workers | grpc_processes}
    assert pids_of(after, "model_runner_process_resident_memory_bytes") == live
    for name in ("model_runner_jvm_heap_used_bytes", "model_runner_jvm_metaspace_used_bytes"):
        assert pids_of(after, name) == live, name  # a JVM in every serving process
    assert {labels["gc"] for labels, _ in after["model_runner_jvm_gc_collections"]}  # G1's collectors
    assert pids_of(after, "model_runner_jvm_gc_time_seconds") == live
    assert total(after, "model_runner_model_loads_total", model="iris", outcome="ok") >= 4  # 4 processes
    assert total(after, "model_runner_model_version", model="iris") == 4  # version 1 in each of them
    assert total(after, "model_runner_requests_in_flight") == 0

    # a worker killed: gunicorn replaces it; its counts stay in the sums, its gauges go
    killed = min(http_workers)
    os.kill(killed, signal.SIGKILL)

    def replaced() -> Samples | None:
        samples = scrape(served)
        pids = pids_of(samples, "model_runner_process_resident_memory_bytes")
        workers = serving_pids(served, "http")
        if (
            str(killed) in pids
            or len(workers) != 2
            or killed in workers
            or not {str(p) for p in workers} <= pids
        ):
            return None
        return samples

    later = wait_for(replaced, 300, "the killed worker's replacement", interval=0.5)
    assert total(later) - total(before) == n
    assert total(later, "model_runner_serving_processes", process="http") == 2
    for name in (
        "model_runner_jvm_heap_used_bytes",
        "model_runner_model_version",
        "model_runner_process_threads",
    ):
        assert str(killed) not in pids_of(later, name), name

    # a gRPC process killed: its gauges go, its counts stay, and `serve` starts a fresh one
    killed_grpc = min(grpc_processes)
    os.kill(killed_grpc, signal.SIGKILL)
    gone = settled(
        served,
        lambda s: str(killed_grpc) not in pids_of(s, "model_runner_process_resident_memory_bytes"),
        "the killed gRPC process's gauges to go",
    )
    assert total(gone) - total(before) == n
    fresh = wait_for(
        lambda: (lambda now: now if len(now) == 2 and killed_grpc not in now else None)(
            serving_pids(served, "grpc")
        ),
        120,
        "serve to replace the killed gRPC process",
        interval=0.1,
    )
    replaced = settled(
        served,
        lambda s: (
            total(s, "model_runner_serving_processes", process="grpc") == 2
            and fresh <= {int(p) for p in pids_of(s, "model_runner_process_resident_memory_bytes")}
        ),
        "the fresh gRPC process's gauges",
    )
    assert str(killed_grpc) not in pids_of(replaced, "model_runner_process_resident_memory_bytes")
    assert total(replaced) - total(before) == n
    assert f"gRPC process {killed_grpc} was killed by SIGKILL" in served.log_text()

    # the same figures on the separate metrics port (`serve`'s own thread, not a worker)
    port = served.info["metrics_port"]
    assert isinstance(port, int) and port > 0
    separate = scrape(served, f"http://127.0.0.1:{port}/metrics")
    assert total(separate) == total(scrape(served))

    send = http_predict(served)
    for i in range(4):
        send(f"after-kill-{i}")
    expected = sent["http"] + 4
    last = settled(
        served, lambda s: total(s, protocol="http") - total(before, protocol="http") >= expected, "4 more"
    )
    assert total(last, protocol="http") - total(before, protocol="http") == expected


def test_a_real_prometheus_scrapes_the_counts(served: Serve, tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip(
            "the prometheus binary is not installed (.ci/setup installs Debian's package `prometheus`)"
        )
    before = total(scrape(served), model="iris", outcome="ok")
    send = http_predict(served)
    for i in range(3):
        send(f"prometheus-{i}")
    grpc_predict(served)("prometheus-grpc")
    settled(served, lambda s: total(s, model="iris", outcome="ok") >= before + 4, "4 predictions counted")
    port = _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: model-runner\n    scrape_interval: 1s\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{served.port}']\n"
    )
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        api = f"http://127.0.0.1:{port}/api/v1/query"

        def query(expr: str) -> float | None:
            try:
                r = requests.get(api, params={"query": expr}, timeout=10)
            except requests.ConnectionError:
                assert proc.poll() is None, log.read_text()[-3000:]
                return None
            result = r.json()["data"]["result"] if r.status_code == 200 else []
            return float(result[0]["value"][1]) if result else None

        wait_for(
            lambda: query('up{job="model-runner"}') == 1, 120, "Prometheus to scrape serve", interval=0.5
        )
        expr = 'sum(model_runner_requests_total{model="iris",outcome="ok"})'
        ours = total(scrape(served), model="iris", outcome="ok")  # nothing is sent meanwhile: it stands
        assert ours >= 4
        got = wait_for(
            lambda: query(expr) == ours or None, 60, f"Prometheus's {expr} to be {ours}", interval=0.5
        )
        assert got
        by_protocol = 'sum by (protocol) (model_runner_requests_total{model="iris"})'
        r = requests.get(api, params={"query": by_protocol}, timeout=10).json()["data"]["result"]
        theirs = {row["metric"]["protocol"]: float(row["value"][1]) for row in r}
        mine = scrape(served)
        assert theirs == {p: total(mine, model="iris", protocol=p) for p in theirs} and "grpc" in theirs
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_request_ids_reach_the_access_lines_and_the_model_error_logs(served: Serve) -> None:
    # HTTP: given, echoed, in the access line and in the log line of the model's error
    r = requests.post(
        f"{served.base}/models/failing/methods/Say",
        json={"text": "boom"},
        headers={"X-Request-Id": "e2e-java-http"},
        timeout=60,
    )
    assert r.status_code == 500 and r.headers["X-Request-Id"] == "e2e-java-http"
    assert r.json()["error"]["detail"]["request_id"] == "e2e-java-http"
    r = requests.post(
        f"{served.base}/models/toy/methods/Echo",
        json={"text": "boom"},
        headers={"X-Request-Id": "e2e-python-http"},
        timeout=60,
    )
    assert r.status_code == 500 and r.headers["X-Request-Id"] == "e2e-python-http"
    r = requests.get(f"{served.base}/healthz", timeout=30)
    generated = r.headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{16}", generated)

    # gRPC: metadata in, trailing metadata out, the same lines
    request = Contract.compile(FAILING_PROTO).input_class("Say")(text="boom").SerializeToString()
    with grpc.insecure_channel(f"127.0.0.1:{served.info['grpc_port']}") as channel:
        with pytest.raises(grpc.RpcError) as raised:
            channel.unary_unary("/failing.Failing/Say")(
                request, metadata=[("x-request-id", "e2e-java-grpc")], timeout=60
            )
    assert raised.value.code() == grpc.StatusCode.INTERNAL  # type: ignore[attr-defined]
    assert dict(raised.value.trailing_metadata())["x-request-id"] == "e2e-java-grpc"  # type: ignore[attr-defined]

    def logged() -> bool:
        text = served.log_text()
        return all(
            re.search(pattern, text)
            for pattern in (
                # access lines: method, path, status, duration, model, version, request id
                r"http\[\d+\] access: POST /models/failing/methods/Say 500 [0-9.]+ms model=failing "
                r"version=1 request_id=e2e-java-http protocol=http",
                r"http\[\d+\] access: POST /models/toy/methods/Echo 500 [0-9.]+ms model=toy version=1 "
                r"request_id=e2e-python-http protocol=http",
                rf"http\[\d+\] access: GET /healthz 200 [0-9.]+ms model=- version=- request_id={generated} ",
                r"grpc\[\d+\] access: gRPC /failing\.Failing/Say INTERNAL [0-9.]+ms model=failing version=1 "
                r"request_id=e2e-java-grpc protocol=grpc",
                # the model error log lines: the Java runtime's (with the Java stack), the HTTP edge's
                r"\[model=failing version=1 pid=\d+\] request e2e-java-http: .*asked to fail",
                r"\[model=failing version=1 pid=\d+\] request e2e-java-grpc: .*asked to fail",
                r"request e2e-python-http answered 500 model_error",
            )
        )

    wait_for(logged, 30, "the access and error lines", describe=lambda: served.log_text()[-5000:])


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

"""runner.serving.metrics: what a prediction is counted as, and the figures of several processes read
whole from one folder (prometheus_client's multiprocess mode, in real forked processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from runner.errors import BadInput, NotFound
from runner.serving import metrics
from runner.serving.access import AccessLog, accepted_id, begin_access, end_access

Samples = dict[str, list[tuple[dict[str, str], float]]]


def scrape(text: str | None = None) -> Samples:
    if text is None:
        text = metrics.render()[0].decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return sum(v for got, v in samples.get(name, []) if labels.items() <= got.items())


def test_a_prediction_is_counted_once_under_the_labels_the_data_plane_gave() -> None:
    labels = {"model": "m-count", "version": "3", "method": "Run", "protocol": "grpc"}
    before = scrape()
    with metrics.track("grpc"):
        metrics.serving("m-count", 3)
        with metrics.track("http"):  # nested (the data plane under an edge that tracks): the outer counts
            metrics.serving("m-count", 3, "Run")
            flying = scrape()
    after = scrape()
    assert value(flying, "model_runner_requests_in_flight", **labels) == 1
    assert value(after, "model_runner_requests_in_flight", **labels) == 0
    assert value(after, "model_runner_requests_total", **labels, outcome="ok") == (
        value(before, "model_runner_requests_total", **labels, outcome="ok") + 1
    )
    assert value(after, "model_runner_requests_total", model="m-count", protocol="http") == 0
    assert value(after, "model_runner_request_duration_seconds_count", **labels, outcome="ok") >= 1


def test_unknown_models_and_methods_never_become_labels() -> None:
    unknown = {"model": "unknown", "version": "unknown", "method": "unknown", "protocol": "oip-http"}
    before = value(scrape(), "model_runner_requests_total", **unknown, outcome="not_found")
    with pytest.raises(NotFound), metrics.track("oip-http"):
        raise NotFound("no model 'made-up-name'")
    with pytest.raises(BadInput), metrics.track("oip-http"):
        metrics.serving("m-known", 1)  # a served model, but no method of it named
        raise BadInput("no method 'MadeUp'")
    metrics.refused("oip-http", NotFound("x"))
    samples = scrape()
    assert value(samples, "model_runner_requests_total", **unknown, outcome="not_found") == before + 2
    known = {"model": "m-known", "version": "1", "method": "unknown", "outcome": "bad_input"}
    assert value(samples, "model_runner_requests_total", **known) >= 1
    assert "made-up-name" not in metrics.render()[0].decode() and "MadeUp" not in metrics.render()[0].decode()


def test_the_access_record_gets_the_version_that_answered() -> None:
    access, token = begin_access()
    try:
        with metrics.track("http"):
            metrics.serving("m-access", 7, "Run")
    finally:
        end_access(token)
    assert (access.model, access.version) == ("m-access", 7)


@pytest.mark.parametrize(
    ("given", "kept"),
    [("abc-1.2:3_4", True), ("x" * 64, True), ("x" * 65, False), ("", False), ("a b", False), ("é", False)],
)
def test_accepted_request_ids(given: str, kept: bool) -> None:
    assert (accepted_id(given) == given) is kept
    assert (accepted_id(given.encode("utf-8")) == given) is kept


def test_access_lines(tmp_path: Path) -> None:
    out = tmp_path / "access.log"
    with out.open("w") as stream:
        for fmt in ("text", "json", "off"):
            access_log = AccessLog(fmt, "grpc", stream)
            access_log.write(
                protocol="grpc",
                method="gRPC",
                path="/pkg.Svc/Run ü",
                model=None,
                version=None,
                status="NOT_FOUND",
                seconds=0.0123,
                request_id="id-1",
            )
            access_log.flush()
    text, doc = out.read_text().splitlines()
    assert text.endswith(
        f"grpc[{os.getpid()}] access: gRPC /pkg.Svc/Run%20%C3%BC NOT_FOUND 12.30ms model=- version=- "
        "request_id=id-1 protocol=grpc"
    )
    parsed = json.loads(doc)
    assert parsed["path"] == "/pkg.Svc/Run ü" and parsed["status"] == "NOT_FOUND"
    assert parsed["model"] is None and parsed["duration_ms"] == 12.3 and parsed["pid"] == os.getpid()


# Three processes of one "service": two forked children count predictions and sample their own gauges;
# the parent reads the folder whole, then one child is killed (SIGKILL) and marked ended.
MULTIPROCESS = textwrap.dedent(
    """
    import json, os, signal, sys, time
    from runner.serving import metrics

    def child(n, hold):
        for _ in range(n):
            with metrics.track("http"):
                metrics.serving("iris", 1, "Classify")
        metrics.sample_process("http")
        metrics.flush()
        os.write(hold, b"x")  # counted, sampled and written
        time.sleep(60)

    pids = []
    for n in (3, 4):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            child(n, w)
        pids.append(pid)
        os.read(r, 1)
    whole = metrics.render()[0].decode()
    os.kill(pids[0], signal.SIGKILL)
    os.waitpid(pids[0], 0)
    metrics.process_ended(pids[0])
    after = metrics.render()[0].decode()
    os.kill(pids[1], signal.SIGKILL)
    os.waitpid(pids[1], 0)
    print(json.dumps({"pids": pids, "whole": whole, "after": after}))
    """
)


def test_several_processes_are_read_whole_and_a_dead_ones_gauges_go(tmp_path: Path) -> None:
    env = {**os.environ, metrics.MULTIPROC_ENV: str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", MULTIPROCESS], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    dead, alive = (str(p) for p in out["pids"])
    whole, after = scrape(out["whole"]), scrape(out["after"])
    ok = {"model": "iris", "version": "1", "method": "Classify", "protocol": "http", "outcome": "ok"}
    assert value(whole, "model_runner_requests_total", **ok) == 7
    assert value(whole, "model_runner_request_duration_seconds_count", **ok) == 7
    assert value(whole, "model_runner_serving_processes", process="http") == 2
    assert {labels["pid"] for labels, _ in whole["model_runner_process_resident_memory_bytes"]} == {
        dead,
        alive,
    }
    # the killed one: its counts stay, its gauges go
    assert value(after, "model_runner_requests_total", **ok) == 7
    assert value(after, "model_runner_serving_processes", process="http") == 1
    assert {labels["pid"] for labels, _ in after["model_runner_process_resident_memory_bytes"]} == {alive}


def test_a_fresh_folder_per_serve_and_the_folders_of_ended_ones_wiped(tmp_path: Path) -> None:
    script = (
        "import os, sys; from runner.serving import metrics; "
        "folder = metrics.prepare_multiprocess(__import__('pathlib').Path(sys.argv[1])); "
        "print(folder, os.environ[metrics.MULTIPROC_ENV], os.getpid())"
    )
    gone = tmp_path / "999999999"  # a serve that has ended
    gone.mkdir()
    (gone / "counter_1.db").write_bytes(b"")
    live = tmp_path / str(os.getpid())  # a serve still running
    live.mkdir()
    (live / "counter_1.db").write_bytes(b"")
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, check=True, timeout=60
    )
    folder, env_value, pid = proc.stdout.split()
    assert folder == env_value == str(tmp_path / pid)
    assert list(Path(folder).iterdir()) == []
    assert not gone.exists() and (live / "counter_1.db").exists()


def test_access_lines_of_several_processes_never_mix_on_a_pipe() -> None:
    class Writes:
        def __init__(self) -> None:
            self.writes: list[str] = []

        def write(self, text: str) -> None:
            self.writes.append(text)

        def flush(self) -> None:
            pass

    stream = Writes()
    access_log = AccessLog("text", "http", stream)  # type: ignore[arg-type]
    for i in range(200):
        access_log.write(
            protocol="http",
            method="POST",
            path=f"/models/m/methods/Run-{i}",
            model="m",
            version=1,
            status=200,
            seconds=0.001,
            request_id=f"id-{i}",
        )
    access_log.flush()
    assert len(stream.writes) > 1
    for chunk in stream.writes:  # each write: whole lines, at most PIPE_BUF bytes (atomic on a pipe)
        assert chunk.endswith("\n") and len(chunk.encode()) <= 4096
    lines = "".join(stream.writes).splitlines()
    assert [line.split("request_id=")[1].split()[0] for line in lines] == [f"id-{i}" for i in range(200)]


def test_loads_swaps_and_versions_of_a_registry_are_counted(tmp_path: Path) -> None:
    from runner.serving.loading import BundleLoader
    from runner.serving.registry import Registry
    from runner.settings import Settings
    from runner.store import Repository
    from tests.runner.repo_helpers import write_echo_bundle
    from tests.waiting import wait_for

    name = "metrics-swapped"
    repository = Repository(tmp_path / "repo")

    def publish(label: str, **kw: str) -> int:
        src = write_echo_bundle(tmp_path / f"src-{label}", label, name=name, **kw)
        return repository.publish(name, src, expected_version=None, caller="test")

    before = scrape()
    publish("v1")
    registry = Registry(repository, BundleLoader(Settings()), process_kind="grpc", poll_interval=0.05)
    registry.start()
    try:
        publish("v2")
        wait_for(lambda: registry.snapshot()[name].version == 2, what="version 2 served")
        publish("broken", init_code="raise RuntimeError('no')")
        wait_for(lambda: name in registry.load_errors(), what="version 3 failing to load")
        after = scrape()
    finally:
        registry.stop()

    def delta(metric: str, **labels: str) -> float:
        return value(after, metric, model=name, **labels) - value(before, metric, model=name, **labels)

    assert delta("model_runner_model_loads_total", outcome="ok") == 2
    assert delta("model_runner_model_load_duration_seconds_count", outcome="ok") == 2
    assert (
        sum(
            v
            for labels, v in after["model_runner_model_loads_total"]
            if labels["model"] == name and labels["outcome"] != "ok"
        )
        == 1
    )
    assert delta("model_runner_model_swaps_total") == 1  # v1 -> v2; the broken v3 never served
    assert delta("model_runner_model_swap_duration_seconds_count") == 1
    assert value(after, "model_runner_model_version", model=name, process="grpc") == 2

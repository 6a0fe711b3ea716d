"""`serve --http-server granian` for real: granian's WSGI workers (each with its own registry and JVM,
built after the fork) answer predictions, a swap is acknowledged only once every worker serves the new
version, the access log has its lines, and SIGTERM drains a request in flight."""

from __future__ import annotations

import json
import re
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from runner.bundle import write_bundle_zip
from tests.e2e.serve_process import Serve, children_of, start_serve
from tests.e2e.toy import calls_entered, slow_call_in_background, write_signalling_toy_bundle
from tests.waiting import wait_for

pytest.importorskip("granian")

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(400)]

FLOWER = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
WORKERS = 2


@pytest.fixture(scope="module")
def served(sample_bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    tmp = tmp_path_factory.mktemp("granian")
    toy = write_signalling_toy_bundle(tmp / "toy", tmp / "entered")
    server = start_serve(
        [str(sample_bundles["iris"]), str(toy), "--http-server", "granian"], tmp, workers=WORKERS, threads=4
    )
    server.entered = tmp / "entered"  # type: ignore[attr-defined]
    yield server
    server.stop()


def _http_records(repo: Path) -> list[dict[str, Any]]:
    records = []
    for path in (repo / "serving").glob("*.json"):
        try:
            records.append(json.loads(path.read_text()))
        except FileNotFoundError:
            continue  # a worker that stopped meanwhile
    return [r for r in records if r.get("kind") == "http"]


def _classify(served: Serve, session: requests.Session) -> requests.Response:
    return session.post(f"{served.base}/models/iris/methods/Classify", json=FLOWER, timeout=30)


def test_predictions_answer_from_every_worker_with_its_own_registry(served: Serve) -> None:
    session = requests.Session()
    r = _classify(served, session)
    assert r.status_code == 200, r.text
    assert r.headers["X-Model-Name"] == "iris" and r.headers["X-Request-Id"]
    assert "species" in r.json()
    # the registries (and JVMs) live in the workers, never in serve itself
    records = _http_records(served.repo)
    assert len(records) == WORKERS
    pids = {int(r["pid"]) for r in records}
    assert served.proc.pid not in pids
    assert pids <= set(children_of(served.proc.pid))


def test_a_swap_is_acknowledged_once_every_worker_serves_it(
    served: Serve, sample_bundles: dict[str, Path]
) -> None:
    zips = {"v2": write_bundle_zip(sample_bundles["iris-v2"]), "v1": write_bundle_zip(sample_bundles["iris"])}
    headers = {**served.auth, "Content-Type": "application/zip"}
    for flip in ("v2", "v1", "v2"):
        put = requests.put(f"{served.base}/models/iris", data=zips[flip], headers=headers, timeout=120)
        assert put.status_code in (200, 201), put.text
        version = str(put.json()["version"])
        # fresh connections each: spread over both workers, and never the old version once acknowledged
        seen = {
            requests.post(f"{served.base}/models/iris/methods/Classify", json=FLOWER, timeout=30).headers[
                "X-Model-Version"
            ]
            for _ in range(60)
        }
        assert seen == {version}, (flip, seen)


def _iris_requests_counted(served: Serve) -> float:
    scrape = requests.get(f"{served.base}/metrics", timeout=30)
    assert scrape.status_code == 200
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in scrape.text.splitlines()
        if line.startswith("model_runner_requests_total{") and 'model="iris"' in line
    )


def test_metrics_count_the_calls_of_every_worker(served: Serve) -> None:
    before = _iris_requests_counted(served)
    for _ in range(40):  # fresh connections: both workers answer some
        assert _classify(served, requests.Session()).status_code == 200
    # each worker writes its counts at least every second (and the one answering the scrape, first)
    wait_for(lambda: _iris_requests_counted(served) >= before + 40, 30, "every worker's calls counted")


def test_access_log_lines(served: Serve) -> None:
    r = requests.post(
        f"{served.base}/models/iris/methods/Classify",
        json=FLOWER,
        headers={"X-Request-Id": "granian-access-1"},
        timeout=30,
    )
    assert r.status_code == 200 and r.headers["X-Request-Id"] == "granian-access-1"
    line = re.compile(
        r"http\[\d+\] access: POST /models/iris/methods/Classify 200 [\d.]+ms model=iris "
        r"version=\d+ request_id=granian-access-1"
    )
    wait_for(lambda: line.search(served.log_text()) is not None, 30, "the access log line")


def test_sighup_replaces_every_worker_without_a_failed_request(served: Serve) -> None:
    """SIGHUP: each worker is replaced by a fresh one (fresh JVM), the old one stopping only once the
    new one serves; calls made all along all succeed."""
    before = {int(r["pid"]) for r in _http_records(served.repo)}
    outcomes: dict[str, int] = {"ok": 0, "failed": 0}
    errors: list[str] = []
    done = threading.Event()

    def calls() -> None:
        session = requests.Session()
        while not done.is_set():
            try:
                ok = _classify(served, session).status_code == 200
            except requests.RequestException as err:
                errors.append(repr(err))
                ok = False
            outcomes["ok" if ok else "failed"] += 1

    callers = [threading.Thread(target=calls) for _ in range(4)]
    for caller in callers:
        caller.start()
    try:
        wait_for(lambda: outcomes["ok"] > 50, 30, "calls to flow")
        served.proc.send_signal(signal.SIGHUP)

        def replaced() -> bool:
            pids = {int(r["pid"]) for r in _http_records(served.repo)}
            return len(pids) == WORKERS and not pids & before

        wait_for(replaced, 240, "every worker to be replaced", describe=lambda: served.log_text()[-3000:])
        checked = outcomes["ok"]
        wait_for(lambda: outcomes["ok"] > checked + 50, 30, "calls to flow on the fresh workers")
    finally:
        done.set()
        for caller in callers:
            caller.join(timeout=60)
    assert outcomes["failed"] == 0, (outcomes, errors[:5])


def test_sigterm_drains_a_slow_request_in_flight(served: Serve) -> None:
    """Runs last in this module: a request in flight when SIGTERM arrives is answered; exit 0."""
    answer: dict[str, Any] = {}

    entered_dir: Path = served.entered  # type: ignore[attr-defined]
    entered = calls_entered(entered_dir)
    caller = slow_call_in_background(served.base, answer)
    wait_for(lambda: calls_entered(entered_dir) > entered, 30, "the slow call to enter the toy model")
    assert served.stop() == 0, served.log_text()[-4000:]
    caller.join(timeout=30)
    assert answer == {"status": 200, "body": {"value": 2.0}}
    assert _http_records(served.repo) == []

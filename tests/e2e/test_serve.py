"""End to end: the real `model-runner serve` in a subprocess (gunicorn, 2 workers, one JVM each, a gRPC
process), the sample bundles, predictions, swaps under load, proto swaps, broken bundles, SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from runner.bundle import write_bundle_zip
from runner.contract import Contract
from tests.e2e.toy import calls_entered, slow_call_in_background, write_signalling_toy_bundle
from tests.http.conftest import write_toy_bundle
from tests.http.test_app import narrowed_bundle
from tests.waiting import wait_for

# every test starts (or shares) a real `serve`: up to 300 s to be ready on a cold machine
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
IRIS_PROTO = (ROOT / "protos" / "iris.proto").read_text()
FLOWER = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
V1_LABELS = {"setosa", "versicolor", "virginica"}
V2_LABELS = {"Iris-setosa", "Iris-versicolor", "Iris-virginica"}
PB = "application/x-protobuf"


class Served:
    """A running `model-runner serve` and what a test needs to talk to it."""

    def __init__(self, proc: subprocess.Popen[bytes], repo: Path, info: dict[str, Any], log: Path) -> None:
        self.proc = proc
        self.repo = repo
        self.info = info
        self.log = log
        self.base = f"http://127.0.0.1:{info['http_port']}"
        self.token = Path(info["token_file"]).read_text().strip()
        self.session = requests.Session()

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def predict(self, model: str, method: str, body: Any, **kw: Any) -> requests.Response:
        return self.session.post(f"{self.base}/models/{model}/methods/{method}", json=body, timeout=60, **kw)

    def put_bundle(
        self, name: str, folder: Path, *, allow_breaking: bool = False, **headers: str
    ) -> requests.Response:
        params = {"allow_breaking": "true"} if allow_breaking else {}
        return self.session.put(
            f"{self.base}/models/{name}",
            data=write_bundle_zip(folder),
            params=params,
            headers={**self.auth, "Content-Type": "application/zip", **headers},
            timeout=120,
        )

    def current(self, name: str) -> int:
        r = self.session.get(f"{self.base}/models/{name}/versions", timeout=30)
        assert r.status_code == 200, r.text
        return int(r.json()["version"])

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _start(
    args: list[str], tmp: Path, env_extra: dict[str, str] | None = None, timeout: float = 300
) -> Served:
    repo = tmp / "repo"
    ready = tmp / "ready.json"
    log = tmp / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_RUNNER_")}
    env.update(env_extra or {})
    cmd = [
        sys.executable,
        "-m",
        "runner",
        "serve",
        *args,
        "--repo",
        str(repo),
        "--http-port",
        "0",
        "--grpc-port",
        "0",
        "--grpc-processes",
        "2",
        "--workers",
        "2",
        "--threads",
        "4",
        "--ready-file",
        str(ready),
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp)
    try:
        wait_for(
            lambda: ready.exists() or proc.poll() is not None,
            timeout,
            "serve to write its ready file",
            interval=0.1,
            describe=lambda: log.read_text(errors="replace")[-6000:],
        )
    except BaseException:  # a failed wait or a test timeout: leave no server behind
        proc.kill()
        proc.wait()
        raise
    if not ready.exists():
        pytest.fail(f"serve exited with {proc.returncode}:\n{log.read_text(errors='replace')[-6000:]}")
    return Served(proc, repo, json.loads(ready.read_text()), log)


def _stop(served: Served) -> int:
    if served.proc.poll() is None:
        served.proc.send_signal(signal.SIGTERM)
        try:
            return served.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            served.proc.kill()
            served.proc.wait()
            pytest.fail("serve did not exit within 90 s of SIGTERM")
        except BaseException:  # the test's timeout struck: leave no server behind
            served.proc.kill()
            served.proc.wait()
            raise
    return served.proc.returncode


@pytest.fixture(scope="module")
def served(sample_bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    wanted = [n for n in ("iris", "iris-proto", "weka", "iris-python") if n in sample_bundles]
    assert "iris" in wanted and "iris-v2" in sample_bundles, f"samples missing: {sorted(sample_bundles)}"
    tmp = tmp_path_factory.mktemp("serve")
    # a Python model that can sleep (for the SIGTERM drain) and says when a call has entered it
    toy = write_signalling_toy_bundle(tmp / "toy", tmp / "entered")
    server = _start([*(str(sample_bundles[n]) for n in wanted), str(toy)], tmp)
    server.samples = wanted  # type: ignore[attr-defined]
    server.entered = tmp / "entered"  # type: ignore[attr-defined]
    yield server
    _stop(server)


# ------------------------------------------------------------------------------------------ basics


def test_banner_token_and_ready(served: Served) -> None:
    log = served.log_text()
    assert "model-runner ready: " + served.base in log
    assert "curl -s -H 'Content-Type: application/json'" in log
    assert str(served.repo) in log
    token_file = Path(served.info["token_file"])
    assert token_file.parent == served.repo
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    r = served.session.get(f"{served.base}/readyz", timeout=10)
    assert r.status_code == 200 and r.json()["ready"] is True
    kinds = sorted(rec["kind"] for rec in _serving_records(served.repo))
    assert kinds == ["grpc", "grpc", "http", "http"]


def _serving_records(repo: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in (repo / "serving").glob("*.json")]


def test_json_and_protobuf_predictions_for_each_sample(served: Served) -> None:
    contract = Contract.compile(IRIS_PROTO)
    request_pb = contract.input_class("Classify")(**FLOWER).SerializeToString()
    for name in served.samples:  # type: ignore[attr-defined]
        r = served.predict(name, "Classify", FLOWER)
        assert r.status_code == 200, (name, r.text)
        assert r.headers["X-Model-Name"] == name
        assert int(r.headers["X-Model-Version"]) >= 1
        assert r.headers["Content-Type"].startswith("application/json")
        species = r.json()["species"]
        assert species.lower().endswith("setosa"), (name, species)

        r = served.session.post(
            f"{served.base}/models/{name}/methods/Classify",
            data=request_pb,
            headers={"Content-Type": PB},
            timeout=60,
        )
        assert r.status_code == 200, (name, r.text)
        assert r.headers["Content-Type"].startswith(PB)
        assert r.headers["X-Model-Name"] == name
        out = contract.output_class("Classify").FromString(r.content)
        assert out.species == species

        batch = {
            "rows": [
                FLOWER,
                {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3},
            ]
        }
        r = served.predict(name, "ClassifyBatch", batch)
        assert r.status_code == 200, (name, r.text)
        assert len(r.json()["predictions"]) == 2


def test_content_negotiation_and_errors_through_gunicorn(served: Served) -> None:
    contract = Contract.compile(IRIS_PROTO)
    r = served.predict("iris", "Classify", FLOWER, headers={"Accept": PB})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith(PB)
    assert contract.output_class("Classify").FromString(r.content).species == "setosa"
    r = served.session.post(
        f"{served.base}/models/iris/methods/Classify",
        data=contract.input_class("Classify")(**FLOWER).SerializeToString(),
        headers={"Content-Type": "application/vnd.google.protobuf", "Accept": "application/json"},
    )
    assert r.status_code == 200 and r.json()["species"] == "setosa"

    cases = [
        (served.predict("nope", "Classify", FLOWER), 404, "not_found"),
        (served.predict("iris", "Nope", FLOWER), 404, "method_not_found"),
        (served.predict("iris", "Classify", {"sepal_length": "many"}), 400, "bad_input"),
        (
            served.session.post(
                f"{served.base}/models/iris/methods/Classify",
                data="x",
                headers={"Content-Type": "text/plain"},
            ),
            415,
            "unsupported_media",
        ),
        (
            served.predict("iris", "Classify", FLOWER, headers={"Accept": "text/html"}),
            415,
            "unsupported_media",
        ),
        (served.session.delete(f"{served.base}/models/iris"), 401, "unauthenticated"),
        (
            served.session.delete(f"{served.base}/models/iris", headers={"Authorization": "Bearer wrong"}),
            403,
            "forbidden",
        ),
    ]
    for response, status, kind in cases:
        assert response.status_code == status, response.text
        assert response.json()["error"]["kind"] == kind
        assert response.json()["error"]["message"]


# ------------------------------------------------------------------------------------------ swaps

# Calls continuously from 3 threads until stop_file exists; the first answer from each version leaves
# a file named after the version in seen_dir (the test's signal that the client has been served by it).
LOAD_CLIENT = textwrap.dedent("""
    import json, sys, threading, time, os
    import requests
    url, out, stop_file, seen_dir = sys.argv[1:5]
    body = json.dumps({"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2})
    results, lock, seen = [], threading.Lock(), set()
    def loop():
        s = requests.Session()
        mine = []
        while not os.path.exists(stop_file):
            t0 = time.monotonic()
            try:
                r = s.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=60)
                t1 = time.monotonic()
                species = r.json().get("species") if r.status_code == 200 else None
                version = r.headers.get("X-Model-Version")
                mine.append([t0, t1, r.status_code, version, species, r.text[:300]])
                if r.status_code == 200 and version not in seen:
                    with lock:
                        if version not in seen:
                            seen.add(version)
                            open(os.path.join(seen_dir, version), "w").close()
            except Exception as e:
                mine.append([t0, time.monotonic(), -1, None, None, repr(e)[:300]])
        with lock:
            results.extend(mine)
    threads = [threading.Thread(target=loop) for _ in range(3)]
    for t in threads: t.start()
    for t in threads: t.join()
    with open(out, "w") as f:
        json.dump(results, f)
""")


def test_swap_under_load(served: Served, sample_bundles: dict[str, Path], tmp_path: Path) -> None:
    """iris -> iris-v2 -> iris ... 20 times each way while a client process calls iris continuously."""
    out, stop_file, seen = tmp_path / "results.json", tmp_path / "stop", tmp_path / "seen"
    seen.mkdir()
    v0 = served.current("iris")
    families = {v0: "v1"}
    client = subprocess.Popen(
        [
            sys.executable,
            "-c",
            LOAD_CLIENT,
            f"{served.base}/models/iris/methods/Classify",
            str(out),
            str(stop_file),
            str(seen),
        ]
    )
    swaps: list[tuple[float, float, int]] = []  # (request sent, 200 received, new version)

    def client_served_by(version: int) -> None:
        def answered() -> bool:
            assert client.poll() is None, "the load client exited"
            return (seen / str(version)).exists()

        wait_for(answered, 60, f"the load client's first answer from version {version}")

    try:
        client_served_by(v0)
        zips = {
            "v2": write_bundle_zip(sample_bundles["iris-v2"]),
            "v1": write_bundle_zip(sample_bundles["iris"]),
        }
        for i in range(40):
            family = "v2" if i % 2 == 0 else "v1"
            t0 = time.monotonic()
            r = served.session.put(
                f"{served.base}/models/iris",
                data=zips[family],
                headers={**served.auth, "Content-Type": "application/zip"},
                timeout=120,
            )
            t1 = time.monotonic()
            assert r.status_code == 200, r.text
            version = int(r.json()["version"])
            assert version not in families, "every upload is a new version"
            families[version] = family
            swaps.append((t0, t1, version))
            client_served_by(version)  # the client gets answers from every version before the next swap
    finally:
        stop_file.touch()
        client.wait(timeout=120)
    results = json.loads(out.read_text())
    assert len(results) > 100, "the client kept calling during the swaps"
    failures = [r for r in results if r[2] != 200]
    assert not failures, f"{len(failures)} non-2xx answers, e.g. {failures[:3]}"

    # version k may answer from when its upload was sent until the next upload's 200
    windows = {v0: (float("-inf"), swaps[0][1])}
    for k, (t0, _t1, version) in enumerate(swaps):
        end = swaps[k + 1][1] if k + 1 < len(swaps) else float("inf")
        windows[version] = (t0, end)
    for start, end, _status, version_header, species, _text in results:
        version = int(version_header)
        lo, hi = windows[version]
        assert end > lo and start < hi, (
            f"answer [{start:.3f}, {end:.3f}] by version {version}, current only during [{lo:.3f}, {hi:.3f}]"
        )
        assert species in (V2_LABELS if families[version] == "v2" else V1_LABELS), (version, species)
    served_versions = {int(r[3]) for r in results}
    assert len(served_versions) > 10, "answers came from many of the swapped versions"


def test_proto_only_swap_adds_a_method_on_every_worker(
    served: Served, sample_bundles: dict[str, Path], tmp_path: Path
) -> None:
    base, auth = served.base, served.auth
    # a breaking change (field renumbered) is refused without the flag, with the report
    before = served.current("iris")
    renumbered = IRIS_PROTO.replace("double sepal_width = 2;", "double sepal_width = 5;")
    r = served.session.put(
        f"{base}/models/iris/proto", data=renumbered, headers={**auth, "Content-Type": "text/plain"}
    )
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["kind"] == "conflict" and "sepal_width" in json.dumps(error)
    assert served.current("iris") == before

    # a version without ClassifyMatrix ...
    r = served.put_bundle(
        "iris", narrowed_bundle(sample_bundles["iris"], tmp_path / "narrow"), allow_breaking=True
    )
    assert r.status_code == 200, r.text
    narrowed = int(r.json()["version"])
    matrix = {"rows": [{"values": [5.1, 3.5, 1.4, 0.2]}, {"values": [6.7, 3.0, 5.2, 2.3]}]}
    for _ in range(20):  # fresh connections, spread over both workers
        r = requests.post(
            f"{base}/models/iris/methods/ClassifyMatrix", json=matrix, headers={"Connection": "close"}
        )
        assert r.status_code == 404 and r.json()["error"]["kind"] == "method_not_found"
        assert r.headers["X-Model-Version"] == str(narrowed)

    # ... then a proto-only swap adds it back: not breaking, no flag, every worker serves it at once
    r = served.session.put(
        f"{base}/models/iris/proto", files={"proto": ("model.proto", IRIS_PROTO)}, headers=auth
    )
    assert r.status_code == 200, r.text
    widened = int(r.json()["version"])
    assert widened > narrowed and len(r.json()["served_by"]) == 4  # 2 HTTP workers, 2 gRPC processes
    for _ in range(20):
        r = requests.post(
            f"{base}/models/iris/methods/ClassifyMatrix", json=matrix, headers={"Connection": "close"}
        )
        assert r.status_code == 200, r.text
        assert r.json()["indices"] == [0, 2]
        assert r.headers["X-Model-Version"] == str(widened)
    records = _serving_records(served.repo)
    assert len(records) == 4 and all(rec["models"]["iris"] == widened for rec in records)
    r = served.session.get(f"{base}/models/iris/proto")
    assert "ClassifyMatrix" in r.text and r.headers["X-Model-Version"] == str(widened)
    paths = served.session.get(f"{base}/openapi.json").json()["paths"]
    assert "/models/iris/methods/ClassifyMatrix" in paths


def _copy(folder: Path, tmp: Path, name: str) -> Path:
    dest = tmp / name
    shutil.copytree(folder, dest)
    return dest


def test_broken_bundles_are_refused_and_nothing_changes(
    served: Served, sample_bundles: dict[str, Path], tmp_path: Path
) -> None:
    iris = sample_bundles["iris"]
    bad_jar = _copy(iris, tmp_path, "bad-jar")
    (bad_jar / "model.jar").write_bytes(b"this is not a zip file")
    bad_proto = _copy(iris, tmp_path, "bad-proto")
    (bad_proto / "model.proto").write_text(IRIS_PROTO.replace("message IrisBatch {", "message IrisBatch {{"))
    failing = write_toy_bundle(tmp_path / "failing-self-test")
    meta = json.loads((failing / "metadata.json").read_text())
    meta["examples"] = {"Echo": [{"text": "boom"}]}  # the toy model raises on this example
    (failing / "metadata.json").write_text(json.dumps(meta))

    cases = (
        ("iris", bad_jar, "invalid_bundle", "jar"),
        ("iris", bad_proto, "invalid_contract", "line"),
        ("toy", failing, "invalid_bundle", "asked to fail"),
    )
    for name, folder, kind, words in cases:
        versions_before = served.session.get(f"{served.base}/models/{name}/versions").json()
        history_before = served.session.get(f"{served.base}/models/{name}/history").json()["history"]
        r = served.put_bundle(name, folder)
        assert r.status_code == 422, (folder.name, r.text)
        error = r.json()["error"]
        assert error["kind"] == kind, (folder.name, error)
        assert words.lower() in json.dumps(error).lower(), (folder.name, error)
        assert served.session.get(f"{served.base}/models/{name}/versions").json() == versions_before
        assert served.session.get(f"{served.base}/models/{name}/history").json()["history"] == history_before
        body = FLOWER if name == "iris" else {"text": "hi"}
        p = served.predict(name, "Classify" if name == "iris" else "Echo", body)
        assert p.status_code == 200 and p.headers["X-Model-Version"] == str(versions_before["version"])
        assert [e for e in os.listdir(served.repo / "staging") if not e.endswith(".lock")] == []


def test_rollback_and_if_match(served: Served) -> None:
    base, auth = served.base, served.auth
    current = served.current("iris")
    r = served.session.post(f"{base}/models/iris/rollback", headers={**auth, "If-Match": str(current + 100)})
    assert r.status_code == 412 and r.json()["error"]["kind"] == "precondition_failed"
    r = served.session.post(f"{base}/models/iris/rollback", headers={**auth, "If-Match": f'"{current}"'})
    assert r.status_code == 200, r.text
    back = int(r.json()["version"])
    assert back != current
    p = served.predict("iris", "Classify", FLOWER)
    assert p.headers["X-Model-Version"] == str(back)


def test_sigterm_drains_and_stops_cleanly(served: Served) -> None:
    """Runs last in this module: a request in flight when SIGTERM arrives is answered; exit 0; records gone."""
    answer: dict[str, Any] = {}

    entered = calls_entered(served.entered)  # type: ignore[attr-defined]
    caller = slow_call_in_background(served.base, answer)
    wait_for(
        lambda: calls_entered(served.entered) > entered,  # type: ignore[attr-defined]
        30,
        "the slow call to enter the toy model",
    )
    assert _stop(served) == 0, served.log_text()[-4000:]
    caller.join(timeout=30)
    assert answer == {"status": 200, "body": {"value": 2.0}}
    assert _serving_records(served.repo) == []
    assert not (served.log.parent / "ready.json").exists()

"""`model-runner serve` with no arguments: the embedded default repository, filled with the samples."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.e2e.toy import calls_entered, write_signalling_toy_bundle
from tests.waiting import wait_for

# every test starts (or shares) a real `serve`: up to 300 s to be ready on a cold machine
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

FLOWER = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def _serve_default(home: Path, log: Path, ready: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_RUNNER_")}
    env["XDG_DATA_HOME"] = str(home)  # the default repository lives under it
    with open(log, "ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "runner",
                "serve",
                "--http-port",
                "0",
                "--grpc-port",
                "-1",
                "--workers",
                "2",
                "--threads",
                "2",
                "--ready-file",
                str(ready),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=home,
        )


def _wait_ready(proc: subprocess.Popen[bytes], ready: Path, log: Path) -> dict:
    try:
        wait_for(
            lambda: ready.exists() or proc.poll() is not None,
            300,
            "serve to write its ready file",
            interval=0.1,
            describe=lambda: log.read_text(errors="replace")[-5000:],
        )
    except BaseException:  # a failed wait or a test timeout: leave no server behind
        proc.kill()
        proc.wait()
        raise
    if not ready.exists():
        pytest.fail(f"serve exited with {proc.returncode}:\n{log.read_text(errors='replace')[-5000:]}")
    return json.loads(ready.read_text())


def _records(repo: Path) -> list[dict]:
    """The serving records (a retiring worker may remove its own while we read)."""
    out = []
    for path in (repo / "serving").glob("*.json"):
        try:
            out.append(json.loads(path.read_text()))
        except FileNotFoundError:
            continue
    return out


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=90)
    except BaseException:  # not stopped within 90 s, or the test's timeout struck: leave no server behind
        proc.kill()
        proc.wait()
        raise


def test_serve_without_arguments_serves_the_samples(sample_bundles: dict[str, Path], tmp_path: Path) -> None:
    log, ready = tmp_path / "serve.log", tmp_path / "ready.json"
    proc = _serve_default(tmp_path, log, ready)
    try:
        info = _wait_ready(proc, ready, log)
        repo = tmp_path / "model-runner" / "repo"
        assert Path(info["repo"]) == repo
        assert Path(info["token_file"]) == repo / "admin-token"
        base = f"http://127.0.0.1:{info['http_port']}"
        names = {m["name"] for m in requests.get(f"{base}/models", timeout=30).json()["models"]}
        assert names == {"iris", "iris-proto", "weka", "iris-python"}
        for name in sorted(names):
            r = requests.post(f"{base}/models/{name}/methods/Classify", json=FLOWER, timeout=60)
            assert r.status_code == 200, (name, r.text)
            assert r.json()["species"].lower().endswith("setosa")
        text = log.read_text()
        assert f"repository:   {repo}" in text and "model-runner ready: " in text
        assert "curl -s -H 'Content-Type: application/json'" in text
    finally:
        assert _stop(proc) == 0

    # a second start keeps the repository as it is: no new versions
    ready.unlink(missing_ok=True)
    proc = _serve_default(tmp_path, log, ready)
    try:
        info = _wait_ready(proc, ready, log)
        r = requests.get(f"http://127.0.0.1:{info['http_port']}/models/iris/versions", timeout=30)
        assert r.json()["versions"] == [1]
    finally:
        assert _stop(proc) == 0


def test_serve_a_jar_with_its_class(sample_bundles: dict[str, Path], tmp_path: Path) -> None:
    """`serve model.jar --class X`: onboarded (contract generated from the class), published, served."""
    log, ready = tmp_path / "serve.log", tmp_path / "ready.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_RUNNER_")}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "runner",
                "serve",
                str(sample_bundles["iris"] / "model.jar"),
                "--class",
                "org.modelrunner.samples.iris.IrisClassifier",
                "--name",
                "iris-jar",
                "--repo",
                str(tmp_path / "repo"),
                "--http-port",
                "0",
                "--grpc-port",
                "-1",
                "--workers",
                "2",
                "--threads",
                "2",
                "--ready-file",
                str(ready),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
    try:
        info = _wait_ready(proc, ready, log)
        base = f"http://127.0.0.1:{info['http_port']}"
        r = requests.post(f"{base}/models/iris-jar/methods/Classify", json=FLOWER, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["species"] == "setosa" and r.headers["X-Model-Name"] == "iris-jar"
        proto = requests.get(f"{base}/models/iris-jar/proto", timeout=30).text
        assert "rpc Classify" in proto
    finally:
        assert _stop(proc) == 0
    # a JAR without --class is refused with the candidates to choose from
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "runner",
            "serve",
            str(sample_bundles["iris"] / "model.jar"),
            "--repo",
            str(tmp_path / "repo2"),
            "--grpc-port",
            "-1",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert bad.returncode == 1
    assert "IrisClassifier" in bad.stderr


def test_sigterm_drains_after_the_jvm_started_late(sample_bundles: dict[str, Path], tmp_path: Path) -> None:
    """Workers start with a Python model only; a Java upload starts their JVMs (whose own SIGTERM handler
    would exit at once); SIGTERM must still drain the calls in flight."""
    import threading

    from runner.bundle import write_bundle_zip

    entered = tmp_path / "entered"
    toy = write_signalling_toy_bundle(tmp_path / "toy", entered)
    log, ready = tmp_path / "serve.log", tmp_path / "ready.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_RUNNER_")}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "runner",
                "serve",
                str(toy),
                "--repo",
                str(tmp_path / "repo"),
                "--http-port",
                "0",
                "--grpc-port",
                "-1",
                "--workers",
                "2",
                "--threads",
                "4",
                "--ready-file",
                str(ready),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
    try:
        info = _wait_ready(proc, ready, log)
        base = f"http://127.0.0.1:{info['http_port']}"
        token = Path(info["token_file"]).read_text().strip()
        r = requests.put(
            f"{base}/models/iris",
            data=write_bundle_zip(sample_bundles["iris"]),
            timeout=120,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/zip"},
        )
        # both workers serve the new version, so each has loaded the Java model: its JVM is running
        assert r.status_code == 200 and len(r.json()["served_by"]) == 2, r.text
        answers: list[object] = []

        def slow_call() -> None:
            try:
                s = requests.post(f"{base}/models/toy/methods/Sleep", json={"seconds": 2.0}, timeout=60)
                answers.append((s.status_code, s.json()))
            except Exception as err:  # noqa: BLE001
                answers.append(repr(err))

        callers = [threading.Thread(target=slow_call) for _ in range(4)]  # both workers get some
        for t in callers:
            t.start()
        wait_for(lambda: calls_entered(entered) == 4, 60, "the 4 slow calls to enter the toy model")
    finally:
        code = _stop(proc)
    for t in callers:
        t.join(timeout=30)
    assert code == 0, log.read_text(errors="replace")[-3000:]
    assert answers == [(200, {"value": 2.0})] * 4


def test_sighup_rolls_the_workers_without_failing_a_request(
    sample_bundles: dict[str, Path], tmp_path: Path
) -> None:
    """SIGHUP: gunicorn starts fresh workers (fresh JVMs) and retires the old ones; clients see no error."""
    import threading

    log, ready = tmp_path / "serve.log", tmp_path / "ready.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_RUNNER_")}
    repo = tmp_path / "repo"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "runner",
                "serve",
                str(sample_bundles["iris"]),
                "--repo",
                str(repo),
                "--http-port",
                "0",
                "--grpc-port",
                "-1",
                "--workers",
                "2",
                "--threads",
                "4",
                "--ready-file",
                str(ready),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
    try:
        info = _wait_ready(proc, ready, log)
        url = f"http://127.0.0.1:{info['http_port']}/models/iris/methods/Classify"
        before = {r["pid"] for r in _records(repo)}
        stop = threading.Event()
        answers: list[list[object]] = [[], [], []]  # per client: status codes (or errors)

        def load(mine: list[object]) -> None:
            session = requests.Session()
            while not stop.is_set():
                try:
                    mine.append(session.post(url, json=FLOWER, timeout=60).status_code)
                except Exception as err:  # noqa: BLE001
                    mine.append(repr(err))

        def each_client_answered_since(marks: list[int]) -> bool:
            return all(len(mine) > mark for mine, mark in zip(answers, marks, strict=True))

        clients = [threading.Thread(target=load, args=(mine,)) for mine in answers]
        for t in clients:
            t.start()
        try:
            wait_for(lambda: each_client_answered_since([0, 0, 0]), 60, "an answer for each client")
            proc.send_signal(signal.SIGHUP)

            def fresh_workers() -> set[int]:
                after = {r["pid"] for r in _records(repo) if r.get("models", {}).get("iris") == 1}
                return after if len(after) == 2 and not after & before else set()

            after = wait_for(
                fresh_workers, 120, f"2 new workers serving iris in place of {before}", interval=0.1
            )
            # the old workers drain and exit (each removes its serving record as it stops) ...
            wait_for(
                lambda: not {r["pid"] for r in _records(repo)} & before,
                120,
                f"the old workers {before} to stop",
                interval=0.1,
            )
            # ... and the clients keep being answered, by the new workers only
            marks = [len(mine) for mine in answers]
            wait_for(
                lambda: each_client_answered_since(marks),
                60,
                "an answer for each client from the new workers",
            )
        finally:
            stop.set()
            for t in clients:
                t.join(timeout=60)
        assert len(after) == 2 and not after & before, (before, after)
        statuses = [s for mine in answers for s in mine]
        failures = [s for s in statuses if s != 200]
        assert statuses and not failures, failures[:5]
    finally:
        assert _stop(proc) == 0

"""The client verbs end to end: `model-runner push|proto|rollback|models|history|predict|delete` in
subprocesses against a real `model-runner serve` (gunicorn, 2 workers with their own JVMs) on a free
port, with a repository in a temporary folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.waiting import wait_for

# the tests of the `served` fixture (a real `serve`, up to SERVE_TIMEOUT to be ready) are also slow
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

IRIS_CLASS = "org.modelrunner.samples.iris.IrisClassifier"
ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
SERVE_TIMEOUT = 300.0


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: no token or URL inherited from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_RUNNER_")}
    env.update(extra)
    return env


def run_cli(
    *args: str | Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner", *map(str, args)],
        capture_output=True,
        text=True,
        env=env or cli_env(),
        timeout=timeout,
        check=False,
    )


@dataclass
class Served:
    url: str
    repo: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def cli(self, *args: str | Path, token: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
        """A client verb against this service (--url, and --repo so it finds the admin token)."""
        extra: list[str | Path] = ["--url", self.url]
        if token:
            extra += ["--repo", self.repo]
        return run_cli(*args, *extra, **kw)  # type: ignore[arg-type]


def start_serve(targets: list[str | Path], tmp: Path, *extra: str) -> Served:
    """`model-runner serve TARGETS` on a free port; returns once it reports ready."""
    repo, ready, log = tmp / "repo", tmp / "ready.json", tmp / "serve.log"
    cmd = [
        sys.executable,
        "-m",
        "runner",
        "serve",
        *map(str, targets),
        "--repo",
        str(repo),
        "--http-port",
        "0",
        "--grpc-port",
        "-1",
        "--workers",
        "2",
        "--ready-file",
        str(ready),
        *extra,
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=cli_env(), start_new_session=True
        )
    try:
        wait_for(
            lambda: ready.exists() or proc.poll() is not None,
            SERVE_TIMEOUT,
            "serve to write its ready file",
            interval=0.1,
            describe=lambda: log.read_text()[-4000:],
        )
    except BaseException:  # a failed wait or a test timeout: leave no server behind
        stop_serve(proc)
        raise
    if not ready.exists():
        raise AssertionError(f"serve exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
    info = json.loads(ready.read_text())
    return Served(url=f"http://127.0.0.1:{info['http_port']}", repo=repo, proc=proc, log=log)


def stop_serve(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except BaseException:  # the test's timeout struck: leave no server behind
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise


@pytest.fixture(scope="module")
def served(sample_bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = start_serve([sample_bundles["iris"]], tmp_path_factory.mktemp("serve"), "--name", "iris")
    try:
        yield s
    finally:
        stop_serve(s.proc)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result


def predict_species(served: Served) -> tuple[str, str]:
    r = ok(served.cli("predict", "iris", "Classify", "--json", json.dumps(ROW), token=False))
    return json.loads(r.stdout)["species"], r.stderr


@pytest.mark.slow
def test_models(served: Served) -> None:
    r = ok(served.cli("models", token=False))
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["NAME", "VERSION", "RUNTIME"]
    assert lines[1].split()[:3] == ["iris", "1", "java"]
    doc = json.loads(ok(served.cli("models", "--json", token=False)).stdout)
    assert [m["name"] for m in doc] == ["iris"] and "Classify" in doc[0]["methods"]


@pytest.mark.slow
def test_predict(served: Served, tmp_path: Path) -> None:
    species, stderr = predict_species(served)
    assert species == "setosa" and "iris version 1" in stderr
    req = tmp_path / "batch.json"
    req.write_text(
        json.dumps(
            {
                "rows": [
                    ROW,
                    {"sepal_length": 6.3, "sepal_width": 3.3, "petal_length": 6.0, "petal_width": 2.5},
                ]
            }
        )
    )
    r = ok(served.cli("predict", "iris", "ClassifyBatch", "--data", f"@{req}", token=False))
    assert [p["species"] for p in json.loads(r.stdout)["predictions"]] == ["setosa", "virginica"]
    r = ok(served.cli("predict", "iris", "Classify", "--protobuf", "--json", json.dumps(ROW), token=False))
    assert json.loads(r.stdout)["species"] == "setosa" and "protobuf" in r.stderr


@pytest.mark.slow
def test_predict_errors(served: Served) -> None:
    r = served.cli("predict", "nope", "Classify", "--json", "{}", token=False)
    assert r.returncode == 1 and "error:" in r.stderr and "nope" in r.stderr
    r = served.cli("predict", "iris", "Classify", "--json", "{not json", token=False)
    assert r.returncode == 1 and "not JSON" in r.stderr and "hint:" in r.stderr
    r = served.cli("predict", "iris", "Classify", "--json", '{"sepal_length": "x"}', token=False)
    assert r.returncode == 1 and "error:" in r.stderr
    r = served.cli("predict", "iris", "Classify", token=False)  # no body: a usage error
    assert r.returncode == 2
    r = run_cli("models", "--url", "http://127.0.0.1:9")  # nothing listens there
    assert r.returncode == 1 and "cannot reach" in r.stderr and "hint:" in r.stderr


@pytest.mark.slow
def test_admin_needs_token(served: Served, tmp_path: Path) -> None:
    r = run_cli("rollback", "iris", "--url", served.url, "--repo", tmp_path)  # a repo without a token file
    assert r.returncode == 1 and "Authorization" in r.stderr and "--token" in r.stderr
    r = run_cli("rollback", "iris", "--url", served.url, "--token", "wrong")
    assert r.returncode == 1 and "wrong" in r.stderr


@pytest.mark.slow
def test_push_bundle_then_jar(served: Served, sample_bundles: dict[str, Path]) -> None:
    # a bundle folder: iris-v2 (labels Iris-setosa, ...) becomes version 2
    r = ok(served.cli("push", "iris", sample_bundles["iris-v2"]))
    assert "iris: version 2 is current" in r.stdout
    assert predict_species(served)[0] == "Iris-setosa"
    # a JAR with --class is onboarded on the way (the service validates it), as --json
    r = ok(
        served.cli(
            "push",
            "iris",
            sample_bundles["iris"] / "model.jar",
            "--class",
            IRIS_CLASS,
            "--proto",
            sample_bundles["iris"] / "model.proto",
            "--if-match",
            "2",
            "--json",
        )
    )
    assert json.loads(r.stdout)["version"] == 3
    assert predict_species(served) == ("setosa", "(iris version 3)\n")
    # optimistic concurrency: version 2 is no longer current
    r = served.cli("push", "iris", sample_bundles["iris-v2"], "--if-match", "2")
    assert r.returncode == 1 and "hint:" in r.stderr
    # a JAR without --class is refused before anything is sent
    r = served.cli("push", "iris", sample_bundles["iris"] / "model.jar")
    assert r.returncode == 1 and "--class" in r.stderr


@pytest.mark.slow
def test_push_large_bundle_shows_progress(served: Served, sample_bundles: dict[str, Path]) -> None:
    r = ok(served.cli("push", "weka", sample_bundles["weka"]))
    assert "uploading" in r.stderr and "(100%" in r.stderr  # weka.jar makes it > 1 MB
    assert "weka: version 1 is current" in r.stdout
    r = ok(served.cli("predict", "weka", "Classify", "--json", json.dumps(ROW), token=False))
    assert json.loads(r.stdout)["species"]
    ok(served.cli("delete", "weka"))


@pytest.mark.slow
def test_push_python_class(served: Served, sample_bundles: dict[str, Path]) -> None:
    folder = sample_bundles["iris-python"]
    r = ok(
        served.cli(
            "push",
            "iris-py",
            f"{folder / 'iris_model.py'}:IrisClassifier",
            "--proto",
            folder / "model.proto",
            "--example",
            "Classify=" + json.dumps(ROW),
        )
    )
    assert "iris-py: version 1 is current" in r.stdout
    r = ok(served.cli("predict", "iris-py", "Classify", "--json", json.dumps(ROW), token=False))
    assert json.loads(r.stdout)["species"] == "setosa"
    ok(served.cli("delete", "iris-py"))


@pytest.mark.slow
def test_proto_swap(served: Served, tmp_path: Path) -> None:
    current = ok(run_cli("history", "iris", "--url", served.url, "--json")).stdout
    before = json.loads(current)[-1]["version"]
    proto = (served.repo / "models" / "iris" / "versions" / str(before) / "model.proto").read_text()
    assert "string species = 1;" in proto
    renumbered = tmp_path / "renumbered.proto"
    renumbered.write_text(proto.replace("string species = 1;", "string species = 7;"))
    r = served.cli("proto", "iris", renumbered)
    assert r.returncode == 1 and "--allow-breaking" in r.stderr
    r = ok(served.cli("proto", "iris", renumbered, "--allow-breaking"))
    assert f"version {before + 1} is current" in r.stdout and "species" in r.stdout
    assert predict_species(served)[0] in ("setosa", "Iris-setosa")
    r = served.cli("proto", "iris", tmp_path / "missing.proto")
    assert r.returncode == 1 and "no such file" in r.stderr


@pytest.mark.slow
def test_rollback_and_history(served: Served) -> None:
    hist = json.loads(ok(served.cli("history", "iris", "--json", token=False)).stdout)
    latest = hist[-1]["version"]
    r = ok(served.cli("rollback", "iris"))
    assert "rolled back, version" in r.stdout
    r = ok(served.cli("rollback", "iris", "--version", "2", "--json"))
    assert json.loads(r.stdout)["version"] == 2
    assert predict_species(served)[0] == "Iris-setosa"
    r = ok(served.cli("history", "iris", token=False))
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["TIME", "ACTION", "VERSION"]
    actions = [line.split()[2] for line in lines[1:]]  # time is two columns (date, clock)
    assert actions.count("rollback") == 2 and "proto" in actions and "upload" in actions
    assert latest > 2


@pytest.mark.slow
def test_delete(served: Served) -> None:
    r = served.cli("delete", "iris", "--if-match", "999")
    assert r.returncode == 1 and "412" not in r.stdout and "999" in r.stderr
    r = ok(served.cli("delete", "iris"))
    assert "iris: deleted" in r.stdout
    r = served.cli("predict", "iris", "Classify", "--json", json.dumps(ROW), token=False)
    assert r.returncode == 1 and "iris" in r.stderr
    assert "no models" in ok(served.cli("models", token=False)).stdout


@pytest.mark.parametrize(
    "verb", ["onboard", "push", "proto", "rollback", "models", "history", "predict", "delete", "serve"]
)
def test_every_verb_has_help_with_an_example(verb: str) -> None:
    r = ok(run_cli(verb, "--help"))
    assert "usage: model-runner " + verb in r.stdout
    assert r.stdout.count(f"model-runner {verb} ") >= 2, r.stdout  # the usage line and an example

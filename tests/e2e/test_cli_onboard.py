"""`model-runner onboard` end to end (a subprocess each, real JVM, real sample JARs), and the one-command
path `model-runner serve model.jar --class ...` answering a prediction."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import requests

from tests.e2e.test_cli import IRIS_CLASS, ROW, ok, run_cli, start_serve, stop_serve

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def iris_jar(sample_bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    # named like a build output, so the model name comes from it
    jar = tmp_path_factory.mktemp("jar") / "iris-1.0.jar"
    jar.write_bytes((sample_bundles["iris"] / "model.jar").read_bytes())
    return jar


def test_onboard_without_class_lists_candidates(iris_jar: Path) -> None:
    r = ok(run_cli("onboard", iris_jar))
    assert IRIS_CLASS in r.stdout and "classify" in r.stdout
    assert f"model-runner onboard {iris_jar} --class " in r.stdout
    doc = json.loads(ok(run_cli("onboard", iris_jar, "--json")).stdout)
    assert IRIS_CLASS in [c["class"] for c in doc["candidates"]]


def test_onboard_jar(iris_jar: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "iris.zip"
    r = ok(
        run_cli(
            "onboard", iris_jar, "--class", IRIS_CLASS, "--example", "Classify=" + json.dumps(ROW), "-o", out
        )
    )
    assert "service " in r.stdout and "rpc Classify" in r.stdout  # the contract is printed
    assert "curl -s -X POST http://127.0.0.1:8080/models/iris/methods/Classify" in r.stdout
    assert f"model-runner push iris {out}" in r.stdout
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        meta = json.loads(zf.read("metadata.json"))
    assert {"metadata.json", "model.proto", "model.jar"} <= names
    assert meta["name"] == "iris" and meta["entry_point"] == IRIS_CLASS


def test_onboard_python(sample_bundles: dict[str, Path], tmp_path: Path) -> None:
    module = sample_bundles["iris-python"] / "iris_model.py"
    r = ok(
        run_cli(
            "onboard",
            f"{module}:IrisClassifier",
            "--name",
            "iris-python",
            "--json",
            "--proto",
            module.parent / "model.proto",
            "-o",
            tmp_path / "py.zip",
        )
    )
    doc = json.loads(r.stdout)
    assert doc["runtime"] == "python" and "Classify" in doc["methods"]
    assert (tmp_path / "py.zip").is_file()


def test_onboard_python_file_without_class_lists_classes(tmp_path: Path) -> None:
    mod = tmp_path / "scoring.py"
    mod.write_text(
        "class Scorer:\n    def score(self, age: int) -> float:\n        return 0.5\n"
        "    def _private(self):\n        pass\n\nclass _Hidden:\n    def f(self):\n        pass\n"
    )
    r = ok(run_cli("onboard", mod))
    assert f"{mod}:Scorer" in r.stdout and "score(age: int) -> float" in r.stdout
    assert "_private" not in r.stdout and "_Hidden" not in r.stdout
    r = ok(run_cli("onboard", f"{mod}:Scorer", "-o", tmp_path / "s.zip"))  # contract from the hints
    assert "rpc Score" in r.stdout and (tmp_path / "s.zip").is_file()


def test_wrong_class_name(iris_jar: Path, tmp_path: Path) -> None:
    r = run_cli("onboard", iris_jar, "--class", "org.acme.NoSuchModel", "-o", tmp_path / "x.zip")
    assert r.returncode == 1
    assert "org.acme.NoSuchModel" in r.stderr and "hint:" in r.stderr
    assert not (tmp_path / "x.zip").exists()


def test_not_a_jar(tmp_path: Path) -> None:
    fake = tmp_path / "model.jar"
    fake.write_text("not a zip")
    r = run_cli("onboard", fake, "--class", IRIS_CLASS)
    assert r.returncode == 1 and "is not a JAR" in r.stderr and "hint:" in r.stderr
    r = run_cli("onboard", tmp_path / "missing.jar", "--class", IRIS_CLASS)
    assert r.returncode == 1 and "no such file" in r.stderr


def test_python_file_that_does_not_import(tmp_path: Path) -> None:
    bad = tmp_path / "broken_model.py"
    bad.write_text("import no_such_module_xyz\n\nclass Model:\n    pass\n")
    r = run_cli("onboard", f"{bad}:Model")
    assert r.returncode == 1
    assert (
        "cannot import broken_model" in r.stderr and "no_such_module_xyz" in r.stderr and "hint:" in r.stderr
    )


def test_usage_errors() -> None:
    assert run_cli("onboard").returncode == 2
    assert run_cli("onboard", "x.jar", "--no-such-flag").returncode == 2


@pytest.mark.slow
@pytest.mark.timeout(600)  # starts a real `serve`
def test_serve_jar_with_class_answers(iris_jar: Path, tmp_path: Path) -> None:
    served = start_serve([iris_jar], tmp_path, "--class", IRIS_CLASS)
    try:
        resp = requests.post(f"{served.url}/models/iris/methods/Classify", json=ROW, timeout=30)
        assert resp.status_code == 200, resp.text
        assert resp.json()["species"] == "setosa"
        assert resp.headers["X-Model-Version"] == "1"
    finally:
        stop_serve(served.proc)

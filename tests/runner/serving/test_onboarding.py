"""runner.serving.onboarding against the real bridge, contract, bundle and validate modules (real JVM, real JARs)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from runner.errors import BadInput, InvalidBundle, ModelRunnerError, NotFound
from runner.serving import onboarding

IRIS_CLASS = "org.modelrunner.samples.iris.IrisClassifier"
ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def iris_jar(sample_bundles: dict[str, Path]) -> Path:
    return sample_bundles["iris"] / "model.jar"


@pytest.fixture(scope="module")
def python_module(sample_bundles: dict[str, Path]) -> Path:
    files = [p for p in sample_bundles["iris-python"].glob("*.py")]
    assert files, "the iris-python sample bundle has no .py file"
    return next((p for p in files if p.stem == "iris_model"), files[0])


def test_default_name() -> None:
    assert onboarding.default_name(class_name=IRIS_CLASS, source="model.jar") == "iris-classifier"
    assert onboarding.default_name(class_name="a.B", source="build/libs/scorer-1.2.0.jar") == "scorer"
    assert onboarding.default_name(class_name="iris_model:IrisClassifier") == "iris-classifier"
    assert onboarding.default_name(class_name="x.HTTPServerModel") == "http-server-model"


def test_is_python_spec() -> None:
    assert onboarding.is_python_spec("models/iris_model.py:IrisClassifier")
    assert onboarding.is_python_spec("pkg.mod:Cls")
    assert not onboarding.is_python_spec("build/libs/iris.jar")
    assert not onboarding.is_python_spec("bundle.zip")


def test_jar_without_class_lists_candidates(iris_jar: Path, tmp_path: Path) -> None:
    with pytest.raises(BadInput) as info:
        onboarding.bundle_from_jar(iris_jar, class_name=None, dest=tmp_path / "b")
    cands = info.value.detail["candidates"]
    classes = [c["class"] for c in cands]
    assert IRIS_CLASS in classes
    iris = next(c for c in cands if c["class"] == IRIS_CLASS)
    names = json.dumps(iris["methods"])
    assert "classify" in names and "classifyBatch" in names
    assert "--class" in info.value.detail["hint"]
    assert not (tmp_path / "b").exists()


def test_jar_to_validated_bundle(iris_jar: Path, tmp_path: Path) -> None:
    dest = onboarding.bundle_from_jar(
        iris_jar, class_name=IRIS_CLASS, examples=["Classify=" + json.dumps(ROW)], dest=tmp_path / "b"
    )
    meta = json.loads((dest / "metadata.json").read_text())
    assert meta["name"] == "iris-classifier"  # model.jar is a generic name: the class names it
    assert meta["runtime"] == "java" and meta["entry_point"] == IRIS_CLASS
    assert meta["examples"] == {"Classify": [ROW]}
    proto = (dest / "model.proto").read_text()
    assert "rpc Classify" in proto and "rpc ClassifyBatch" in proto
    assert (dest / "model.jar").read_bytes() == iris_jar.read_bytes()
    from runner.bundle import open_bundle

    assert open_bundle(dest).metadata.name == "iris-classifier"


def test_jar_with_given_proto_and_bare_example(iris_jar: Path, tmp_path: Path) -> None:
    dest = onboarding.bundle_from_jar(
        iris_jar,
        class_name=IRIS_CLASS,
        proto=REPO_ROOT / "protos" / "iris.proto",
        name="iris",
        examples=[json.dumps(ROW), json.dumps({"rows": [ROW]})],
        dest=tmp_path / "b",
    )
    meta = json.loads((dest / "metadata.json").read_text())
    assert meta["name"] == "iris"
    # a bare example goes to the first rpc whose input it fits
    assert meta["examples"]["Classify"] == [ROW]
    assert meta["examples"]["ClassifyBatch"] == [{"rows": [ROW]}]
    assert (dest / "model.proto").read_text() == (REPO_ROOT / "protos" / "iris.proto").read_text()


def test_example_that_does_not_fit(iris_jar: Path, tmp_path: Path) -> None:
    with pytest.raises(BadInput) as info:
        onboarding.bundle_from_jar(
            iris_jar,
            class_name=IRIS_CLASS,
            proto=REPO_ROOT / "protos" / "iris.proto",
            examples=['Classify={"sepal_lenght": 5.1}'],
            dest=tmp_path / "b",
        )
    assert "example 1" in info.value.message
    assert "sepal_lenght" in json.dumps(info.value.detail)
    assert not (tmp_path / "b").exists()


def test_wrong_class_name(iris_jar: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelRunnerError) as info:
        onboarding.bundle_from_jar(iris_jar, class_name="org.acme.NoSuchModel", dest=tmp_path / "b")
    assert "org.acme.NoSuchModel" in info.value.message
    assert info.value.detail.get("hint")
    assert not (tmp_path / "b").exists()


def test_not_a_jar(tmp_path: Path) -> None:
    fake = tmp_path / "model.jar"
    fake.write_text("this is not a zip")
    with pytest.raises(InvalidBundle) as info:
        onboarding.bundle_from_jar(fake, class_name=IRIS_CLASS, dest=tmp_path / "b")
    assert "is not a JAR" in info.value.message
    with pytest.raises(NotFound):
        onboarding.bundle_from_jar(tmp_path / "missing.jar", class_name=IRIS_CLASS, dest=tmp_path / "c")


def test_python_class_to_bundle(python_module: Path, tmp_path: Path) -> None:
    dest = onboarding.bundle_from_python(
        f"{python_module}:IrisClassifier",
        name="iris-py",
        examples=["Classify=" + json.dumps(ROW)],
        proto=python_module.parent / "model.proto",  # the sample takes messages: no hints to read
        dest=tmp_path / "b",
    )
    meta = json.loads((dest / "metadata.json").read_text())
    assert meta["runtime"] == "python"
    assert meta["entry_point"] == f"{python_module.stem}:IrisClassifier"
    assert (dest / python_module.name).is_file()
    assert "rpc Classify" in (dest / "model.proto").read_text()


def test_python_class_without_hints_needs_a_proto(python_module: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidBundle) as info:
        onboarding.bundle_from_python(f"{python_module}:IrisClassifier", dest=tmp_path / "b")
    assert "type hint" in info.value.message
    assert "--proto" in info.value.detail["hint"]


def test_python_package_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "src" / "acme_models"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "scoring.py").write_text(
        textwrap.dedent("""
        from dataclasses import dataclass

        @dataclass
        class Applicant:
            age: int
            city: str

        class Scorer:
            def score(self, a: Applicant) -> float:
                return a.age / 100.0
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    dest = onboarding.bundle_from_python("acme_models.scoring:Scorer", dest=tmp_path / "b")
    meta = json.loads((dest / "metadata.json").read_text())
    assert meta["name"] == "scorer" and meta["entry_point"] == "acme_models.scoring:Scorer"
    assert (dest / "acme_models" / "scoring.py").is_file() and (
        dest / "acme_models" / "__init__.py"
    ).is_file()
    assert "rpc Score" in (dest / "model.proto").read_text()


def test_python_file_that_does_not_import(tmp_path: Path) -> None:
    bad = tmp_path / "broken_model.py"
    bad.write_text("import numpy\nimport no_such_module_xyz\n\nclass M:\n    pass\n")
    with pytest.raises(InvalidBundle) as info:
        onboarding.bundle_from_python(f"{bad}:M", dest=tmp_path / "b")
    assert "cannot import broken_model" in info.value.message
    assert "no_such_module_xyz" in info.value.message
    assert info.value.detail["line"] == 2
    assert not (tmp_path / "b").exists()

    syntax = tmp_path / "syntax_model.py"
    syntax.write_text("class M:\n    def f(self) -> int\n        return 1\n")
    with pytest.raises(InvalidBundle) as info:
        onboarding.bundle_from_python(f"{syntax}:M", dest=tmp_path / "c")
    assert "SyntaxError" in info.value.message and info.value.detail["line"] == 2


def test_python_missing_class(tmp_path: Path) -> None:
    mod = tmp_path / "some_model.py"
    mod.write_text("class Other:\n    def f(self, x: int) -> int:\n        return x\n")
    with pytest.raises(NotFound) as info:
        onboarding.bundle_from_python(f"{mod}:Model", dest=tmp_path / "b")
    assert "Other" in info.value.detail["hint"]

"""runner.serving.validate: a bundle is loaded, bound and exercised before it may be published."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from runner.bundle import open_bundle
from runner.errors import BadInput, InvalidBundle, InvalidContract
from runner.runtimes.python.isolation import ROOT_PACKAGE
from runner.serving.validate import validate_bundle
from runner.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture()
def iris_py(tmp_path: Path) -> Path:
    folder = tmp_path / "iris-python"
    shutil.copytree(ROOT / "runner" / "samples" / "iris-python", folder)
    shutil.copy(ROOT / "protos" / "iris.proto", folder / "model.proto")
    return folder


def edit_metadata(folder: Path, **changes: object) -> None:
    meta = json.loads((folder / "metadata.json").read_text())
    meta.update(changes)
    (folder / "metadata.json").write_text(json.dumps(meta))


def test_good_bundle_report(iris_py: Path) -> None:
    report = validate_bundle(open_bundle(iris_py), settings=Settings())
    assert report.methods == ["Classify", "ClassifyBatch", "ClassifyMatrix"]
    assert report.bindings["Classify"] == {"python_method": "Classify", "convention": "message"}
    assert [o["species"] for o in report.outputs["Classify"]] == ["setosa", "virginica"]
    assert report.outputs["ClassifyMatrix"] == [{"indices": [0, 1, 2]}]
    assert report.generated_inputs == []
    assert [k for k in sys.modules if k.startswith(ROOT_PACKAGE + ".")] == []  # closed afterwards


def test_generated_inputs_when_no_examples(iris_py: Path) -> None:
    edit_metadata(iris_py, examples={})
    report = validate_bundle(open_bundle(iris_py), settings=Settings())
    assert report.generated_inputs == ["Classify", "ClassifyBatch", "ClassifyMatrix"]
    assert report.outputs["ClassifyBatch"] == [{"predictions": []}]


def test_example_raising_fails_validation(iris_py: Path) -> None:
    edit_metadata(
        iris_py,
        examples={"ClassifyMatrix": [{"rows": [{"values": [1, 2, 3, 4]}]}, {"rows": [{"values": [1, 2]}]}]},
    )
    with pytest.raises(InvalidBundle) as e:
        validate_bundle(open_bundle(iris_py), settings=Settings())
    assert "ClassifyMatrix failed on its example 2" in e.value.message
    assert "expected 4 features" in e.value.message
    d = e.value.detail
    assert d["rpc"] == "ClassifyMatrix" and d["input"] == "example 2"
    assert d["error"]["exception_class"] == "ValueError"
    assert [k for k in sys.modules if k.startswith(ROOT_PACKAGE + ".")] == []


def test_default_input_failure_hints_at_examples(iris_py: Path) -> None:
    src = (
        (iris_py / "iris_model.py")
        .read_text()
        .replace(
            "        return self._predict(_features(request))",
            "        if request.sepal_length == 0:\n            raise ValueError('empty flower')\n"
            "        return self._predict(_features(request))",
        )
    )
    (iris_py / "iris_model.py").write_text(src)
    edit_metadata(iris_py, examples={})
    with pytest.raises(InvalidBundle, match="Classify failed on its default input .*add examples"):
        validate_bundle(open_bundle(iris_py), settings=Settings())


def test_example_not_fitting_the_input(iris_py: Path) -> None:
    edit_metadata(iris_py, examples={"Classify": [{"sepal_length": 1, "petal_colour": "red"}]})
    with pytest.raises(InvalidBundle) as e:
        validate_bundle(open_bundle(iris_py), settings=Settings())
    assert "examples.Classify[0]" in e.value.message and e.value.detail["field"] == "petal_colour"


def test_metadata_naming_unknown_rpcs(iris_py: Path) -> None:
    edit_metadata(iris_py, examples={"Classifyy": [{}]}, methods={"Predict": {"python_method": "x"}})
    with pytest.raises(InvalidBundle) as e:
        validate_bundle(open_bundle(iris_py), settings=Settings())
    assert e.value.detail["problems"] == [
        "methods.Predict: the contract has no rpc Predict (it has Classify, ClassifyBatch, ClassifyMatrix)",
        "examples.Classifyy: the contract has no rpc Classifyy (it has Classify, ClassifyBatch, ClassifyMatrix)",
    ]


def test_unbound_rpc_and_broken_contract(iris_py: Path) -> None:
    proto = (iris_py / "model.proto").read_text()
    (iris_py / "model.proto").write_text(
        proto.replace(
            "rpc ClassifyMatrix (FeatureMatrix) returns (ClassIndices);",
            "rpc ClassifyMatrix (FeatureMatrix) returns (ClassIndices);\n  rpc Explain (IrisInput) returns (IrisPrediction);",
        )
    )
    with pytest.raises(InvalidBundle, match="Explain: no method named Explain or explain"):
        validate_bundle(open_bundle(iris_py), settings=Settings())
    (iris_py / "model.proto").write_text(proto.replace("double sepal_width = 2;", "double sepal_width = 2"))
    with pytest.raises(InvalidContract) as e:
        validate_bundle(open_bundle(iris_py), settings=Settings())
    assert e.value.detail["line"] == 13


def test_examples_share_the_load_timeout_with_the_load(tmp_path: Path) -> None:
    """The load and the examples together get load_timeout: an example still running at the limit
    refuses the bundle, naming the limit and the example."""
    from tests.runner.repo_helpers import write_echo_bundle

    release = tmp_path / "release"
    folder = write_echo_bundle(
        tmp_path / "echo", "slow-example", examples={"Say": [{"text": "x", "wait_for": str(release)}]}
    )
    try:
        with pytest.raises(InvalidBundle) as e:
            validate_bundle(open_bundle(folder), settings=Settings(load_timeout=0.5))
    finally:
        release.touch()  # ends the abandoned call
    assert "load_timeout=0.5s" in e.value.message and "Say on its example 1" in e.value.message
    assert e.value.detail["phase"] == "examples" and e.value.detail["load_timeout"] == 0.5
    assert validate_bundle(open_bundle(folder), settings=Settings(load_timeout=30)).outputs["Say"] == [
        {"text": "x", "label": "slow-example"}
    ]


def test_load_timeout_is_a_validated_setting() -> None:
    assert Settings.from_env({"MODEL_RUNNER_LOAD_TIMEOUT": "2.5"}).load_timeout == 2.5
    with pytest.raises(BadInput, match="load_timeout must be a number of seconds above 0"):
        Settings.from_env({"MODEL_RUNNER_LOAD_TIMEOUT": "0"})

"""runner.runtimes.java: Java bundles through the real bridge and JVM, and the one bridge->core error map."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("bridge.model", reason="the bridge package is not in the tree yet")

from bridge import errors as be
from runner.bundle import open_bundle
from runner.contract import MEDIA_JSON, Contract
from runner.errors import BadInput, DeadlineExceeded, InvalidBundle, ModelError, NotReady
from runner.runtimes import Model, load_model
from runner.runtimes.java import JavaModelAdapter, map_bridge_error
from runner.serving.validate import validate_bundle
from runner.settings import Settings
from tests.bridge.conftest import FAULTS_PROTO, build_bundle

SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
VIRGINICA = {"sepal_length": 6.3, "sepal_width": 3.3, "petal_length": 6.0, "petal_width": 2.5}


def load(folder: Path) -> tuple[Model, Contract]:
    b = open_bundle(folder)
    contract = Contract.compile(b.proto_text, include_dir=folder)
    return load_model(folder, b.metadata, contract, Settings()), contract


def call(model: Model, c: Contract, rpc: str, body: dict, timeout: float | None = 30) -> dict:
    req = c.decode(c.input_class(rpc), json.dumps(body).encode(), MEDIA_JSON)
    return c.to_dict(c.output_class(rpc).FromString(model.invoke(rpc, req.SerializeToString(), timeout)))


# ---- the error map (no JVM needed) ---------------------------------------------------------------------


def test_error_map() -> None:
    err = map_bridge_error(
        be.JavaModelError(
            "boom",
            {"java_class": "java.lang.IllegalStateException", "java_message": "boom", "java_stack": "at X"},
        ),
        name="m",
        rpc="Classify",
    )
    assert isinstance(err, ModelError)
    assert err.detail["java_class"] == "java.lang.IllegalStateException" and err.detail["rpc"] == "Classify"
    assert err.detail["exception_class"] == "java.lang.IllegalStateException"
    assert isinstance(map_bridge_error(be.JavaExitError("exit 3", {}), name="m"), ModelError)
    bad = map_bridge_error(be.JavaModelError("malformed protobuf input", {"input": True}), name="m", rpc="Do")
    assert isinstance(bad, BadInput) and "malformed" in bad.message
    assert isinstance(map_bridge_error(be.JavaDeadlineError("late", {}), name="m"), DeadlineExceeded)
    bind = map_bridge_error(
        be.BindError(
            "rpc Classify: no public method classify",
            {
                "problems": [
                    {"rpc": "Classify", "message": "", "field": "", "reason": "no public method classify"}
                ]
            },
        ),
        name="m",
    )
    assert isinstance(bind, InvalidBundle) and "Classify: no public method classify" in bind.message
    assert bind.detail["problems"][0]["rpc"] == "Classify"
    assert isinstance(map_bridge_error(be.JavaLoadError("no class", {}), name="m"), InvalidBundle)
    opts = map_bridge_error(be.JvmOptionsError("x", {"missing": ["-Dfoo=1"]}), name="m")
    assert isinstance(opts, InvalidBundle) and "-Dfoo=1" in opts.message and "restart" in opts.detail["hint"]
    assert isinstance(map_bridge_error(be.JvmNotFoundError("none", {"tried": []}), name="m"), NotReady)
    plain = ValueError("x")
    assert map_bridge_error(plain, name="m") is plain


# ---- real bundles ----------------------------------------------------------------------------------------


def test_java_iris_and_swap_versions_side_by_side(sample_bundles: dict[str, Path]) -> None:
    m1, c1 = load(sample_bundles["iris"])
    m2, c2 = load(sample_bundles["iris-v2"])  # same class name, other labels
    try:
        assert isinstance(m1, JavaModelAdapter)
        assert set(m1.bindings) == {"Classify", "ClassifyBatch", "ClassifyMatrix"}
        assert call(m1, c1, "Classify", SETOSA)["species"] == "setosa"
        assert call(m2, c2, "Classify", SETOSA)["species"] == "Iris-setosa"
        batch = call(m1, c1, "ClassifyBatch", {"rows": [SETOSA, VIRGINICA]})
        assert [p["species"] for p in batch["predictions"]] == ["setosa", "virginica"]
        assert call(m1, c1, "ClassifyMatrix", {"rows": [{"values": [5.1, 3.5, 1.4, 0.2]}]}) == {
            "indices": [0]
        }
    finally:
        m1.close()
        m2.close()


@pytest.mark.parametrize("name", ["iris", "iris-proto", "weka", "iris-python"])
def test_sample_bundles_validate(sample_bundles: dict[str, Path], name: str) -> None:
    report = validate_bundle(open_bundle(sample_bundles[name]), settings=Settings())
    assert report.methods == ["Classify", "ClassifyBatch", "ClassifyMatrix"]
    assert set(report.bindings) == set(report.methods)
    for out in report.outputs.get("Classify", []):
        assert out["species"]


THROWER = {
    "IrisInput.java": """
        package org.modelrunner.tests.thrower;
        public class IrisInput {
            public double sepalLength, sepalWidth, petalLength, petalWidth;
        }
    """,
    "IrisPrediction.java": """
        package org.modelrunner.tests.thrower;
        public class IrisPrediction {
            public String species;
            public double[] probabilities;
        }
    """,
    "Thrower.java": """
        package org.modelrunner.tests.thrower;
        public class Thrower {
            public IrisPrediction classify(IrisInput in) throws Exception {
                if (in.sepalLength < 0) throw new IllegalArgumentException("negative sepal " + in.sepalLength);
                if (in.sepalLength == 99) System.exit(3);
                if (in.sepalLength == 77) Thread.sleep(60_000);
                IrisPrediction out = new IrisPrediction();
                out.species = "ok";
                out.probabilities = new double[] {1, 0, 0};
                return out;
            }
        }
    """,
}

THROWER_PROTO = """
syntax = "proto3";
package iris;
message IrisInput { double sepal_length = 1; double sepal_width = 2; double petal_length = 3; double petal_width = 4; }
message IrisPrediction { string species = 1; repeated double probabilities = 2; }
service Thrower { rpc Classify (IrisInput) returns (IrisPrediction); }
"""


@pytest.fixture(scope="module")
def thrower(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("thrower")
    src = work / "src"
    classes = work / "classes"
    for name, text in THROWER.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(textwrap.dedent(text))
    javac = shutil.which("javac")
    assert javac, "javac is needed"
    subprocess.run([javac, "-parameters", "-d", str(classes), *map(str, src.glob("*.java"))], check=True)
    bundle = work / "bundle"
    bundle.mkdir()
    with zipfile.ZipFile(bundle / "model.jar", "w") as jar:
        for cls in classes.rglob("*.class"):
            jar.write(cls, cls.relative_to(classes).as_posix())
    (bundle / "model.proto").write_text(THROWER_PROTO)
    (bundle / "metadata.json").write_text(
        json.dumps(
            {"name": "thrower", "runtime": "java", "entry_point": "org.modelrunner.tests.thrower.Thrower"}
        )
    )
    return bundle


def test_java_exceptions_exit_and_deadline(thrower: Path) -> None:
    model, c = load(thrower)
    try:
        assert call(model, c, "Classify", SETOSA)["species"] == "ok"
        with pytest.raises(ModelError) as e:
            call(model, c, "Classify", {"sepal_length": -2})
        assert e.value.detail["java_class"] == "java.lang.IllegalArgumentException"
        assert "negative sepal" in e.value.detail["java_message"]
        assert "Thrower.classify" in e.value.detail["java_stack"]
        with pytest.raises(ModelError) as e:
            call(model, c, "Classify", {"sepal_length": 99})  # System.exit must not end the service
        with pytest.raises(DeadlineExceeded):
            call(model, c, "Classify", {"sepal_length": 77}, timeout=0.5)
        with pytest.raises(BadInput):
            model.invoke("Classify", b"\xff\xff\xff", 5)
        with pytest.raises(BadInput):  # a length near 2**31 must not overflow the bounds check
            model.invoke("Classify", b"\x7a\xff\xff\xff\xff\x07x", 5)
        assert call(model, c, "Classify", SETOSA)["species"] == "ok"  # still serving
    finally:
        model.close()


def test_failing_java_bundle_does_not_validate(thrower: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(thrower, bad)
    meta = json.loads((bad / "metadata.json").read_text())
    meta["examples"] = {"Classify": [SETOSA, {"sepal_length": -1}]}
    (bad / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(InvalidBundle) as e:
        validate_bundle(open_bundle(bad), settings=Settings())
    assert "Classify failed on its example 2" in e.value.message
    assert e.value.detail["error"]["java_class"] == "java.lang.IllegalArgumentException"
    meta["entry_point"] = "org.modelrunner.tests.thrower.Missing"
    (bad / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(InvalidBundle, match="Missing"):
        validate_bundle(open_bundle(bad), settings=Settings())


def test_jvm_options_the_running_jvm_lacks(thrower: Path, tmp_path: Path) -> None:
    load(thrower)[0].close()  # the JVM runs now
    needy = tmp_path / "needy"
    shutil.copytree(thrower, needy)
    meta = json.loads((needy / "metadata.json").read_text())
    meta["jvm_options"] = ["-Dmodelrunner.test.never.set=1"]
    (needy / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(InvalidBundle) as e:
        load(needy)
    assert "-Dmodelrunner.test.never.set=1" in e.value.message
    assert "restart" in e.value.detail["hint"]


@pytest.mark.parametrize(
    "bundle_calls,setting,inline",
    [
        ("inline", "guarded", True),
        (None, "inline", True),
        ("guarded", "inline", False),
        (None, "guarded", False),
    ],
)
def test_calls_mode_comes_from_the_bundle_else_the_setting(
    tmp_path: Path, bundle_calls: str | None, setting: str, inline: bool
) -> None:
    folder = tmp_path / "faults"
    folder.mkdir()
    shutil.copy(build_bundle("faults") / "model.jar", folder / "model.jar")
    (folder / "model.proto").write_text(FAULTS_PROTO)
    meta = {"name": "faults", "runtime": "java", "entry_point": "org.modelrunner.tests.faults.FaultModel"}
    (folder / "metadata.json").write_text(
        json.dumps({**meta, **({"calls": bundle_calls} if bundle_calls else {})})
    )
    b = open_bundle(folder)
    contract = Contract.compile(b.proto_text, include_dir=folder)
    model = load_model(folder, b.metadata, contract, Settings(calls=setting))
    try:
        request = contract.input_class("Where")(text="x").SerializeToString()
        where = contract.output_class("Where").FromString(model.invoke("Where", request, 5.0)).text
        assert where.startswith("model-call-") is not inline, where
    finally:
        model.close()

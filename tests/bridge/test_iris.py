"""The iris samples through the bridge: each convention on protos/iris.proto, versions side by side,
load/close cycles."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.errors import BridgeError, JavaModelError
from bridge.model import JavaModel

IRIS_CLASS = "org.modelrunner.samples.iris.IrisClassifier"
ROWS = [(5.1, 3.5, 1.4, 0.2), (7.0, 3.2, 4.7, 1.4), (6.3, 3.3, 6.0, 2.5)]
FIELDS = ("sepal_length", "sepal_width", "petal_length", "petal_width")


@pytest.fixture(scope="module")
def iris(sample_bundles: dict[str, Path], iris_contract, jvm_started):
    model = JavaModel.load(
        artifact_dir=sample_bundles["iris"], class_name=IRIS_CLASS, service=iris_contract.service
    )
    yield model
    model.close()


def classify(model: JavaModel, contract, row, timeout=None) -> object:
    req = contract.input_class("Classify")(**dict(zip(FIELDS, row)))
    return contract.output_class("Classify").FromString(
        model.call("Classify", req.SerializeToString(), timeout)
    )


def test_pojo_classify_gives_sensible_species(iris, iris_contract):
    species = [classify(iris, iris_contract, row).species for row in ROWS]
    assert species == ["setosa", "versicolor", "virginica"]
    out = classify(iris, iris_contract, ROWS[0])
    assert len(out.probabilities) == 3
    assert sum(out.probabilities) == pytest.approx(1.0)
    assert out.probabilities[0] > 0.9


def test_bindings_report_convention_and_method(iris):
    assert iris.bindings["Classify"]["java_method"] == "classify"
    assert iris.bindings["Classify"]["convention"] == "pojo"
    assert iris.bindings["ClassifyBatch"]["java_method"] == "classifyBatch"
    assert iris.bindings["ClassifyMatrix"]["java_method"] == "classifyMatrix"
    assert iris.bindings["Classify"]["static"] is False


def test_batch_list_of_beans(iris, iris_contract):
    In = iris_contract.input_class("Classify")
    batch = iris_contract.input_class("ClassifyBatch")(rows=[In(**dict(zip(FIELDS, r))) for r in ROWS])
    out = iris_contract.output_class("ClassifyBatch").FromString(
        iris.call("ClassifyBatch", batch.SerializeToString())
    )
    assert [p.species for p in out.predictions] == ["setosa", "versicolor", "virginica"]
    empty = iris.call("ClassifyBatch", b"")
    assert iris_contract.output_class("ClassifyBatch").FromString(empty).predictions == []


def test_matrix_double_arrays(iris, iris_contract):
    fm = iris_contract.input_class("ClassifyMatrix")()
    for r in ROWS * 400:
        fm.rows.add().values.extend(r)
    out = iris_contract.output_class("ClassifyMatrix").FromString(
        iris.call("ClassifyMatrix", fm.SerializeToString())
    )
    assert list(out.indices) == [0, 1, 2] * 400


def test_model_exception_for_bad_matrix_row(iris, iris_contract):
    from bridge.errors import JavaModelError

    fm = iris_contract.input_class("ClassifyMatrix")()
    fm.rows.add().values.extend([1.0, 2.0])
    with pytest.raises(JavaModelError) as e:
        iris.call("ClassifyMatrix", fm.SerializeToString())
    assert e.value.detail["java_class"] == "java.lang.IllegalArgumentException"
    assert "row 0 has 2 features" in e.value.detail["java_message"]


def test_timed_call_gives_same_answer(iris, iris_contract):
    assert classify(iris, iris_contract, ROWS[2], timeout=10).species == "virginica"


def test_two_versions_side_by_side(sample_bundles, iris_contract, jvm_started):
    v1 = JavaModel.load(
        artifact_dir=sample_bundles["iris"], class_name=IRIS_CLASS, service=iris_contract.service
    )
    v2 = JavaModel.load(
        artifact_dir=sample_bundles["iris-v2"], class_name=IRIS_CLASS, service=iris_contract.service
    )
    try:
        for _ in range(3):  # interleaved: each version keeps its own classes
            assert classify(v1, iris_contract, ROWS[0]).species == "setosa"
            assert classify(v2, iris_contract, ROWS[0]).species == "Iris-setosa"
        v1.close()
        assert classify(v2, iris_contract, ROWS[2]).species == "Iris-virginica"
    finally:
        v1.close()
        v2.close()


def test_proto_native(sample_bundles, iris_contract, jvm_started):
    if "iris-proto" not in sample_bundles:
        pytest.skip("iris-proto sample not built")
    model = JavaModel.load(
        artifact_dir=sample_bundles["iris-proto"],
        class_name="org.modelrunner.samples.irisproto.IrisProtoClassifier",
        service=iris_contract.service,
    )
    try:
        assert {b["convention"] for b in model.bindings.values()} == {"proto"}
        assert classify(model, iris_contract, ROWS[0]).species == "setosa"
        fm = iris_contract.input_class("ClassifyMatrix")()
        for r in ROWS:
            fm.rows.add().values.extend(r)
        out = iris_contract.output_class("ClassifyMatrix").FromString(
            model.call("ClassifyMatrix", fm.SerializeToString())
        )
        assert len(out.indices) == 3
        with pytest.raises(JavaModelError) as bad:  # the caller's bytes are at fault: BadInput, not 500
            model.call("Classify", b"\xff\xff\xff")
        assert bad.value.detail.get("input") is True
    finally:
        model.close()


def test_close_then_call_fails_and_close_is_idempotent(sample_bundles, iris_contract, jvm_started):
    model = JavaModel.load(
        artifact_dir=sample_bundles["iris"], class_name=IRIS_CLASS, service=iris_contract.service
    )
    model.close()
    model.close()
    with pytest.raises(BridgeError):
        model.call("Classify", b"")


def test_load_call_close_cycles(sample_bundles, iris_contract, jvm_started):
    for _ in range(30):
        with JavaModel.load(
            artifact_dir=sample_bundles["iris"], class_name=IRIS_CLASS, service=iris_contract.service
        ) as model:
            assert classify(model, iris_contract, ROWS[1]).species == "versicolor"


def test_unknown_rpc(iris):
    with pytest.raises(BridgeError, match="no rpc"):
        iris.call("Nope", b"")


def test_override_method_and_convention(sample_bundles, iris_contract, jvm_started):
    # Bind rpc Classify to classifyBatch? No: the override must still bind; map ClassifyBatch's rpc to the
    # same method explicitly and Classify with an explicit convention.
    model = JavaModel.load(
        artifact_dir=sample_bundles["iris"],
        class_name=IRIS_CLASS,
        service=iris_contract.service,
        overrides={
            "Classify": {"java_method": "classify", "convention": "pojo"},
            "ClassifyBatch": {"java_method": "classifyBatch"},
        },
    )
    try:
        assert model.bindings["Classify"]["convention"] == "pojo"
        assert classify(model, iris_contract, ROWS[0]).species == "setosa"
    finally:
        model.close()


def test_concurrent_calls_from_many_threads(iris, iris_contract):
    from concurrent.futures import ThreadPoolExecutor

    expected = ["setosa", "versicolor", "virginica"]

    def work(i: int) -> bool:
        return all(
            classify(iris, iris_contract, ROWS[(i + k) % 3], timeout=10 if k % 2 else None).species
            == expected[(i + k) % 3]
            for k in range(200)
        )

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(work, range(16)))

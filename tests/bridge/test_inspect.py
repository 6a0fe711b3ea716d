"""Contracts from JARs: candidate classes, generated proto3 that compiles, is stable, and binds back."""

from __future__ import annotations

import pytest

from bridge.errors import JavaInspectError, JavaLoadError
from bridge.inspect import generate_proto, list_candidates
from bridge.model import JavaModel
from tests.bridge.conftest import compile_contract

IRIS_CLASS = "org.modelrunner.samples.iris.IrisClassifier"


def test_list_candidates(sample_bundles, jvm_started):
    found = list_candidates(sample_bundles["iris"] / "model.jar")
    assert [c["class"] for c in found] == [IRIS_CLASS]  # the beans have only accessors
    assert [m["name"] for m in found[0]["methods"]] == ["classify", "classifyBatch", "classifyMatrix"]
    assert all(m["static"] is False for m in found[0]["methods"])


def test_generated_iris_contract_compiles_binds_and_serves(sample_bundles, jvm_started):
    jar = sample_bundles["iris"] / "model.jar"
    text = generate_proto(jar, IRIS_CLASS)
    assert text == generate_proto(jar, IRIS_CLASS)  # stable
    contract = compile_contract(text)
    assert contract.package == "org.modelrunner.samples.iris"
    assert contract.method_names() == ["Classify", "ClassifyBatch", "ClassifyMatrix"]
    fields = [(f.name, f.number) for f in contract.input_class("Classify").DESCRIPTOR.fields]
    assert fields == [("sepal_length", 1), ("sepal_width", 2), ("petal_length", 3), ("petal_width", 4)]
    with JavaModel.load(
        artifact_dir=sample_bundles["iris"], class_name=IRIS_CLASS, service=contract.service
    ) as model:
        req = contract.input_class("Classify")(
            sepal_length=6.3, sepal_width=3.3, petal_length=6.0, petal_width=2.5
        )
        out = contract.output_class("Classify").FromString(model.call("Classify", req.SerializeToString()))
        assert out.species == "virginica"
        fm = contract.input_class("ClassifyMatrix")()
        fm.rows.add().values.extend([5.1, 3.5, 1.4, 0.2])
        out = contract.output_class("ClassifyMatrix").FromString(
            model.call("ClassifyMatrix", fm.SerializeToString())
        )
        assert list(out.values) == [0]


def test_generated_kitchen_contract_round_trips(kitchen_bundle, jvm_started):
    text = generate_proto(
        kitchen_bundle / "model.jar", "org.modelrunner.tests.kitchen.Kitchen", package="kitchen.gen"
    )
    assert "map<string, double> weights = 12;" in text
    assert "optional string nickname = 14;" in text
    assert "enum Color {" in text
    contract = compile_contract(text)
    with JavaModel.load(
        artifact_dir=kitchen_bundle,
        class_name="org.modelrunner.tests.kitchen.Kitchen",
        service=contract.service,
    ) as model:
        E = contract.input_class("Echo")
        e = E(
            i32=1,
            name="a",
            color=contract.input_class("Echo")
            .DESCRIPTOR.fields_by_name["color"]
            .enum_type.values_by_name["BLUE"]
            .number,
        )
        e.weights["k"] = 2.0
        out = E.FromString(model.call("Echo", e.SerializeToString()))
        assert (out.i32, out.name, out.color, dict(out.weights)) == (2, "A", 0, {"k": 2.0})
        s = contract.input_class("Score")(age=2, city="ab")
        assert (
            contract.output_class("Score").FromString(model.call("Score", s.SerializeToString())).value == 6.0
        )


def test_selected_methods_only(sample_bundles, jvm_started):
    text = generate_proto(
        sample_bundles["iris"] / "model.jar", IRIS_CLASS, methods=["classifyMatrix"], package="m"
    )
    contract = compile_contract(text)
    assert contract.method_names() == ["ClassifyMatrix"]
    assert "message IrisInput" not in text


def test_unknown_method_and_class(sample_bundles, jvm_started):
    jar = sample_bundles["iris"] / "model.jar"
    with pytest.raises(JavaInspectError, match="no public method 'nope'"):
        generate_proto(jar, IRIS_CLASS, methods=["nope"])
    with pytest.raises(JavaLoadError, match="class org.acme.Missing not found"):
        generate_proto(jar, "org.acme.Missing")

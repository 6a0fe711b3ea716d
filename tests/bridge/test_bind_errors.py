"""Binding a contract to a class reports exactly which rpc, message or field does not bind, and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.errors import BindError
from bridge.model import JavaModel
from tests.bridge.conftest import REPO, compile_contract
from tests.bridge.test_conventions import KITCHEN_PROTO

IRIS_CLASS = "org.modelrunner.samples.iris.IrisClassifier"
IRIS_PROTO = (REPO / "protos" / "iris.proto").read_text()


def bind_problems(bundle: Path, class_name: str, proto: str) -> list[dict]:
    contract = compile_contract(proto)
    with pytest.raises(BindError) as e:
        JavaModel.load(artifact_dir=bundle, class_name=class_name, service=contract.service)
    return e.value.detail["problems"]


def test_unknown_field_names_rpc_message_and_field(sample_bundles, jvm_started):
    proto = IRIS_PROTO.replace("double petal_width = 4;", "double petal_width = 4;\n  string colour = 5;")
    problems = bind_problems(sample_bundles["iris"], IRIS_CLASS, proto)
    assert [(p["rpc"], p["message"], p["field"]) for p in problems] == [
        ("Classify", "iris.IrisInput", "colour"),
        ("ClassifyBatch", "iris.IrisInput", "colour"),
    ]
    assert problems[0]["reason"].startswith(
        "no Java field or property 'colour' in class org.modelrunner.samples.iris.IrisInput (it has: sepalLength"
    )


def test_type_mismatch(sample_bundles, jvm_started):
    proto = IRIS_PROTO.replace("string species = 1;", "int32 species = 1;")
    problems = bind_problems(sample_bundles["iris"], IRIS_CLASS, proto)
    assert {(p["rpc"], p["message"], p["field"]) for p in problems} == {
        ("Classify", "iris.IrisPrediction", "species"),
        ("ClassifyBatch", "iris.IrisPrediction", "species"),
    }
    assert problems[0]["reason"] == "proto type int32 does not bind to Java type java.lang.String"


def test_result_does_not_fit_output_message(sample_bundles, jvm_started):
    proto = IRIS_PROTO.replace(
        "repeated int32 indices = 1;", "repeated int32 indices = 1;\n  string note = 2;"
    )
    problems = bind_problems(sample_bundles["iris"], IRIS_CLASS, proto)
    assert len(problems) == 1
    p = problems[0]
    assert (p["rpc"], p["message"], p["field"]) == ("ClassifyMatrix", "iris.ClassIndices", "")
    assert "message with 2 fields does not bind to Java type int[]" in p["reason"]


def test_every_problem_is_reported_at_once(sample_bundles, jvm_started):
    proto = IRIS_PROTO.replace("double sepal_width = 2;", "string sepal_width = 2;").replace(
        "rpc ClassifyMatrix (FeatureMatrix) returns (ClassIndices);",
        "rpc ClassifyMatrix (FeatureMatrix) returns (ClassIndices);\n  rpc Explain (IrisInput) returns (IrisPrediction);",
    )
    problems = bind_problems(sample_bundles["iris"], IRIS_CLASS, proto)
    assert {(p["rpc"], p["field"]) for p in problems} == {
        ("Classify", "sepal_width"),
        ("ClassifyBatch", "sepal_width"),
        ("Explain", ""),
    }
    explain = next(p for p in problems if p["rpc"] == "Explain")
    assert "no public method 'explain'" in explain["reason"] and "classifyBatch" in explain["reason"]


def test_enum_values_must_match_both_ways(kitchen_bundle, jvm_started):
    proto = KITCHEN_PROTO.replace(
        "enum Color { RED = 0; GREEN = 1; BLUE = 2; }", "enum Color { RED = 0; GREEN = 1; PURPLE = 2; }"
    )
    problems = bind_problems(kitchen_bundle, "org.modelrunner.tests.kitchen.Kitchen", proto)
    echo = sorted((p["field"], p["reason"]) for p in problems if p["rpc"] == "Echo")
    assert echo == [
        (
            "color",
            "Java enum org.modelrunner.tests.kitchen.Color constants [BLUE] have no value in proto enum kitchen.Color",
        ),
        (
            "color",
            "proto enum kitchen.Color values [PURPLE] have no constant in Java enum org.modelrunner.tests.kitchen.Color",
        ),
    ]


def test_parameter_names_must_match(kitchen_bundle, jvm_started):
    proto = KITCHEN_PROTO.replace(
        "message ScoreRequest { double age = 1; string city = 2; }",
        "message ScoreRequest { double age = 1; string town = 2; }",
    )
    problems = [
        p
        for p in bind_problems(kitchen_bundle, "org.modelrunner.tests.kitchen.Kitchen", proto)
        if p["rpc"] == "Score"
    ]
    assert [(p["message"], p["field"]) for p in problems] == [
        ("kitchen.ScoreRequest", "town"),
        ("kitchen.ScoreRequest", ""),
    ]
    assert problems[0]["reason"] == "no parameter 'town' in score(age, city)"
    assert problems[1]["reason"] == "parameter 'city' of score has no field in message kitchen.ScoreRequest"


def test_positional_parameters_need_the_same_count(kitchen_positional_bundle, jvm_started):
    proto = KITCHEN_PROTO.replace(
        "message ScoreRequest { double age = 1; string city = 2; }",
        "message ScoreRequest { double age = 1; string city = 2; int32 extra = 3; }",
    )
    problems = [
        p
        for p in bind_problems(kitchen_positional_bundle, "org.modelrunner.tests.kitchen.Kitchen", proto)
        if p["rpc"] == "Score"
    ]
    assert len(problems) == 1
    assert "takes 2 parameters" in problems[0]["reason"] and "has 3 fields" in problems[0]["reason"]


def test_bad_convention_override(sample_bundles, iris_contract, jvm_started):
    with pytest.raises(BindError) as e:
        JavaModel.load(
            artifact_dir=sample_bundles["iris"],
            class_name=IRIS_CLASS,
            service=iris_contract.service,
            overrides={"Classify": {"convention": "proto"}},
        )
    (p,) = e.value.detail["problems"]
    assert p["rpc"] == "Classify" and "is not proto-native" in p["reason"]


def test_override_for_an_rpc_not_in_the_contract(sample_bundles, iris_contract, jvm_started):
    with pytest.raises(BindError) as e:
        JavaModel.load(
            artifact_dir=sample_bundles["iris"],
            class_name=IRIS_CLASS,
            service=iris_contract.service,
            overrides={"Clasify": {"java_method": "classify"}},
        )
    (p,) = e.value.detail["problems"]
    assert p["rpc"] == "Clasify" and "not in service iris.IrisClassifier" in p["reason"]

"""Calling conventions and type mappings: records, public fields, enums, maps, Optional, bytes, 64-bit ints,
plain parameters (by name and by position), static methods, overloads, Acumos models."""

from __future__ import annotations

import pytest

from bridge.model import JavaModel
from tests.bridge.conftest import compile_contract

KITCHEN_PROTO = """
syntax = "proto3";
package kitchen;
enum Color { RED = 0; GREEN = 1; BLUE = 2; }
message Point { double x = 1; double y = 2; }
message Everything {
  int32 i32 = 1; int64 i64 = 2; float f = 3; double d = 4; bool flag = 5; string name = 6; bytes blob = 7;
  Color color = 8; Point origin = 9; repeated Point points = 10; repeated string tags = 11;
  map<string, double> weights = 12; map<string, Point> places = 13; optional string nickname = 14;
  repeated int64 counts = 15; sint32 delta = 16;
}
message ScoreRequest { double age = 1; string city = 2; }
message ScoreReply { double score = 1; }
message Text { string text = 1; }
service Kitchen {
  rpc Echo (Everything) returns (Everything);
  rpc Score (ScoreRequest) returns (ScoreReply);
  rpc Total (Everything) returns (ScoreReply);
  rpc Describe (Point) returns (Text);
}
"""


@pytest.fixture(scope="module")
def kitchen_contract():
    return compile_contract(KITCHEN_PROTO)


@pytest.fixture(scope="module")
def kitchen(kitchen_bundle, kitchen_contract, jvm_started):
    model = JavaModel.load(
        artifact_dir=kitchen_bundle,
        class_name="org.modelrunner.tests.kitchen.Kitchen",
        service=kitchen_contract.service,
    )
    yield model
    model.close()


def everything(contract):
    E = contract.input_class("Echo")
    e = E(
        i32=-7,
        i64=2**40 + 3,
        f=1.5,
        d=-2.25,
        flag=True,
        name="kitchen",
        blob=b"\x00\xffbin",
        color=1,
        tags=["a", "b,c", "é"],
        counts=[1, -2, 2**62],
        delta=-12345,
        nickname="",
    )
    e.origin.x, e.origin.y = 1.0, 2.0
    for i in range(3):
        p = e.points.add()
        p.x, p.y = i, i * 10
    e.weights["w1"] = 0.5
    e.weights["w2"] = 1.5
    e.places["home"].x = 3.0
    return e


def test_record_round_trip_every_type(kitchen, kitchen_contract):
    e = everything(kitchen_contract)
    out = kitchen_contract.output_class("Echo").FromString(kitchen.call("Echo", e.SerializeToString()))
    expected = everything(kitchen_contract)
    expected.i32 = -6
    expected.name = "KITCHEN"
    expected.color = 2
    p = expected.points.add()
    p.x, p.y = 3, -1
    assert out == expected
    assert out.HasField("nickname")  # Optional.of("") keeps presence


def test_optional_absent_stays_absent(kitchen, kitchen_contract):
    E = kitchen_contract.input_class("Echo")
    out = E.FromString(kitchen.call("Echo", E(name="x").SerializeToString()))
    assert not out.HasField("nickname")
    assert out.name == "X"
    assert out.color == 1  # RED + 1
    assert not out.HasField("origin")


def test_plain_parameters_by_name(kitchen, kitchen_contract):
    assert kitchen.bindings["Score"]["convention"] == "params"
    req = kitchen_contract.input_class("Score")(age=20, city="Paris")
    out = kitchen_contract.output_class("Score").FromString(kitchen.call("Score", req.SerializeToString()))
    assert out.score == 45.0


def test_plain_parameters_by_position(kitchen_positional_bundle, kitchen_contract, jvm_started):
    with JavaModel.load(
        artifact_dir=kitchen_positional_bundle,
        class_name="org.modelrunner.tests.kitchen.Kitchen",
        service=kitchen_contract.service,
    ) as model:
        req = kitchen_contract.input_class("Score")(age=1, city="Rome")
        out = kitchen_contract.output_class("Score").FromString(model.call("Score", req.SerializeToString()))
        assert out.score == 6.0


def test_static_method_and_scalar_result(kitchen, kitchen_contract):
    assert kitchen.bindings["Total"]["static"] is True
    e = everything(kitchen_contract)
    out = kitchen_contract.output_class("Total").FromString(kitchen.call("Total", e.SerializeToString()))
    assert out.score == pytest.approx(0 + 0 + 1 + 10 + 2 + 20 + 0.5 + 1.5)


def test_overload_resolution_picks_the_binding_one(kitchen, kitchen_contract):
    assert "Point" in kitchen.bindings["Describe"]["signature"]
    p = kitchen_contract.input_class("Describe")(x=1.0, y=2.0)
    out = kitchen_contract.output_class("Describe").FromString(
        kitchen.call("Describe", p.SerializeToString())
    )
    assert out.text == "point:1.0,2.0"


ACUMOS_PROTO = """
syntax = "proto3";
package acumos;
message IrisInput { double sepal_length = 1; double sepal_width = 2; double petal_length = 3; double petal_width = 4; }
message IrisBatch { repeated IrisInput rows = 1; }
message Labels { repeated string labels = 1; }
message LengthList { repeated double values = 1; }
service Acumos {
  rpc Predict (IrisBatch) returns (Labels);
  rpc PredictOne (IrisInput) returns (Labels);
  rpc Raw (IrisBatch) returns (Labels);
  rpc Lengths (IrisBatch) returns (LengthList);
}
"""


def _batch(contract, rows):
    B = contract.input_class("Predict")
    b = B()
    for r in rows:
        row = b.rows.add()
        row.sepal_length, row.sepal_width, row.petal_length, row.petal_width = r
    return b


def test_acumos_csv_model_config_in_jar(acumos_bundle, jvm_started):
    contract = compile_contract(ACUMOS_PROTO)
    with JavaModel.load(
        artifact_dir=acumos_bundle,
        class_name="org.modelrunner.tests.acumos.AcumosModel",
        service=contract.service,
    ) as model:
        assert {b["convention"] for b in model.bindings.values()} == {"acumos"}
        assert model.bindings["PredictOne"]["java_method"] == "predict"  # modelMethod
        b = _batch(contract, [(5.1, 3.5, 1.4, 0.2), (6.3, 3.3, 6.0, 2.5)])
        labels = contract.output_class("Predict").FromString(model.call("Predict", b.SerializeToString()))
        assert list(labels.labels) == ["setosa", "virginica"]
        raw = contract.output_class("Raw").FromString(model.call("Raw", b.SerializeToString()))
        # as the Acumos runner writes it: a header line, each message ending its line
        assert list(raw.labels) == [
            "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n6.3,3.3,6.0,2.5\n\n"
        ]
        one = contract.input_class("PredictOne")(
            sepal_length=6, sepal_width=3, petal_length=4.5, petal_width=1.5
        )
        out = contract.output_class("PredictOne").FromString(
            model.call("PredictOne", one.SerializeToString())
        )
        assert list(out.labels) == ["versicolor"]
        lengths = contract.output_class("Lengths").FromString(model.call("Lengths", b.SerializeToString()))
        assert list(lengths.values) == [5.1, 6.3]


def test_acumos_json_config_in_artifact_folder(acumos_bundle, copy_bundle, jvm_started):
    import json

    folder = copy_bundle(acumos_bundle)
    (folder / "modelConfig.properties").write_text(
        "modelClassName=org.modelrunner.tests.acumos.AcumosModel\nmodelMethod=raw\nmodelInputType=json\n"
    )
    contract = compile_contract(ACUMOS_PROTO.replace("rpc Lengths (IrisBatch) returns (LengthList);", ""))
    with JavaModel.load(
        artifact_dir=folder,
        class_name="org.modelrunner.tests.acumos.AcumosModel",
        service=contract.service,
        overrides={"Predict": {"convention": "acumos", "java_method": "raw"}},
    ) as model:
        b = _batch(contract, [(5.1, 3.5, 1.4, 0.2)])
        raw = contract.output_class("Raw").FromString(model.call("Raw", b.SerializeToString()))
        # the JSON of the whole input message, as the Acumos runner passes it
        assert json.loads(raw.labels[0]) == {
            "rows": [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}]
        }
        one = contract.input_class("PredictOne")(sepal_length=1)
        out = contract.output_class("PredictOne").FromString(
            model.call("PredictOne", one.SerializeToString())
        )
        assert json.loads(out.labels[0]) == {"sepal_length": 1.0}  # defaults omitted, as JsonFormat prints


def test_constructor_gets_artifact_folder(faults_bundle, faults_contract, copy_bundle, jvm_started):
    folder = copy_bundle(faults_bundle)
    (folder / "greeting.txt").write_text("hello,")
    with JavaModel.load(
        artifact_dir=folder,
        class_name="org.modelrunner.tests.faults.FaultModel",
        service=faults_contract.service,
    ) as model:
        req = faults_contract.input_class("Echo")(text="world", n=2)
        out = faults_contract.output_class("Echo").FromString(model.call("Echo", req.SerializeToString()))
        assert out.text == "hello,world#2"

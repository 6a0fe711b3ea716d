"""runner.contract: run-time compilation, JSON/binary conversion, errors, breaking changes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message

from runner.contract import MEDIA_JSON, MEDIA_PROTOBUF, Contract, breaking_changes
from runner.contract.codec import in_field_order
from runner.errors import BadInput, InvalidContract, MethodNotFound, UnsupportedMedia

ROOT = Path(__file__).resolve().parents[3]
IRIS = (ROOT / "protos" / "iris.proto").read_text()


@pytest.fixture(scope="module")
def iris() -> Contract:
    return Contract.compile(IRIS)


def test_compiles_iris(iris: Contract) -> None:
    assert iris.package == "iris"
    assert iris.full_service_name == "iris.IrisClassifier"
    assert iris.method_names() == ["Classify", "ClassifyBatch", "ClassifyMatrix"]
    assert iris.input_class("ClassifyBatch").DESCRIPTOR.full_name == "iris.IrisBatch"
    assert iris.output_class("ClassifyMatrix").DESCRIPTOR.full_name == "iris.ClassIndices"
    with pytest.raises(MethodNotFound):
        iris.input_class("Nope")


def test_json_and_binary_round_trip(iris: Contract) -> None:
    cls = iris.input_class("ClassifyBatch")
    body = json.dumps({"rows": [{"sepal_length": 5.1, "petalWidth": 0.2}]}).encode()
    msg = iris.decode(cls, body, "application/json; charset=utf-8")
    assert msg.rows[0].sepal_length == 5.1 and msg.rows[0].petal_width == 0.2
    binary = iris.encode(msg, MEDIA_PROTOBUF[1])
    again = iris.decode(cls, binary, MEDIA_PROTOBUF[0])
    assert again == msg
    out = json.loads(iris.encode(again, MEDIA_JSON))
    # .proto names, declaration order, defaults printed
    assert list(out["rows"][0]) == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert out["rows"][0]["sepal_width"] == 0


def test_each_contract_has_its_own_classes(iris: Contract) -> None:
    other = Contract.compile(IRIS)  # same text: cached descriptor set, fresh pool
    assert other.pool is not iris.pool
    assert other.input_class("Classify") is not iris.input_class("Classify")


def test_int64_follows_proto3_json() -> None:
    c = Contract.compile(
        'syntax = "proto3"; package p; message M { int64 big = 1; } service S { rpc Do (M) returns (M); }'
    )
    msg = c.decode(c.input_class("Do"), b'{"big": 9007199254740993}', MEDIA_JSON)
    assert json.loads(c.encode(msg, MEDIA_JSON)) == {"big": "9007199254740993"}
    schema = c.json_schema(c.input_class("Do"))
    assert schema["properties"]["big"]["type"] == "string"


def test_bad_inputs_name_the_problem(iris: Contract) -> None:
    cls = iris.input_class("ClassifyBatch")
    with pytest.raises(BadInput) as e:
        iris.decode(cls, b'{"rows": [{"sepal_lenght": 1}]}', MEDIA_JSON)
    assert e.value.detail["field"] == "sepal_lenght"
    assert "sepal_lenght" in e.value.message
    with pytest.raises(BadInput) as e:
        iris.decode(cls, b'{"rows": [{"sepal_length": "x"}]}', MEDIA_JSON)
    assert e.value.detail["path"] == "IrisBatch.rows[0].sepal_length"
    with pytest.raises(BadInput, match="line 1 column 2"):
        iris.decode(cls, b"{oops", MEDIA_JSON)
    with pytest.raises(BadInput, match="nested deeper"):
        iris.decode(cls, b"[" * 100 + b"]" * 100, MEDIA_JSON)
    with pytest.raises(BadInput, match="binary iris.IrisBatch"):
        iris.decode(cls, b"\xff\xff\xff", MEDIA_PROTOBUF[0])
    with pytest.raises(UnsupportedMedia):
        iris.decode(cls, b"a,b", "text/csv")


def test_syntax_error_reports_line_and_column() -> None:
    text = 'syntax = "proto3";\npackage p;\nmessage A {\n  int32 a = 1\n}\nservice S { rpc Do (A) returns (A); }\n'
    with pytest.raises(InvalidContract) as e:
        Contract.compile(text)
    d = e.value.detail
    assert (d["file"], d["line"], d["column"]) == ("model.proto", 5, 1)
    assert 'Expected ";"' in d["protoc"]
    assert "model.proto:5:1" in e.value.message


def test_type_error_reports_line() -> None:
    text = 'syntax = "proto3";\nmessage A {\n  Missing a = 1;\n}\nservice S { rpc Do (A) returns (A); }\n'
    with pytest.raises(InvalidContract) as e:
        Contract.compile(text)
    assert e.value.detail["line"] == 3
    assert "Missing" in e.value.detail["protoc"]


@pytest.mark.parametrize("imp", ["/etc/passwd.proto", "../outside.proto", "elsewhere.proto"])
def test_imports_outside_the_bundle_are_rejected(tmp_path: Path, imp: str) -> None:
    (tmp_path / "outside.proto").write_text('syntax = "proto3"; message O {}')
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    text = f'syntax = "proto3";\nimport "{imp}";\nmessage A {{}}\nservice S {{ rpc Do (A) returns (A); }}\n'
    with pytest.raises(InvalidContract) as e:
        Contract.compile(text, include_dir=bundle)
    assert e.value.detail["line"] == 2
    assert e.value.detail["import"] == imp


def test_imports_from_bundle_and_wkt(tmp_path: Path) -> None:
    (tmp_path / "types.proto").write_text('syntax = "proto3"; package p; message Row { double v = 1; }')
    text = (
        'syntax = "proto3"; package p;\nimport "types.proto";\nimport "google/protobuf/timestamp.proto";\n'
        "message Req { repeated Row rows = 1; google.protobuf.Timestamp at = 2; }\n"
        "service S { rpc Do (Req) returns (Row); }\n"
    )
    c = Contract.compile(text, include_dir=tmp_path)
    msg = c.decode(c.input_class("Do"), b'{"rows": [{"v": 1}], "at": "2024-01-01T00:00:00Z"}', MEDIA_JSON)
    assert msg.at.seconds == 1704067200
    # the cache notices a change of the imported file
    (tmp_path / "types.proto").write_text('syntax = "proto3"; package p; message Row { string v = 1; }')
    c2 = Contract.compile(text, include_dir=tmp_path)
    assert c2.input_class("Do").DESCRIPTOR.fields_by_name["rows"].message_type.fields[0].type == 9  # string
    assert c.file_descriptor_set != c2.file_descriptor_set


def test_proto3_only() -> None:
    with pytest.raises(InvalidContract, match='syntax = "proto3"'):
        Contract.compile("message A { optional int32 a = 1; } service S { rpc Do (A) returns (A); }")


def test_exactly_one_service_and_no_streaming() -> None:
    base = 'syntax = "proto3"; message A {} '
    with pytest.raises(InvalidContract, match="exactly one service"):
        Contract.compile(base)
    with pytest.raises(InvalidContract, match="exactly one service"):
        Contract.compile(base + "service S { rpc Do (A) returns (A); } service T { rpc Do (A) returns (A); }")
    with pytest.raises(InvalidContract, match="streaming"):
        Contract.compile(base + "service S { rpc Do (stream A) returns (A); }")


def test_json_schema(iris: Contract) -> None:
    schema = iris.json_schema(iris.output_class("ClassifyBatch"))
    pred = schema["properties"]["predictions"]
    assert pred["type"] == "array"
    assert pred["items"]["properties"]["species"] == {"type": "string"}
    number, non_finite = pred["items"]["properties"]["probabilities"]["items"]["anyOf"]
    assert number == {"type": "number", "format": "double"}
    # the non-finite values, as proto3 JSON writes them
    assert non_finite == {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}


def test_breaking_changes(iris: Contract) -> None:
    assert breaking_changes(iris, Contract.compile(IRIS)) == []
    added = IRIS.replace("double petal_width = 4;", "double petal_width = 4;\n  string note = 5;")
    assert breaking_changes(iris, Contract.compile(added)) == []
    changed = (
        IRIS.replace("double petal_width = 4;", "float petal_width = 4;")
        .replace("string species = 1;", "string species = 3;")
        .replace("  rpc ClassifyMatrix (FeatureMatrix) returns (ClassIndices);\n", "")
        .replace("repeated IrisInput rows = 1;", "repeated FeatureRow rows = 1;")
    )
    report = breaking_changes(iris, Contract.compile(changed))
    joined = "\n".join(report)
    assert "iris.IrisInput.petal_width: type changed double -> float" in joined
    assert "iris.IrisPrediction.species: number changed 1 -> 3" in joined
    assert "rpc ClassifyMatrix removed" in joined
    assert "iris.IrisBatch.rows: type changed repeated iris.IrisInput -> repeated iris.FeatureRow" in joined
    removed_rpc_type = IRIS.replace("rpc Classify (IrisInput)", "rpc Classify (IrisBatch)")
    assert breaking_changes(iris, Contract.compile(removed_rpc_type)) == [
        "rpc Classify: input type changed iris.IrisInput -> iris.IrisBatch"
    ]


SCALARS = """
syntax = "proto3";
package t;
message All {
  double d = 1; float f = 2; int32 i32 = 3; uint32 u32 = 4; int64 i64 = 5; uint64 u64 = 6; sint32 s32 = 7;
  fixed64 fx = 8; bool b = 9; string s = 10; repeated double rd = 11; repeated float rf = 12;
  repeated int64 ri = 13; repeated string rs = 14; repeated bool rb = 15; double camel_case = 16;
}
service S { rpc M (All) returns (All); }
"""
ODD_VALUES = [
    0,
    1,
    -1,
    2**31,
    2**31 - 1,
    -(2**31) - 1,
    2**32,
    2**63,
    2**64,
    -(2**63),
    2**53 + 1,
    1.5,
    -0.0,
    0.1,
    1e39,
    -1e39,
    3.4e38,
    1e308,
    float("inf"),
    float("nan"),
    True,
    False,
    None,
    "1",
    "abc",
    "NaN",
    "Infinity",
    "a\ud800",
    "é",
    "",
    [],
    [1, 2],
    [1.5, None],
    ["x"],
    [True],
    {},
    7.0,
]


def test_json_shortcut_for_flat_messages_matches_json_format() -> None:
    # Contract.parse_dict / to_dict take a shortcut for messages of plain scalar fields: it must build
    # exactly the message (or the error) json_format would, and print exactly what json_format prints.
    contract = Contract.compile(SCALARS)
    cls = contract.input_class("M")
    assert contract.codec.flat_plan(cls.DESCRIPTOR) is not None
    fields = list(cls.DESCRIPTOR.fields)

    def outcome(parse: Callable[[], Message]) -> tuple[object, ...]:
        try:
            return "ok", parse().SerializeToString()
        except Exception as err:  # noqa: BLE001 (whatever json_format raises, the shortcut must raise too)
            return "error", type(err).__name__, str(err)

    def reference(obj: dict[str, Any]) -> Message:
        msg = cls()
        json_format.ParseDict(obj, msg, ignore_unknown_fields=False, descriptor_pool=contract.pool)
        return msg

    objects = [{}, {"nope": 1}, {"camel_case": 1.0, "camelCase": 2.0}, {"camelCase": 2.0, "camel_case": 1.0}]
    for f in fields:
        for value in ODD_VALUES:
            objects += [{f.name: value}, {f.json_name: value, "b": True}]
    for obj in objects:
        expected = outcome(lambda obj=obj: reference(obj))
        assert outcome(lambda obj=obj: contract.parse_dict(cls, obj)) == expected, obj
        if expected[0] == "ok":
            msg = cls.FromString(expected[1])
            printed = in_field_order(
                msg.DESCRIPTOR,
                json_format.MessageToDict(
                    msg,
                    preserving_proto_field_name=True,
                    always_print_fields_with_no_presence=True,
                    descriptor_pool=contract.pool,
                ),
            )
            assert json.dumps(contract.to_dict(msg)) == json.dumps(printed), obj


def test_json_shortcut_leaves_other_messages_to_json_format(iris: Contract) -> None:
    assert iris.codec.flat_plan(iris.input_class("Classify").DESCRIPTOR) is not None
    assert iris.codec.flat_plan(iris.input_class("ClassifyBatch").DESCRIPTOR) is None  # nested messages
    other = Contract.compile(
        'syntax = "proto3"; package o; enum E { A = 0; } '
        "message M { optional double x = 1; oneof k { string s = 2; int32 i = 3; } E e = 4; "
        "bytes raw = 5; map<string, int32> m = 6; } service S { rpc R (M) returns (M); }"
    )
    assert other.codec.flat_plan(other.input_class("R").DESCRIPTOR) is None

"""Required fields (runner.contract.required): which fields can be required, the check, the JSON shortcut
for messages with proto3 ``optional`` fields, and marking generated fields ``optional``."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message

from runner.contract import Contract, RequiredFields
from runner.contract.codec import in_field_order
from runner.contract.required import declare_presence
from runner.errors import BadInput, InvalidBundle

PROTO = """
syntax = "proto3";
package req;
message Flower {
  optional double sepal_length = 1;
  optional double sepal_width = 2;
  double petal_length = 3;
  repeated double extra = 4;
  map<string, double> tags = 5;
  oneof unit { string unit_name = 6; int32 unit_code = 7; }
  Where where = 8;
  optional bool wild = 9;
  optional string name = 10;
}
message Where { optional int32 floor = 1; string zip = 2; }
message Batch { repeated Flower rows = 1; map<string, Flower> by_id = 2; Flower first = 3; }
message Answer { string label = 1; }
service S {
  rpc One (Flower) returns (Answer);
  rpc Many (Batch) returns (Answer);
  rpc Free (Answer) returns (Answer);
}
"""


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract.compile(PROTO)


def problems_of(contract: Contract, spec: dict[str, list[str]]) -> list[str]:
    with pytest.raises(InvalidBundle) as info:
        RequiredFields.build(contract, spec)
    problems: list[str] = info.value.detail["problems"]
    assert info.value.message.startswith("metadata.json: ")
    return problems


def test_a_required_scalar_needs_presence(contract: Contract) -> None:
    [problem] = problems_of(contract, {"Flower": ["petal_length"]})
    assert problem.startswith("required.Flower.petal_length: a required double needs presence")
    assert "`optional double petal_length = 3;`" in problem  # the declaration to write, number included
    assert "cannot tell a missing petal_length from 0" in problem


def test_what_cannot_be_required_is_named_each_time(contract: Contract) -> None:
    problems = problems_of(
        contract,
        {
            "Flower": ["extra", "tags", "unit_name", "nope", "sepalWidth"],
            "One": ["x"],
            "Nothing": ["x"],
        },
    )
    assert problems == [
        "required.Flower.extra: a repeated field cannot be required (proto3 sends an empty list and a "
        "missing one alike)",
        "required.Flower.tags: a map cannot be required (proto3 sends an empty map and a missing one alike)",
        'required.Flower.unit_name: unit_name is a member of oneof unit: require the oneof instead ("unit": '
        "one of its fields must be set)",
        "required.Flower.nope: req.Flower has no field nope (fields: sepal_length, sepal_width, petal_length, "
        "extra, tags, unit_name, unit_code, where, wild, name)",
        "required.Flower.sepalWidth: name the field as the .proto does: sepal_width",
        "required.One: One is an rpc; name the message instead (its input is Flower)",
        "required.Nothing: the contract has no message Nothing (messages: Answer, Batch, Flower, Where)",
    ]


def test_names_resolve_relative_to_the_package_or_in_full(contract: Contract) -> None:
    short = RequiredFields.build(contract, {"Flower": ["sepal_length"]})
    full = RequiredFields.build(contract, {"req.Flower": ["sepal_length"]})
    assert short.spec == full.spec == {"req.Flower": ["sepal_length"]}
    assert short.methods() == ["Many", "One"]  # Batch holds Flowers: its requests are checked too
    assert not RequiredFields.build(contract, {})
    assert RequiredFields.build(contract, {"Answer": []}).methods() == []


def test_missing_fields_are_named_and_zero_is_present(contract: Contract) -> None:
    required = RequiredFields.build(contract, {"Flower": ["sepal_length", "sepal_width", "unit", "where"]})
    flower = contract.input_class("One")
    with pytest.raises(BadInput) as info:
        required.check("One", contract.from_json(flower, {"sepal_width": 1.5, "petal_length": 2}))
    err = info.value
    assert err.kind.value == "bad_input"
    assert err.message == "missing required fields sepal_length, unit, where (in req.Flower)"
    assert err.detail["missing"] == ["sepal_length", "unit", "where"]
    assert err.detail["field"] == "sepal_length"
    assert "0" in err.detail["hint"]
    # every required field present with its zero value: accepted (presence, not truthiness)
    zero = {"sepal_length": 0, "sepal_width": 0.0, "unit_code": 0, "where": {}}
    required.check("One", contract.from_json(flower, zero))
    required.check(
        "One",
        contract.decode(
            flower, contract.from_json(flower, zero).SerializeToString(), "application/x-protobuf"
        ),
    )
    # JSON null means "not set" in the proto3 mapping: still missing
    with pytest.raises(BadInput, match="missing required field sepal_length "):
        required.check("One", contract.from_json(flower, {**zero, "sepal_length": None}))
    required.check("Free", contract.input_class("Free")())  # an rpc without required fields


def test_rules_apply_wherever_the_message_appears(contract: Contract) -> None:
    required = RequiredFields.build(contract, {"Flower": ["sepal_length"], "Where": ["floor"]})
    batch = contract.input_class("Many")
    ok = {"sepal_length": 1.0}
    request = {
        "rows": [ok, {"sepal_width": 2.0}, {"sepal_length": 1.0, "where": {"zip": "x"}}],
        "by_id": {"a": ok, "b": {}},
        "first": ok,
    }
    with pytest.raises(BadInput) as info:
        required.check("Many", contract.from_json(batch, request))
    assert info.value.detail["missing"] == [
        "rows[1].sepal_length",
        "rows[2].where.floor",
        "by_id['b'].sepal_length",
    ]
    assert info.value.message.startswith("missing required fields rows[1].sepal_length, ")
    # an absent message field that is not itself required is not looked into
    required.check("Many", contract.from_json(batch, {"rows": [ok]}))


def test_binary_requests_are_parsed_only_for_rpcs_with_required_fields(contract: Contract) -> None:
    required = RequiredFields.build(contract, {"Flower": ["sepal_length"]})
    required.check_wire("Free", b"\xff\xff not protobuf")  # no required fields: the bytes go through unread
    with pytest.raises(BadInput, match="not a valid binary req.Flower"):
        required.check_wire("One", b"\xff\xff not protobuf")
    flower = contract.input_class("One")
    with pytest.raises(BadInput, match="missing required field sepal_length "):
        required.check_wire("One", flower(sepal_width=3.0).SerializeToString())
    required.check_wire("One", flower(sepal_length=0.0).SerializeToString())


def test_fill_sets_required_fields_to_their_defaults(contract: Contract) -> None:
    required = RequiredFields.build(
        contract, {"Flower": ["sepal_length", "wild", "name", "unit", "where"], "Where": ["floor"]}
    )
    msg = required.fill("One", contract.input_class("One")())
    required.check("One", msg)
    assert contract.to_dict(msg) == {
        "sepal_length": 0.0,
        "petal_length": 0.0,
        "extra": [],
        "tags": {},
        "unit_name": "",
        "where": {"floor": 0, "zip": ""},
        "wild": False,
        "name": "",
    }


def test_messages_no_input_contains_are_reported() -> None:
    text = PROTO.replace("string label = 1;", "optional string label = 1;")
    # Answer is the input of Free, so it is checked
    assert RequiredFields.build(Contract.compile(text), {"Answer": ["label"]}).unchecked == []
    only_out = Contract.compile(text.replace("rpc Free (Answer) returns (Answer);", ""))
    required = RequiredFields.build(only_out, {"Answer": ["label"]})
    assert required.unchecked == ["req.Answer"]  # an output only: nothing checks it (validation warns)
    assert not required


OPTIONAL_SCALARS = """
syntax = "proto3";
package t;
message All {
  optional double d = 1; optional float f = 2; optional int32 i32 = 3; optional uint32 u32 = 4;
  optional int64 i64 = 5; uint64 u64 = 6; optional bool b = 7; optional string s = 8; repeated double rd = 9;
  optional double camel_case = 10;
}
service S { rpc M (All) returns (All); }
"""
ODD_VALUES: list[Any] = [
    0,
    1,
    -1,
    0.0,
    1.5,
    2**31,
    2**63,
    1e39,
    None,
    True,
    False,
    "1",
    "NaN",
    "",
    "é",
    [],
    [1, 2],
    {},
]


def test_json_shortcut_takes_optional_fields_and_matches_json_format() -> None:
    # The iris path with required fields has `optional` scalars: it keeps the shortcut, which must build
    # exactly the message (or the error) json_format would, and print exactly what it prints.
    contract = Contract.compile(OPTIONAL_SCALARS)
    cls = contract.input_class("M")
    assert contract.codec.flat_plan(cls.DESCRIPTOR) is not None

    def outcome(parse: Callable[[], Message]) -> tuple[object, ...]:
        try:
            msg = parse()
            return "ok", msg.SerializeToString(), sorted(f.name for f, _ in msg.ListFields())
        except Exception as err:  # noqa: BLE001 (whatever json_format raises, the shortcut must raise too)
            return "error", type(err).__name__, str(err)

    def reference(obj: dict[str, Any]) -> Message:
        msg = cls()
        json_format.ParseDict(obj, msg, ignore_unknown_fields=False, descriptor_pool=contract.pool)
        return msg

    objects: list[dict[str, Any]] = [{}, {"camel_case": 1.0, "camelCase": 2.0}]
    for f in cls.DESCRIPTOR.fields:
        for value in ODD_VALUES:
            objects += [{f.name: value}, {f.json_name: value, "b": False, "d": 0}]
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
    # a real oneof still goes to json_format
    real = Contract.compile(OPTIONAL_SCALARS.replace("optional bool b = 7;", "oneof o { bool b = 7; }"))
    assert real.codec.flat_plan(real.input_class("M").DESCRIPTOR) is None


def test_declare_presence_marks_the_named_fields_only(contract: Contract) -> None:
    text = PROTO.replace("optional double sepal_width = 2;", "double sepal_width = 2;")
    c = Contract.compile(text)
    marked = declare_presence(
        text, c, {"req.Flower": ["sepal_width", "sepal_length"], "req.Answer": ["label"]}
    )
    m = Contract.compile(marked)
    assert m.messages()["req.Flower"].fields_by_name["sepal_width"].has_presence
    assert m.messages()["req.Answer"].fields_by_name["label"].has_presence
    assert not m.messages()["req.Flower"].fields_by_name["petal_length"].has_presence
    assert marked.count("optional optional") == 0  # already optional: left as it was
    assert (
        marked.replace("optional double sepal_width", "double sepal_width").replace(
            "optional string label", "string label"
        )
        == text
    )

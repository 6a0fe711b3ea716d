"""The JSON mapping of request bodies against json_format: a JSON true/false is not a number for float,
double and enum fields (json_format reads it as 1.0/0.0 or enum number 1/0); everything else parses exactly as json_format does, through
the flat-message shortcut or not, and prints exactly as it prints (hypothesis, random JSON values).

Every hypothesis run prints its seed (FUZZ_SEED=<n> reproduces it; pytest shows it with a failure)."""

from __future__ import annotations

import json
import os
import secrets
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from runner.contract import MEDIA_JSON, Contract
from runner.contract.codec import in_field_order
from runner.errors import BadInput

FUZZ_SEED = int(os.environ.get("FUZZ_SEED") or secrets.randbelow(2**32))
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES") or 200),
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

PROTO = """
syntax = "proto3";
package j;
import "google/protobuf/wrappers.proto";
enum Kind { K0 = 0; K1 = 1; }
message Flat {
  double d = 1; float f = 2; int32 i = 3; int64 l = 4; uint32 u = 5; bool b = 6; string s = 7;
  repeated double ds = 8; repeated float fs = 9; repeated int32 is = 10; repeated bool bs = 11;
  double camel_case = 12;
}
message Deep {
  Flat flat = 1; repeated Flat flats = 2; map<string, double> weights = 3; map<int32, Flat> by_id = 4;
  google.protobuf.DoubleValue maybe = 5; google.protobuf.FloatValue maybe_f = 6; Kind kind = 7;
  optional double opt = 8; Deep next = 9; repeated google.protobuf.DoubleValue wrapped = 10; bytes raw = 11;
}
service S { rpc F (Flat) returns (Flat); rpc D (Deep) returns (Deep); }
"""


@pytest.fixture(autouse=True)
def _print_seed() -> None:
    print(f"hypothesis seed of this run: FUZZ_SEED={FUZZ_SEED} reproduces it")


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract.compile(PROTO)


def body(obj: Any) -> bytes:
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    "rpc,obj,path",
    [
        ("F", {"d": True}, "Flat.d"),
        ("F", {"f": False}, "Flat.f"),
        ("F", {"camelCase": True}, "Flat.camelCase"),
        ("F", {"ds": [1.5, True]}, "Flat.ds[1]"),
        ("F", {"fs": [False]}, "Flat.fs[0]"),
        ("D", {"flat": {"d": True}}, "Deep.flat.d"),
        ("D", {"flats": [{}, {"ds": [0, False]}]}, "Deep.flats[1].ds[1]"),
        ("D", {"weights": {"a": 1, "b": True}}, "Deep.weights[b]"),
        ("D", {"by_id": {"7": {"f": True}}}, "Deep.by_id[7].f"),
        ("D", {"maybe": True}, "Deep.maybe"),
        ("D", {"maybeF": False}, "Deep.maybeF"),
        ("D", {"opt": True}, "Deep.opt"),
        ("D", {"next": {"next": {"flat": {"d": True}}}}, "Deep.next.next.flat.d"),
        ("D", {"wrapped": [1, True]}, "Deep.wrapped[1]"),
        ("D", {"kind": True}, "Deep.kind"),
    ],
)
def test_a_boolean_is_not_a_number_for_float_and_enum_fields(
    contract: Contract, rpc: str, obj: dict[str, Any], path: str
) -> None:
    cls = contract.input_class(rpc)
    reference = cls()
    json_format.ParseDict(obj, reference, descriptor_pool=contract.pool)  # json_format reads it as 1.0/0.0
    with pytest.raises(BadInput) as info:
        contract.decode(cls, body(obj), MEDIA_JSON)
    assert info.value.detail["path"] == path
    assert "no true or false" in info.value.message and path in info.value.message


def test_booleans_stay_valid_where_they_belong(contract: Contract) -> None:
    cls = contract.input_class("D")
    msg = contract.decode(
        cls, body({"flat": {"b": True, "bs": [True, False], "d": 1}, "kind": "K1"}), MEDIA_JSON
    )
    assert msg.flat.b is True and list(msg.flat.bs) == [True, False] and msg.flat.d == 1.0
    for bad in ({"flat": {"i": True}}, {"flat": {"s": True}}, {"flat": {"l": False}}):
        with pytest.raises(BadInput):  # json_format's own refusals, unchanged
            contract.decode(cls, body(bad), MEDIA_JSON)


# ---------------------------------------------------------------------------- against json_format

SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1", "1.5", "abc", "", "é", "K1", "AAEC"]),
)
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(["d", "f", "i", "x", "1", "b"]), inner, max_size=3),
    ),
    max_leaves=8,
)


def json_objects(contract: Contract, rpc: str) -> st.SearchStrategy[dict[str, Any]]:
    desc = contract.input_class(rpc).DESCRIPTOR
    keys = [f.name for f in desc.fields] + [f.json_name for f in desc.fields] + ["unknown"]
    return st.dictionaries(st.sampled_from(keys), VALUE, max_size=4)


def has_bool_for_float(contract: Contract, rpc: str, obj: dict[str, Any]) -> bool:
    try:
        contract.decode(contract.input_class(rpc), body(obj), MEDIA_JSON)
    except BadInput as err:
        return "no true or false" in err.message
    return False


def outcome(parse: Any) -> tuple[object, ...]:
    try:
        msg: Message = parse()
        return "ok", msg.SerializeToString(deterministic=True)
    except (BadInput, json_format.ParseError, ValueError, TypeError, AttributeError) as err:
        return "error", type(err).__name__ if not isinstance(err, BadInput) else "ParseError"


@seed(FUZZ_SEED)
@FUZZ
@given(data=st.data(), rpc=st.sampled_from(["F", "D"]))
def test_request_json_parses_as_json_format_does(contract: Contract, data: st.DataObject, rpc: str) -> None:
    obj = data.draw(json_objects(contract, rpc), label="json")
    cls = contract.input_class(rpc)

    def reference() -> Message:
        msg = cls()
        json_format.ParseDict(obj, msg, ignore_unknown_fields=False, descriptor_pool=contract.pool)
        return msg

    mine = outcome(lambda: contract.decode(cls, body(obj), MEDIA_JSON))
    expected = outcome(reference)
    if has_bool_for_float(contract, rpc, obj):
        assert mine[0] == "error"  # the one deliberate difference
        return
    assert mine[0] == expected[0], (obj, mine, expected)
    if mine[0] == "ok":
        assert mine == expected, obj
        msg = cls.FromString(mine[1])
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

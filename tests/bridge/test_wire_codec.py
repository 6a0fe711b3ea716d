"""The host's protobuf wire codec (bridge/java/.../Wire.java, Codecs.java) against Python's protobuf (upb).

Differential: random valid messages of the iris contract and of a richer one (every scalar type, each repeated
form the host decodes differently, maps, an optional field, a recursive message) round-trip through an echo
model exactly as Python reads them, in canonical, unpacked and reordered encodings; random and malformed byte
strings are refused by the host exactly when Python's protobuf refuses them. The deliberate differences are
the binding's, not the parser's, and the generators stay clear of them:

- a Java enum holds only the numbers it names: an unknown number in a field bound to a Java enum reads as
  null (the field is then absent from the answer); fields bound to int keep any number;
- a singular message field sent twice is replaced by the second (Python merges the two): no encoder writes
  that, so only the refusal is compared for such input.

Every hypothesis run prints its seed (FUZZ_SEED=<n> reproduces it; pytest shows it with a failure);
FUZZ_EXAMPLES=<n> runs more examples than the 200 of CI.
"""

from __future__ import annotations

import os
import secrets
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from bridge.errors import JavaModelError
from bridge.model import JavaModel
from runner.contract import Contract
from tests.bridge.conftest import build_bundle

ROOT = Path(__file__).resolve().parents[2]
ECHO_CLASS = "org.modelrunner.tests.wire.WireEcho"

FUZZ_SEED = int(os.environ.get("FUZZ_SEED") or secrets.randbelow(2**32))
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES") or 200),  # a longer fuzz: FUZZ_EXAMPLES=20000
    deadline=None,
    database=None,  # nothing written into the checkout; the seed reproduces a run
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

RICH_PROTO = """
syntax = "proto3";
package wire;
enum Color { RED = 0; GREEN = 1; BLUE = 2; }
message Point { double x = 1; double y = 2; }
message Row { repeated double values = 1; }
message Node { Node child = 1; int32 value = 2; string label = 3; }
message Rich {
  double d = 1; float f = 2; int32 i32 = 3; int64 i64 = 4; uint32 u32 = 5; uint64 u64 = 6;
  sint32 s32 = 7; sint64 s64 = 8; fixed32 fx32 = 9; fixed64 fx64 = 10; sfixed32 sfx32 = 11; sfixed64 sfx64 = 12;
  bool flag = 13; string text = 14; bytes blob = 15; Color color = 16; Point origin = 17;
  repeated double ds = 18; repeated float fs = 19; repeated int32 is = 20; repeated int64 ls = 21;
  repeated string texts = 22; repeated Point points = 23; repeated Row rows = 24;
  map<string, double> weights = 25; map<int32, Point> places = 26; map<string, string> labels = 27;
  optional string nickname = 28; repeated sint64 deltas = 29; repeated bool flags = 30; repeated uint32 us = 31;
  repeated fixed64 fx = 32; Node tree = 33; repeated Color colors = 34; repeated double dlist = 35;
  map<string, Node> forest = 36;
}
service WireEcho {
  rpc EchoRich (Rich) returns (Rich);
  rpc EchoNode (Node) returns (Node);
}
"""

# protos/iris.proto's messages, each echoed by its own rpc
IRIS_ECHO_PROTO = (
    (ROOT / "protos" / "iris.proto").read_text().split("service IrisClassifier")[0]
    + """
service IrisEcho {
  rpc EchoInput (IrisInput) returns (IrisInput);
  rpc EchoPrediction (IrisPrediction) returns (IrisPrediction);
  rpc EchoBatch (IrisBatch) returns (IrisBatch);
  rpc EchoMatrix (FeatureMatrix) returns (FeatureMatrix);
  rpc EchoIndices (ClassIndices) returns (ClassIndices);
}
"""
)

# packed repeated fields at the top level of each input message: number -> wire type of one element
VARINT, I64, LEN, SGROUP, EGROUP, I32 = 0, 1, 2, 3, 4, 5
PACKED: dict[str, dict[int, int]] = {
    "EchoRich": {18: I64, 19: I32, 20: VARINT, 21: VARINT, 29: VARINT, 30: VARINT, 31: VARINT, 32: I64}
    | {34: VARINT, 35: I64},
    "EchoPrediction": {2: I64},
    "EchoIndices": {1: VARINT},
}


@pytest.fixture(autouse=True)
def _print_seed() -> None:
    print(f"hypothesis seed of this run: FUZZ_SEED={FUZZ_SEED} reproduces it")


@pytest.fixture(scope="module")
def rich_contract() -> Contract:
    return Contract.compile(RICH_PROTO)


@pytest.fixture(scope="module")
def iris_contract() -> Contract:
    return Contract.compile(IRIS_ECHO_PROTO)


@pytest.fixture(scope="module")
def wire_bundle() -> Path:
    return build_bundle("wire")


@pytest.fixture(scope="module")
def rich(wire_bundle: Path, rich_contract: Contract, jvm_started: None):
    model = JavaModel.load(artifact_dir=wire_bundle, class_name=ECHO_CLASS, service=rich_contract.service)
    yield model
    model.close()


@pytest.fixture(scope="module")
def iris(wire_bundle: Path, iris_contract: Contract, jvm_started: None):
    model = JavaModel.load(artifact_dir=wire_bundle, class_name=ECHO_CLASS, service=iris_contract.service)
    yield model
    model.close()


# ------------------------------------------------------------------------------------------ the two parsers


class Refused:
    def __init__(self, why: str) -> None:
        self.why = why

    def __repr__(self) -> str:
        return f"Refused({self.why!r})"


def java_echo(model: JavaModel, rpc: str, data: bytes) -> bytes | Refused:
    """The host's answer, or Refused when it refused the bytes as the caller's (an input error)."""
    try:
        return model.call(rpc, data, timeout=30)
    except JavaModelError as err:
        if err.detail.get("input"):
            return Refused(err.message)
        raise  # anything else (a model error, a StackOverflowError) is a failure of the codec


def python_parse(cls: type[Message], data: bytes) -> Message | Refused:
    try:
        return cls.FromString(data)
    except DecodeError as err:
        return Refused(str(err))


def canonical(msg: Message) -> Any:
    """A message as comparable data: its JSON mapping with every float spelled exactly (float.hex), so
    -0.0 differs from 0.0 and every NaN is alike."""

    def norm(v: Any) -> Any:
        if isinstance(v, float):
            return v.hex()
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        if isinstance(v, list):
            return [norm(x) for x in v]
        return v

    return norm(json_format.MessageToDict(msg, preserving_proto_field_name=True))


def assert_round_trip(model: JavaModel, contract: Contract, rpc: str, msg: Message, data: bytes) -> None:
    answer = java_echo(model, rpc, data)
    assert not isinstance(answer, Refused), (answer, data.hex())
    echoed = contract.output_class(rpc).FromString(answer)
    assert canonical(echoed) == canonical(msg), data.hex()


def assert_same_verdict(model: JavaModel, cls: type[Message], rpc: str, data: bytes) -> None:
    java = java_echo(model, rpc, data)
    python = python_parse(cls, data)
    assert isinstance(java, Refused) == isinstance(python, Refused), (
        f"{rpc} {data.hex()}: host {java!r}, Python {python!r}"
    )
    if not isinstance(java, Refused):
        cls.FromString(java)  # what the host answers is a valid message


# -------------------------------------------------------------------------------------- wire-level helpers


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint((number << 3) | wire_type)


def ld(number: int, payload: bytes) -> bytes:
    return tag(number, LEN) + varint(len(payload)) + payload


def read_varint(b: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = b[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, i


def split_fields(data: bytes) -> list[tuple[int, int, bytes, bytes]]:
    """A well-formed encoding (no groups) as (number, wire type, whole field, value) in order."""
    fields = []
    i = 0
    while i < len(data):
        start = i
        key, i = read_varint(data, i)
        number, wt = key >> 3, key & 7
        value_start = i
        if wt == VARINT:
            _, i = read_varint(data, i)
        elif wt == I64:
            i += 8
        elif wt == I32:
            i += 4
        elif wt == LEN:
            n, value_start = read_varint(data, i)
            i = value_start + n
        else:
            raise AssertionError(f"unexpected wire type {wt}")
        fields.append((number, wt, data[start:i], data[value_start:i]))
    return fields


def unpacked(rpc: str, data: bytes) -> bytes:
    """The same message with its packed top-level fields sent one value per tag (as proto2 writers do)."""
    out = bytearray()
    for number, wt, whole, value in split_fields(data):
        element = PACKED.get(rpc, {}).get(number)
        if wt != LEN or element is None:
            out += whole
            continue
        i = 0
        while i < len(value):
            if element == VARINT:
                _, j = read_varint(value, i)
            else:
                j = i + (8 if element == I64 else 4)
            out += tag(number, element) + value[i:j]
            i = j
    return bytes(out)


def reordered(data: bytes, order: list[int]) -> bytes:
    """The same message with its fields in another order (each field's own values keep their order)."""
    fields = split_fields(data)
    rank = {n: order.index(n) if n in order else len(order) for n, *_ in fields}
    return b"".join(whole for n, _, whole, _ in sorted(fields, key=lambda f: rank[f[0]]))


# ---------------------------------------------------------------------------------- valid messages


INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
UINT32 = st.integers(0, 2**32 - 1)
UINT64 = st.integers(0, 2**64 - 1)
DOUBLE = st.floats()
FLOAT = st.floats(width=32)
TEXT = st.text(max_size=12)
SMALL = {"max_size": 5}

POINT = st.fixed_dictionaries({}, optional={"x": DOUBLE, "y": DOUBLE})
NODE = st.recursive(
    st.fixed_dictionaries({}, optional={"value": INT32, "label": TEXT}),
    lambda inner: st.fixed_dictionaries({"child": inner}, optional={"value": INT32, "label": TEXT}),
    max_leaves=8,
)
RICH_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "d": DOUBLE,
    "f": FLOAT,
    "i32": INT32,
    "i64": INT64,
    "u32": UINT32,
    "u64": UINT64,
    "s32": INT32,
    "s64": INT64,
    "fx32": UINT32,
    "fx64": UINT64,
    "sfx32": INT32,
    "sfx64": INT64,
    "flag": st.booleans(),
    "text": TEXT,
    "blob": st.binary(max_size=12),
    "color": st.sampled_from([0, 1, 2]),  # bound to a Java enum: only the numbers it names
    "origin": POINT,
    "ds": st.lists(DOUBLE, **SMALL),
    "fs": st.lists(FLOAT, **SMALL),
    "is": st.lists(INT32, **SMALL),
    "ls": st.lists(INT64, **SMALL),
    "texts": st.lists(TEXT, **SMALL),
    "points": st.lists(POINT, **SMALL),
    "rows": st.lists(st.fixed_dictionaries({"values": st.lists(DOUBLE, **SMALL)}), **SMALL),
    "weights": st.dictionaries(TEXT, DOUBLE, **SMALL),
    "places": st.dictionaries(INT32, POINT, **SMALL),
    "labels": st.dictionaries(TEXT, TEXT, **SMALL),
    "nickname": TEXT,
    "deltas": st.lists(INT64, **SMALL),
    "flags": st.lists(st.booleans(), **SMALL),
    "us": st.lists(UINT32, **SMALL),
    "fx": st.lists(UINT64, **SMALL),
    "tree": NODE,
    "colors": st.lists(INT32, **SMALL),  # bound to List<Integer>: unknown numbers kept
    "dlist": st.lists(DOUBLE, **SMALL),
    "forest": st.dictionaries(TEXT, NODE, max_size=3),
}
ROW = st.fixed_dictionaries({}, optional={"values": st.lists(DOUBLE, max_size=6)})
INPUT = st.fixed_dictionaries(
    {}, optional={k: DOUBLE for k in ("sepal_length", "sepal_width", "petal_length", "petal_width")}
)
IRIS_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "EchoInput": INPUT,
    "EchoPrediction": st.fixed_dictionaries(
        {}, optional={"species": TEXT, "probabilities": st.lists(DOUBLE, max_size=6)}
    ),
    "EchoBatch": st.fixed_dictionaries({}, optional={"rows": st.lists(INPUT, max_size=6)}),
    "EchoMatrix": st.fixed_dictionaries({}, optional={"rows": st.lists(ROW, max_size=6)}),
    "EchoIndices": st.fixed_dictionaries({}, optional={"indices": st.lists(INT32, max_size=8)}),
}
ENCODINGS = ("canonical", "unpacked", "reordered")


def encode(draw: Callable[..., Any], rpc: str, msg: Message) -> bytes:
    data = msg.SerializeToString()
    how = draw(st.sampled_from(ENCODINGS))
    if how == "unpacked":
        return unpacked(rpc, data)
    if how == "reordered":
        numbers = sorted({n for n, *_ in split_fields(data)})
        return reordered(data, draw(st.permutations(numbers)))
    return data


@seed(FUZZ_SEED)
@FUZZ
@given(data=st.data())
def test_random_rich_messages_round_trip(
    rich: JavaModel, rich_contract: Contract, data: st.DataObject
) -> None:
    values = data.draw(st.fixed_dictionaries({}, optional=RICH_FIELDS), label="fields")
    msg = rich_contract.input_class("EchoRich")(**values)
    assert_round_trip(rich, rich_contract, "EchoRich", msg, encode(data.draw, "EchoRich", msg))


@seed(FUZZ_SEED)
@FUZZ
@given(data=st.data(), rpc=st.sampled_from(sorted(IRIS_FIELDS)))
def test_random_iris_messages_round_trip(
    iris: JavaModel, iris_contract: Contract, data: st.DataObject, rpc: str
) -> None:
    msg = iris_contract.input_class(rpc)(**data.draw(IRIS_FIELDS[rpc], label="fields"))
    assert_round_trip(iris, iris_contract, rpc, msg, encode(data.draw, rpc, msg))


# ---------------------------------------------------------------------------------- malformed input


@st.composite
def mutated(draw: Callable[..., Any], valid: bytes) -> bytes:
    """``valid`` with a few bytes flipped, inserted, removed or duplicated, or cut short."""
    b = bytearray(valid)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "duplicate", "truncate", "set"]))
        i = draw(st.integers(0, len(b)))
        if op == "flip" and i < len(b):
            b[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and i < len(b):
            b[i] = draw(st.sampled_from([0x00, 0x04, 0x06, 0x07, 0x0B, 0x0C, 0x7F, 0x80, 0xFF]))
        elif op == "insert":
            b[i:i] = draw(st.binary(min_size=1, max_size=3))
        elif op == "delete":
            del b[i : i + draw(st.integers(1, 3))]
        elif op == "duplicate":
            b[i:i] = b[i : i + draw(st.integers(1, 8))]
        elif op == "truncate":
            del b[i:]
    return bytes(b)


BAD_UTF8 = st.sampled_from(
    [
        b"\xff",
        b"\xc3\x28",
        b"\xc0\xaf",
        b"\xe0\x80\xaf",
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
        b"\xe2\x82",
        b"\x80",
    ]
)
GOOD_UTF8 = st.text(max_size=4).map(lambda s: s.encode())


@st.composite
def raw_fields(draw: Callable[..., Any], depth: int = 0) -> bytes:
    """A run of fields built to reach the corners of the wire format: field number 0, every wire type
    (6 and 7 too), overlong and truncated varints, lengths that lie, strings that are not UTF-8, packed runs
    of the wrong size, groups (nested, unterminated, closed by another number), deep nesting."""
    out = bytearray()
    for _ in range(draw(st.integers(0, 4))):
        number = draw(st.one_of(st.integers(0, 36), st.sampled_from([2**29 - 1, 1000, 2**28])))
        wt = draw(st.integers(0, 7))
        key = (number << 3) | wt
        form = draw(st.sampled_from(["plain", "plain", "plain", "overlong5", "overlong6", "wide"]))
        if form == "overlong5":
            out += bytes([(key & 0x7F) | 0x80, ((key >> 7) & 0x7F) | 0x80, ((key >> 14) & 0x7F) | 0x80])
            out += bytes([((key >> 21) & 0x7F) | 0x80, (key >> 28) & 0x0F])
        elif form == "overlong6":
            out += (
                varint(key)[:-1]
                + bytes([varint(key)[-1] | 0x80])
                + b"\x80" * (5 - len(varint(key)))
                + b"\x00"
            )
        elif form == "wide":
            out += varint(key | (draw(st.integers(1, 15)) << 32))
        else:
            out += varint(key)
        if wt == VARINT:
            value = varint(draw(UINT64))
            if draw(st.integers(0, 5)) == 0:
                value = draw(st.sampled_from([b"\xff" * 10 + b"\x01", b"\xff" * 9 + b"\x7f", b"\x80", b""]))
            out += value
        elif wt == I64:
            out += draw(st.binary(min_size=0, max_size=9))
        elif wt == I32:
            out += draw(st.binary(min_size=0, max_size=5))
        elif wt == LEN:
            choices = [
                st.binary(max_size=9),
                GOOD_UTF8,
                BAD_UTF8,
                st.binary(max_size=4).map(lambda b: b * 3),  # packed runs of odd sizes
            ]
            if depth < 3:
                choices.append(raw_fields(depth + 1))
            payload = draw(st.one_of(choices))
            lie = draw(st.sampled_from([0, 0, 0, 0, -1, 1, 5, 2**31, 2**32 + 1]))
            out += varint(max(len(payload) + lie, 0)) + payload
        elif wt == SGROUP:
            if depth < 3:
                out += draw(raw_fields(depth + 1))
            end = draw(st.sampled_from([number, number, number, number + 1, None]))
            if end is not None:
                out += tag(end, EGROUP)
        else:  # a stray end of group, wire types 6 and 7
            out += draw(st.binary(max_size=3))
    return bytes(out)


def rich_valid(contract: Contract) -> st.SearchStrategy[bytes]:
    cls = contract.input_class("EchoRich")
    return st.fixed_dictionaries({}, optional=RICH_FIELDS).map(lambda v: cls(**v).SerializeToString())


@seed(FUZZ_SEED)
@FUZZ
@given(data=st.data())
def test_random_bytes_refused_exactly_when_python_refuses(
    rich: JavaModel, rich_contract: Contract, data: st.DataObject
) -> None:
    source = data.draw(st.sampled_from(["random", "mutated", "fields"]), label="source")
    if source == "random":
        raw = data.draw(st.binary(max_size=48), label="bytes")
    elif source == "mutated":
        raw = data.draw(rich_valid(rich_contract).flatmap(mutated), label="bytes")
    else:
        raw = data.draw(raw_fields(), label="bytes")
    assert_same_verdict(rich, rich_contract.input_class("EchoRich"), "EchoRich", raw)


@seed(FUZZ_SEED)
@FUZZ
@given(data=st.data(), rpc=st.sampled_from(sorted(IRIS_FIELDS)))
def test_malformed_iris_messages_refused_exactly_when_python_refuses(
    iris: JavaModel, iris_contract: Contract, data: st.DataObject, rpc: str
) -> None:
    cls = iris_contract.input_class(rpc)
    valid = data.draw(IRIS_FIELDS[rpc].map(lambda v: cls(**v).SerializeToString()), label="valid")
    raw = data.draw(st.one_of(mutated(valid), raw_fields()), label="bytes")
    assert_same_verdict(iris, cls, rpc, raw)


# ------------------------------------------------------------------------------ the corners, one by one


def nested(depth: int, inner: bytes = b"") -> bytes:
    """``depth`` Node messages, each the child (field 1) of the one before."""
    for _ in range(depth):
        inner = ld(1, inner)
    return inner


def groups(depth: int, number: int = 9) -> bytes:
    return tag(number, SGROUP) * depth + tag(number, EGROUP) * depth


CORNERS: dict[str, tuple[str, bytes]] = {
    "tag 0": ("EchoRich", b"\x00\x01"),
    "field number 0, length-delimited": ("EchoRich", b"\x02\x00"),
    "field number 0 in an overlong tag": ("EchoRich", b"\x80\x00\x01"),
    "field number 0 inside a group": ("EchoRich", tag(40, SGROUP) + b"\x00" + tag(40, EGROUP)),
    "field number 0 inside a map entry": ("EchoRich", ld(26, b"\x00\x01")),
    "field number 0 inside a sub-message": ("EchoRich", ld(17, b"\x00\x01")),
    "wire type 6": ("EchoRich", b"\x0e"),
    "wire type 7": ("EchoRich", b"\x0f"),
    "end of group without a start": ("EchoRich", tag(40, EGROUP)),
    "group closed by another number": ("EchoRich", tag(40, SGROUP) + tag(41, EGROUP)),
    "unterminated group": ("EchoRich", tag(40, SGROUP) + b"\x08\x01"),
    "group on a known message field": ("EchoRich", tag(17, SGROUP) + tag(17, EGROUP)),
    "tag of 5 bytes (overlong)": ("EchoRich", b"\xa8\x80\x80\x80\x00\x05"),
    "tag of 6 bytes": ("EchoRich", b"\xa8\x80\x80\x80\x80\x00\x05"),
    "tag beyond 32 bits": ("EchoRich", b"\xa8\x80\x80\x80\x10\x05"),
    "largest field number": ("EchoRich", b"\xf8\xff\xff\xff\x0f\x05"),
    "length of 5 bytes (overlong)": ("EchoRich", b"\x72\x81\x80\x80\x80\x00A"),
    "length of 6 bytes": ("EchoRich", b"\x72\x81\x80\x80\x80\x80\x00A"),
    "length 2**32 + 1 (wraps to 1 in 32 bits)": ("EchoRich", b"\x72\x81\x80\x80\x80\x10A"),
    "length beyond the message": ("EchoRich", b"\x72\x05ab"),
    "varint of 10 bytes": ("EchoRich", b"\x18" + b"\xff" * 9 + b"\x7f"),
    "varint of 11 bytes": ("EchoRich", b"\x18" + b"\xff" * 10 + b"\x01"),
    "truncated fixed64": ("EchoRich", b"\x09\x00\x00"),
    "string not UTF-8": ("EchoRich", b"\x72\x02\xc3\x28"),
    "string with a surrogate": ("EchoRich", b"\x72\x03\xed\xa0\x80"),
    "string with an overlong form": ("EchoRich", b"\x72\x02\xc0\xaf"),
    "string above U+10FFFF": ("EchoRich", b"\x72\x04\xf4\x90\x80\x80"),
    "string cut in a character": ("EchoRich", b"\x72\x02\xe2\x82"),
    "string U+10FFFF": ("EchoRich", b"\x72\x04\xf4\x8f\xbf\xbf"),
    "string with NUL": ("EchoRich", b"\x72\x01\x00"),
    "repeated string not UTF-8": ("EchoRich", ld(22, b"\xff")),
    "map key not UTF-8": ("EchoRich", ld(25, ld(1, b"\xff"))),
    "map value not UTF-8": ("EchoRich", ld(27, ld(2, b"\xff"))),
    "string in a sub-message not UTF-8": ("EchoRich", ld(33, ld(3, b"\xff"))),
    "bytes are not checked": ("EchoRich", ld(15, b"\xff")),
    "unknown field is not checked": ("EchoRich", ld(40, b"\xff")),
    "packed doubles of 12 bytes": ("EchoRich", ld(18, bytes(12))),
    "packed doubles (list) of 12 bytes": ("EchoRich", ld(35, bytes(12)) + b"\x08\x01"),
    "packed floats of 6 bytes": ("EchoRich", ld(19, bytes(6))),
    "packed fixed64 (list) of 4 bytes": ("EchoRich", ld(32, bytes(4)) + bytes(4)),
    "packed varints cut short": ("EchoRich", ld(20, b"\x01\x80") + b"\x01"),
    "packed varints in an unwrapped message cut short": ("EchoRich", ld(24, ld(1, bytes(7)))),
    "unwrapped message overrun": ("EchoRich", ld(24, b"\x09" + bytes(4)) + bytes(8)),
    "map entry overrun": ("EchoRich", ld(26, b"\x08") + b"\x01"),
    "sub-message overrun": ("EchoRich", ld(17, b"\x09\x00") + bytes(7)),
    "known field, wrong wire type": ("EchoRich", b"\x0d\x00\x00\x00\x00"),
    "nesting of 100 messages": ("EchoNode", nested(100)),
    "nesting of 101 messages": ("EchoNode", nested(101)),
    "100 nested groups": ("EchoNode", groups(100)),
    "101 nested groups": ("EchoNode", groups(101)),
    "99 messages and a group": ("EchoNode", nested(99, groups(1))),
    "99 messages and 2 groups": ("EchoNode", nested(99, groups(2))),
    "100 000 nested groups": ("EchoNode", groups(100_000)),
    "5000 nested messages": ("EchoNode", nested(5000)),
}


@pytest.mark.parametrize("corner", sorted(CORNERS))
def test_corner_refused_exactly_when_python_refuses(
    rich: JavaModel, rich_contract: Contract, corner: str
) -> None:
    rpc, raw = CORNERS[corner]
    assert_same_verdict(rich, rich_contract.input_class(rpc), rpc, raw)


@pytest.mark.parametrize("children", [97, 98, 99])
def test_map_entries_count_in_the_depth(rich: JavaModel, rich_contract: Contract, children: int) -> None:
    # Rich.forest: an entry (level 1) holding a Node (level 2) and its children: 98 children is level 100
    raw = ld(36, ld(2, nested(children)))
    assert_same_verdict(rich, rich_contract.input_class("EchoRich"), "EchoRich", raw)
    assert isinstance(java_echo(rich, "EchoRich", raw), Refused) == (children > 98)


def test_deep_nesting_is_an_input_error_not_a_stack_overflow(rich: JavaModel) -> None:
    for raw in (groups(100_000), nested(5000), nested(101), nested(90, groups(11))):
        answer = java_echo(rich, "EchoNode", raw)
        assert isinstance(answer, Refused) and "nested deeper than 100" in answer.why, answer


@pytest.mark.parametrize(
    "why,raw", [(k, CORNERS[k][1]) for k in ("tag 0", "wire type 6", "string not UTF-8")]
)
def test_malformed_input_names_what_is_wrong(rich: JavaModel, why: str, raw: bytes) -> None:
    answer = java_echo(rich, "EchoRich", raw)
    assert isinstance(answer, Refused)
    expected = {"tag 0": "field number 0", "wire type 6": "wire type 6", "string not UTF-8": "Rich.text"}[why]
    assert expected in answer.why, answer


def test_unpacked_repeated_doubles_decode_in_linear_time(iris: JavaModel, iris_contract: Contract) -> None:
    # FeatureRow.values bound to double[]; 200 000 values sent one per tag (9 bytes each): appending with a
    # copy per value took minutes (16e10 bytes copied), the doubling buffer takes milliseconds
    n = 200_000
    values = b"".join(tag(1, I64) + struct.pack("<d", i) for i in range(n))
    data = ld(1, values)  # FeatureMatrix.rows[0]
    started = time.perf_counter()
    answer = java_echo(iris, "EchoMatrix", data)
    elapsed = time.perf_counter() - started
    assert not isinstance(answer, Refused)
    echoed = iris_contract.output_class("EchoMatrix").FromString(answer)
    expected = iris_contract.input_class("EchoMatrix").FromString(data)
    assert list(echoed.rows[0].values) == list(expected.rows[0].values)
    assert elapsed < 5, f"{n} unpacked doubles took {elapsed:.1f} s"

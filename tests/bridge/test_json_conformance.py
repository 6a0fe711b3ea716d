"""The host library's proto3 JSON mapping (ProtoJson.java) against the Python path (runner.contract.codec,
json_format underneath) on the same messages: what Java models' JSON requests and answers go through.

Printing: byte for byte the JSON the Python path gives, but for the order of map entries (the host keeps
the model's order, Python its hash order): messages with more than one map entry compare as parsed JSON.
Parsing: the same message (compared through the Python path's own JSON of it), and the same error class
(BadInput, naming where) for what the Python path refuses.
"""

from __future__ import annotations

import base64
import json
import math
import random
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.schema import service_schema
from runner.contract import MEDIA_JSON, Contract
from runner.errors import BadInput

pytestmark = pytest.mark.usefixtures("jvm_started")

PROTO = """
syntax = "proto3";
package conf;

enum Color { COLOR_UNSET = 0; RED = 1; GREEN = 2; BLUE_GREEN = 3; }

message Inner {
  int32 id = 1;
  string label = 2;
  repeated double xs = 3;
  Color color = 4;
  map<string, int64> counts = 5;
  optional float of = 6;
}

message All {
  double d = 1;
  float f = 2;
  int32 i32 = 3;
  int64 i64 = 4;
  uint32 u32 = 5;
  uint64 u64 = 6;
  sint32 s32 = 7;
  sint64 s64 = 8;
  fixed32 fx32 = 9;
  fixed64 fx64 = 10;
  sfixed32 sf32 = 11;
  sfixed64 sf64 = 12;
  bool b = 13;
  string s = 14;
  bytes by = 15;
  Color color = 16;
  Inner inner = 17;
  repeated double rd = 18;
  repeated float rf = 19;
  repeated int32 ri32 = 20;
  repeated int64 ri64 = 21;
  repeated uint64 ru64 = 22;
  repeated sint32 rs32 = 23;
  repeated bool rb = 24;
  repeated string rs = 25;
  repeated bytes rby = 26;
  repeated Color rcolor = 27;
  repeated Inner rinner = 28;
  map<string, Inner> by_name = 29;
  map<int32, string> by_id = 30;
  map<bool, double> flags = 31;
  map<uint64, Color> colors = 32;
  map<sint64, bytes> blobs = 33;
  optional double od = 34;
  optional string os = 35;
  optional int64 oi64 = 36;
  oneof choice {
    string text = 37;
    Inner nested = 38;
    int32 number = 39;
  }
  fixed64 camel_case_name = 40;
  All child = 41;
}

service Conf { rpc Echo (All) returns (All); }
"""

MESSAGE = "conf.All"
MAX_DEPTH = 64


class Host:
    """ProtoJson over the test contract's schema, its errors as the core's (as a Java model's call maps them)."""

    def __init__(self, contract: Contract) -> None:
        import jpype

        self.contract = contract
        self._mapping = jpype.JClass("org.modelrunner.host.ProtoJson").of(service_schema(contract.service))
        self._host_error = jpype.JClass("org.modelrunner.host.HostException")

    def _mapped(self, fn: Callable[[], Any]) -> bytes:
        from bridge.model import host_error
        from runner.runtimes.java import map_bridge_error

        try:
            return bytes(fn())
        except self._host_error as e:
            raise map_bridge_error(host_error(e), name="conf", rpc="Echo") from None

    def to_json(self, wire: bytes, name: str = MESSAGE) -> bytes:
        return self._mapped(lambda: self._mapping.toJson(name, wire))

    def to_wire(self, body: bytes, name: str = MESSAGE, max_depth: int = MAX_DEPTH) -> bytes:
        return self._mapped(lambda: self._mapping.toWire(name, body, max_depth))


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract.compile(PROTO)


@pytest.fixture(scope="module")
def host(contract: Contract) -> Host:
    return Host(contract)


def python_json(contract: Contract, message: Any) -> bytes:
    return contract.encode(message, MEDIA_JSON)


def python_parse(contract: Contract, body: bytes, name: str = "All") -> Any:
    cls = contract.pool.FindMessageTypeByName(f"conf.{name}")
    from google.protobuf import message_factory

    return contract.decode(message_factory.GetMessageClass(cls), body, MEDIA_JSON, max_json_depth=MAX_DEPTH)


def entries(message: Any) -> int:
    """The most entries any map of ``message`` holds, at any depth."""
    most = 0
    for field, value in message.ListFields():
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            most = max(most, len(value))
            if field.message_type.fields_by_name["value"].message_type is not None:
                most = max([most, *(entries(v) for v in value.values())])
        elif field.message_type is not None:
            items = value if field.is_repeated else [value]
            most = max([most, *(entries(v) for v in items)])
    return most


# ---- random messages ---------------------------------------------------------------------------------

TEXT = [
    "",
    "a",
    "plain text",
    'quote " and \\ backslash',
    "tab\there\nnew line\r",
    "\x00\x01\x1f\x7f",
    "\b\f",
    "é ñ ü",
    "中文字符",
    "emoji 😀 𝄞",
    "\u2028\u2029",
    "/slash/",
    "\ufeffbom",
]


def random_double(rng: random.Random) -> float:
    pick = rng.random()
    if pick < 0.3:
        return rng.random()
    if pick < 0.45:
        return rng.choice(
            [
                0.0,
                -0.0,
                1.0,
                -1.0,
                5.1,
                0.1,
                1e16,
                1e-5,
                1e-4,
                123456789012345.6,
                1e22,
                1e23,
                2.5e-324,
                1.7976931348623157e308,
                2.0**-1074,
                9007199254740993.0,
                100.0,
            ]
        )
    if pick < 0.55:
        return float(rng.randint(-(10**6), 10**6))
    if pick < 0.62:
        return rng.choice([math.nan, math.inf, -math.inf])
    while True:  # any finite double, by its bits
        value: float = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
        if math.isfinite(value):
            return value


def random_float(rng: random.Random) -> float:
    pick = rng.random()
    if pick < 0.2:
        return rng.choice(
            [0.0, -0.0, 0.1, 0.9, 1.5, 3.4028234663852886e38, 1e-45, math.nan, math.inf, -math.inf]
        )
    while True:
        value: float = struct.unpack("<f", struct.pack("<I", rng.getrandbits(32)))[0]
        if math.isfinite(value) or rng.random() < 0.05:
            return value


def random_int(rng: random.Random, lo: int, hi: int) -> int:
    pick = rng.random()
    if pick < 0.3:
        return rng.choice([lo, hi, 0, 1, -1 if lo < 0 else 2, lo + 1, hi - 1])
    if pick < 0.6:
        return rng.randint(max(lo, -1000), min(hi, 1000))
    return rng.randint(lo, hi)


def random_text(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return rng.choice(TEXT)
    return "".join(rng.choice(TEXT) for _ in range(rng.randint(1, 3)))


def random_bytes(rng: random.Random) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 1, 2, 3, 4, 17])))


I32, U32, I64, U64 = (-(2**31), 2**31 - 1), (0, 2**32 - 1), (-(2**63), 2**63 - 1), (0, 2**64 - 1)


def fill_inner(rng: random.Random, m: Any) -> None:
    if rng.random() < 0.6:
        m.id = random_int(rng, *I32)
    if rng.random() < 0.6:
        m.label = random_text(rng)
    if rng.random() < 0.5:
        m.xs.extend(random_double(rng) for _ in range(rng.randint(0, 3)))
    if rng.random() < 0.5:
        m.color = rng.choice([0, 1, 2, 3, 7])  # 7: an open enum's number without a name
    if rng.random() < 0.3:
        for _ in range(rng.randint(0, 2)):
            m.counts[random_text(rng)] = random_int(rng, *I64)
    if rng.random() < 0.3:
        setattr(m, "of", random_float(rng))


_CLASSES: dict[str, Any] = {}


def random_all(rng: random.Random) -> Any:
    from google.protobuf import message_factory

    cls = _CLASSES.get(MESSAGE)
    if cls is None:
        contract = Contract.compile(PROTO)
        cls = _CLASSES[MESSAGE] = message_factory.GetMessageClass(
            contract.pool.FindMessageTypeByName(MESSAGE)
        )
    return _fill_all(rng, cls(), 0)


def _fill_all(rng: random.Random, m: Any, depth: int) -> Any:
    p = 0.5
    scalars: list[tuple[str, Callable[[], Any]]] = [
        ("d", lambda: random_double(rng)),
        ("f", lambda: random_float(rng)),
        ("i32", lambda: random_int(rng, *I32)),
        ("i64", lambda: random_int(rng, *I64)),
        ("u32", lambda: random_int(rng, *U32)),
        ("u64", lambda: random_int(rng, *U64)),
        ("s32", lambda: random_int(rng, *I32)),
        ("s64", lambda: random_int(rng, *I64)),
        ("fx32", lambda: random_int(rng, *U32)),
        ("fx64", lambda: random_int(rng, *U64)),
        ("sf32", lambda: random_int(rng, *I32)),
        ("sf64", lambda: random_int(rng, *I64)),
        ("b", lambda: rng.random() < 0.5),
        ("s", lambda: random_text(rng)),
        ("by", lambda: random_bytes(rng)),
        ("color", lambda: rng.choice([0, 1, 2, 3, 9])),
        ("camel_case_name", lambda: random_int(rng, *U64)),
    ]
    for name, make in scalars:
        if rng.random() < p:
            setattr(m, name, make())
    if rng.random() < p:
        fill_inner(rng, m.inner)
    repeated: list[tuple[str, Callable[[], Any]]] = [
        ("rd", lambda: random_double(rng)),
        ("rf", lambda: random_float(rng)),
        ("ri32", lambda: random_int(rng, *I32)),
        ("ri64", lambda: random_int(rng, *I64)),
        ("ru64", lambda: random_int(rng, *U64)),
        ("rs32", lambda: random_int(rng, *I32)),
        ("rb", lambda: rng.random() < 0.5),
        ("rs", lambda: random_text(rng)),
        ("rby", lambda: random_bytes(rng)),
        ("rcolor", lambda: rng.choice([0, 1, 2, 3, 11])),
    ]
    for name, make in repeated:
        if rng.random() < p:
            getattr(m, name).extend(make() for _ in range(rng.randint(0, 4)))
    if rng.random() < p:
        for _ in range(rng.randint(0, 3)):
            fill_inner(rng, m.rinner.add())
    if rng.random() < p:
        for _ in range(rng.randint(0, 2)):
            fill_inner(rng, m.by_name[random_text(rng)])
    if rng.random() < p:
        for _ in range(rng.randint(0, 2)):
            m.by_id[random_int(rng, *I32)] = random_text(rng)
    if rng.random() < p:
        for _ in range(rng.randint(0, 2)):
            m.flags[rng.random() < 0.5] = random_double(rng)
    if rng.random() < p:
        for _ in range(rng.randint(0, 2)):
            m.colors[random_int(rng, *U64)] = rng.choice([0, 1, 2, 5])
    if rng.random() < p:
        for _ in range(rng.randint(0, 2)):
            m.blobs[random_int(rng, *I64)] = random_bytes(rng)
    if rng.random() < p:
        m.od = random_double(rng)
    if rng.random() < p:
        m.os = random_text(rng)
    if rng.random() < p:
        m.oi64 = random_int(rng, *I64)
    choice = rng.random()
    if choice < 0.2:
        m.text = random_text(rng)
    elif choice < 0.4:
        fill_inner(rng, m.nested)
    elif choice < 0.6:
        m.number = random_int(rng, *I32)
    if depth < 2 and rng.random() < 0.3:
        _fill_all(rng, m.child, depth + 1)
    return m


def same_json(a: bytes, b: bytes, *, exact: bool) -> None:
    if exact:
        assert a == b
    else:
        assert json.loads(a) == json.loads(b)


# ---- printing and parsing random messages -------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_random_messages_print_and_parse_as_python_does(contract: Contract, host: Host, seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(120):
        message = random_all(rng)
        wire = message.SerializeToString()
        expected = python_json(contract, message)
        printed = host.to_json(wire)
        exact = entries(message) <= 1  # map entries: in hash order in Python, even from one parse to the next
        same_json(printed, expected, exact=exact)
        try:
            python_parse(contract, expected)
        except BadInput:  # a float printed as more than the largest float (ToShortestFloat): refused by both
            with pytest.raises(BadInput):
                host.to_wire(expected)
            continue
        # what each printed parses back, both ways, to the same message (compared as the Python path prints it)
        same_json(python_json(contract, python_parse(contract, printed)), expected, exact=exact)
        back = contract.decode(type(message), host.to_wire(expected), "application/x-protobuf")
        same_json(python_json(contract, back), expected, exact=exact)


def respell(rng: random.Random, value: Any, desc: Any) -> Any:
    """``value`` (the Python path's JSON of a ``desc`` message) as another valid proto3 JSON of it: JSON
    names for some keys, 64-bit integers as numbers, enums as numbers, numbers as strings, defaults
    dropped or null."""
    out: dict[str, Any] = {}
    for key, v in value.items():
        f = desc.fields_by_name[key]
        name = f.json_name if rng.random() < 0.5 else f.name
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            vf = f.message_type.fields_by_name["value"]
            out[name] = {k: respell_value(rng, x, vf) for k, x in v.items()}
        elif f.is_repeated:
            out[name] = [respell_value(rng, x, f) for x in v]
        else:
            if not f.has_presence and rng.random() < 0.2 and v in (0, "0", "", False, [], {}):
                continue  # a default left out
            out[name] = respell_value(rng, v, f)
    if rng.random() < 0.1 and "child" in desc.fields_by_name and "child" not in out:
        out["child"] = None  # null: left unset
    return out


def respell_value(rng: random.Random, v: Any, f: Any) -> Any:
    from google.protobuf.descriptor import FieldDescriptor as F

    if f.message_type is not None:
        return respell(rng, v, f.message_type)
    if f.cpp_type in (F.CPPTYPE_INT64, F.CPPTYPE_UINT64) and rng.random() < 0.5:
        return int(v)
    if f.cpp_type == F.CPPTYPE_ENUM and rng.random() < 0.5:
        return v if isinstance(v, int) else f.enum_type.values_by_name[v].number
    if f.cpp_type in (F.CPPTYPE_DOUBLE, F.CPPTYPE_FLOAT) and isinstance(v, float) and rng.random() < 0.3:
        return repr(v)
    if f.cpp_type in (F.CPPTYPE_INT32, F.CPPTYPE_UINT32) and rng.random() < 0.3:
        return str(v)
    return v


@pytest.mark.parametrize("seed", range(4))
def test_other_spellings_parse_to_the_same_message(contract: Contract, host: Host, seed: int) -> None:
    rng = random.Random(1000 + seed)
    for _ in range(120):
        message = random_all(rng)
        expected = python_json(contract, message)
        body = json.dumps(respell(rng, json.loads(expected), message.DESCRIPTOR)).encode()
        try:
            python_parse(contract, body)
        except BadInput:  # as above: a float the Python path prints beyond the largest float
            with pytest.raises(BadInput):
                host.to_wire(body)
            continue
        from_python = python_json(contract, python_parse(contract, body))
        from_host = python_json(
            contract, contract.decode(type(message), host.to_wire(body), "application/x-protobuf")
        )
        same_json(from_host, from_python, exact=entries(message) <= 1)


# ---- edge cases ------------------------------------------------------------------------------------------


def roundtrip(contract: Contract, host: Host, body: dict[str, Any]) -> bytes:
    """``body`` parsed by both; their messages equal; the host's print of it the Python path's, byte for byte."""
    raw = json.dumps(body).encode()
    message = python_parse(contract, raw)
    wire = host.to_wire(raw)
    from_host = contract.decode(type(message), wire, "application/x-protobuf")
    expected = python_json(contract, message)
    exact = entries(message) <= 1
    same_json(python_json(contract, from_host), expected, exact=exact)
    same_json(host.to_json(message.SerializeToString()), expected, exact=exact)
    return expected


EDGES: list[dict[str, Any]] = [
    {},
    {"i64": "-9223372036854775808", "u64": "18446744073709551615", "s64": "9223372036854775807"},
    {"i64": -9223372036854775808, "u64": 18446744073709551615, "sf64": -1, "fx64": 18446744073709551615},
    {"i32": -2147483648, "u32": 4294967295, "s32": 2147483647, "sf32": -2147483648, "fx32": 4294967295},
    {"i32": "12", "u32": 1e3, "i64": "1e3", "s32": 7.0},
    {"d": "NaN", "f": "Infinity", "rd": ["-Infinity", "NaN", 1.5, "2.5", 3], "rf": ["NaN", "-Infinity", 0.1]},
    {"d": -0.0, "f": -0.0, "rd": [-0.0, 0.0], "od": -0.0},
    {"d": 5e-324, "f": 1e-45, "rd": [1.7976931348623157e308, 2.2250738585072014e-308, 1e16, 1e-5, 0.0001]},
    {"f": 3.4028234663852886e38, "rf": [16777217, 0.3, 1.1754943508222875e-38]},
    {"rd": [], "ri64": [], "rinner": [], "by_name": {}, "rs": []},
    {"s": '"\\/\b\f\n\r\t\u0000\u001f\u007f é 😀 \u2028', "rs": ["", "𝄞", "\ud83d\ude00"]},
    {"by": base64.b64encode(b"\x00\xff\xfe binary").decode(), "rby": ["", "AA==", "AA", "-_-_"]},
    {
        "color": "GREEN",
        "rcolor": ["RED", 2, "3", 0, 42],
        "colors": {"7": "BLUE_GREEN", "18446744073709551615": 1},
    },
    {"by_id": {"-5": "minus", "2147483647": "max"}, "flags": {"true": 1.0, "false": "NaN"}},
    {"blobs": {"-9223372036854775808": "AQID"}, "by_name": {"only": {"xs": [1, 2], "counts": {"a": "5"}}}},
    {"by_name": {"set": {"color": "RED", "of": 0.0}}},
    {"od": 0, "os": "", "oi64": "0"},
    {"text": ""},
    {"nested": {}},
    {"number": 0, "text": None},
    {"camelCaseName": "5", "inner": {"label": "x"}},
    {"child": {"child": {"child": {"i64": "1"}}}, "inner": None},
    {"rinner": [{}, {"id": 1}, {"xs": [0.5]}]},
]


@pytest.mark.parametrize("body", EDGES, ids=[json.dumps(b)[:60] for b in EDGES])
def test_edge_cases_as_python(contract: Contract, host: Host, body: dict[str, Any]) -> None:
    roundtrip(contract, host, body)


def test_doubles_and_floats_print_as_python_prints_them(contract: Contract, host: Host) -> None:
    rng = random.Random(99)
    message = random_all(rng)
    message.Clear()
    for i in range(4000):
        pick = i % 4
        if pick == 0:
            value = rng.random() * 10 ** rng.randint(-30, 30)
        elif pick == 1:
            value = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
        elif pick == 2:
            value = math.ldexp(1.0, rng.randint(-1074, 1023))  # powers of two: a narrower gap below
        else:
            value = float(rng.randint(-(2**60), 2**60))
        if math.isfinite(value):
            message.rd.append(value)
        message.rf.append(random_float(rng))
    assert host.to_json(message.SerializeToString()) == python_json(contract, message)


def test_defaults_printed_as_python_prints_them(contract: Contract, host: Host) -> None:
    printed = json.loads(roundtrip(contract, host, {}))
    assert printed["d"] == 0.0 and printed["i64"] == "0" and printed["rd"] == [] and printed["by_name"] == {}
    assert printed["color"] == "COLOR_UNSET" and printed["s"] == "" and printed["by"] == ""
    # fields with presence only when set: messages, oneof members, proto3 optional
    assert not {"inner", "child", "od", "os", "oi64", "text", "nested", "number"} & printed.keys()
    assert list(printed)[:3] == ["d", "f", "i32"]  # declaration order


def test_64_bit_integers_print_as_strings(contract: Contract, host: Host) -> None:
    printed = json.loads(roundtrip(contract, host, {"i64": 2**63 - 1, "u64": 2**64 - 1, "i32": -1}))
    assert printed["i64"] == "9223372036854775807" and printed["u64"] == "18446744073709551615"
    assert printed["i32"] == -1


# ---- refusals -----------------------------------------------------------------------------------------

REFUSED: list[tuple[str, bytes]] = [
    ("not JSON", b"{"),
    ("empty body", b""),
    ("trailing data", b"{} x"),
    ("a list", b"[1, 2]"),
    ("unknown field", b'{"nope": 1}'),
    ("unknown nested field", b'{"inner": {"nope": 1}}'),
    ("true for a double", b'{"d": true}'),
    ("false for a float", b'{"rf": [false]}'),
    ("true for an enum", b'{"color": true}'),
    ("true for a nested double", b'{"rinner": [{"xs": [true]}]}'),
    ("true for a map double", b'{"flags": {"true": true}}'),
    ("bool for an int", b'{"i32": true}'),
    ("number for a bool", b'{"b": 1}'),
    ("number for a string", b'{"s": 5}'),
    ("int32 out of range", b'{"i32": 2147483648}'),
    ("uint32 negative", b'{"u32": -1}'),
    ("int64 out of range", b'{"i64": "9223372036854775808"}'),
    ("uint64 out of range", b'{"u64": 18446744073709551616}'),
    ("fraction for an int", b'{"i64": 1.5}'),
    ("bad int string", b'{"i32": "twelve"}'),
    ("unquoted NaN", b'{"d": NaN}'),
    ("unquoted Infinity", b'{"d": Infinity}'),
    ("lower-case nan", b'{"d": "nan"}'),
    ("double too large", b'{"d": 1e400}'),
    ("float too large", b'{"f": 3.5e38}'),
    ("unknown enum name", b'{"color": "PURPLE"}'),
    ("scalar for a message", b'{"inner": 5}'),
    ("object for a repeated field", b'{"rd": {"a": 1}}'),
    ("null in a list", b'{"rd": [1, null]}'),
    ("two oneof members", b'{"text": "a", "number": 1}'),
    ("bad map bool key", b'{"flags": {"yes": 1.0}}'),
    ("bad map int key", b'{"by_id": {"x": "a"}}'),
    ("unpaired surrogate", b'{"s": "\\ud800"}'),
    ("too deep", b'{"child": ' * 70 + b"{}" + b"}" * 70),
    ("too deep in a value", b'{"rd": ' + b"[" * 70 + b"]" * 70 + b"}"),
]


@pytest.mark.parametrize("body", [b for _, b in REFUSED], ids=[n for n, _ in REFUSED])
def test_refusals_as_python(contract: Contract, host: Host, body: bytes) -> None:
    with pytest.raises(BadInput):
        python_parse(contract, body)
    with pytest.raises(BadInput) as refused:
        host.to_wire(body)
    err = refused.value
    assert err.message
    assert "java_stack" not in err.detail


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b'{"rinner": [{}, {"xs": [1, true]}]}', "All.rinner[1].xs[1]"),
        (b'{"inner": {"nope": 1}}', "All.inner.nope"),
        (b'{"by_name": {"k": {"id": "x"}}}', "All.by_name[k].id"),
        (b'{"byName": {"k": {"color": false}}}', "All.byName[k].color"),  # as the request spells it
        (b'{"child": {"i32": 1e20}}', "All.child.i32"),
    ],
)
def test_refusals_name_the_field(host: Host, body: bytes, path: str) -> None:
    with pytest.raises(BadInput) as refused:
        host.to_wire(body)
    assert refused.value.detail["path"] == path
    parent, _, name = path.rpartition(".")
    assert path in refused.value.message or f"'{name}' at {parent}" in refused.value.message


def test_depth_limit_is_the_callers(contract: Contract, host: Host) -> None:
    body = b'{"child": ' * 5 + b"{}" + b"}" * 5
    host.to_wire(body, max_depth=6)
    with pytest.raises(BadInput, match="nested deeper than 5 levels") as refused:
        host.to_wire(body, max_depth=5)
    assert refused.value.detail["max_json_depth"] == 5


def test_an_answer_that_is_not_the_message_is_the_models_fault(host: Host) -> None:
    from runner.errors import ModelError

    with pytest.raises(ModelError, match="not a conf.All"):
        host.to_json(b"\x0a\x05ab")  # field 1 (a double) as a truncated length-delimited value


# ---- through a real Java model -----------------------------------------------------------------------


def test_iris_model_answers_json_as_the_python_path(sample_bundles: dict[str, Path]) -> None:
    from bridge.model import JavaModel

    folder = sample_bundles["iris"]
    contract = Contract.compile((folder / "model.proto").read_text())
    meta = json.loads((folder / "metadata.json").read_text())
    rng = random.Random(7)
    with JavaModel.load(
        artifact_dir=folder, class_name=meta["entry_point"], service=contract.service
    ) as model:
        assert model.json_rpcs == {"Classify", "ClassifyBatch", "ClassifyMatrix"}
        for _ in range(200):
            row = {
                k: round(rng.uniform(0, 8), rng.randint(0, 3))
                for k in ("sepal_length", "sepal_width", "petal_length", "petal_width")
            }
            for rpc, body in (("Classify", row), ("ClassifyBatch", {"rows": [row, row]})):
                raw = json.dumps(body).encode()
                message = contract.decode(contract.input_class(rpc), raw, MEDIA_JSON)
                answer = contract.output_class(rpc).FromString(model.call(rpc, message.SerializeToString()))
                expected = contract.encode(answer, MEDIA_JSON)
                assert model.call_json(rpc, raw, json_in=True, json_out=True) == expected
                assert (
                    model.call_json(rpc, message.SerializeToString(), json_in=False, json_out=True)
                    == expected
                )
                wire = model.call_json(rpc, raw, json_in=True, json_out=False)
                assert contract.output_class(rpc).FromString(wire) == answer

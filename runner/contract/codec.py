"""Converting one contract's messages to and from request/response bodies.

JSON follows the proto3 JSON mapping (``json_format``): input accepts the ``.proto`` field names and
their lowerCamelCase JSON names; output uses the ``.proto`` field names and prints fields that have
their default value (so a zero score is ``0``, not missing). Flat messages (plain scalar fields only)
take a shortcut (:class:`FlatPlan`) that gives exactly what json_format would, much faster.

One deliberate difference from json_format, in request bodies (``decode``, ``from_json``): a JSON
``true``/``false`` for a float, double or enum field is refused (json_format reads it as 1.0/0.0 or enum
number 1/0; the proto3 JSON mapping, and protobuf's C++ and Java parsers, take only numbers, numerals and
"NaN"/"Infinity"/"-Infinity" there, or enum names). ``parse_dict`` alone stays json_format's exact equal.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, cast

from google.protobuf import descriptor_pb2, descriptor_pool, json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.internal import type_checkers
from google.protobuf.message import DecodeError, Message

from runner.contract.media import is_json, is_protobuf, normalize_media, unsupported_media
from runner.errors import BadInput

DEFAULT_MAX_JSON_DEPTH = 64
"""Deepest JSON nesting accepted by :meth:`Codec.decode` (Settings.max_json_depth overrides it)."""


def descriptor_of(message: Message | type[Message]) -> Descriptor:
    """The descriptor of a message or message class. The stubs type it as "pure-Python or upb
    descriptor"; both are ``descriptor.Descriptor`` at run time (its isinstance check says so)."""
    return cast(Descriptor, message.DESCRIPTOR)


def proto3_optional_fields(desc: Descriptor) -> frozenset[str]:
    """Names of the fields of ``desc`` declared ``optional`` in proto3 (each sits alone in a synthetic
    oneof, which the descriptor API does not tell apart from a real one)."""
    proto = descriptor_pb2.DescriptorProto()
    desc.CopyToProto(proto)
    return frozenset(f.name for f in proto.field if f.proto3_optional)


class Codec:
    """JSON and binary conversion of the messages of one descriptor pool (one contract version)."""

    def __init__(self, pool: descriptor_pool.DescriptorPool):
        self.pool = pool
        # descriptor full name -> FlatPlan, or None when json_format must handle the message
        self._flat_plans: dict[str, FlatPlan | None] = {}
        # descriptor full name -> whether its messages can hold a float, double or enum field at any depth
        self._holds_floats: dict[str, bool] = {}

    def decode(
        self,
        cls: type[Message],
        payload: bytes | bytearray | memoryview,
        media: str,
        *,
        max_json_depth: int = DEFAULT_MAX_JSON_DEPTH,
    ) -> Message:
        """Parse a request body (JSON or binary protobuf) into ``cls``; BadInput says what is wrong."""
        name = cls.DESCRIPTOR.full_name
        if is_protobuf(media):
            msg = cls()
            try:
                msg.ParseFromString(bytes(payload))
            except (DecodeError, RuntimeError, ValueError) as err:
                raise BadInput(f"body is not a valid binary {name}: {err}", detail={"message": name}) from err
            return msg
        if is_json(media):
            return self.from_json(cls, payload, max_json_depth=max_json_depth)
        raise unsupported_media("unsupported media type", media)

    def from_json(
        self,
        cls: type[Message],
        payload: bytes | bytearray | memoryview | str | dict[str, Any],
        *,
        max_json_depth: int = DEFAULT_MAX_JSON_DEPTH,
    ) -> Message:
        """Parse JSON text, or an already parsed JSON object, into ``cls``."""
        name = cls.DESCRIPTOR.full_name
        obj: Any
        if isinstance(payload, (bytes, bytearray, memoryview, str)):
            text = bytes(payload).decode("utf-8", "replace") if not isinstance(payload, str) else payload
            check_json_depth(text, max_json_depth)
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as err:
                raise BadInput(
                    f"body is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}",
                    detail={"line": err.lineno, "column": err.colno},
                ) from err
            except RecursionError as err:
                raise BadInput(f"JSON nested deeper than {max_json_depth} levels") from err
        else:
            obj = payload
        if not isinstance(obj, dict):
            raise BadInput(
                f"expected a JSON object for {name}, got {type(obj).__name__}", detail={"message": name}
            )
        try:
            return self.parse_dict(cls, obj, strict_floats=True)
        except json_format.ParseError as err:
            raise json_error(name, str(err)) from err
        except RecursionError as err:
            raise BadInput(f"JSON nested deeper than {max_json_depth} levels") from err

    def parse_dict(self, cls: type[Message], obj: dict[str, Any], *, strict_floats: bool = False) -> Message:
        """``json_format.ParseDict(obj, cls())`` (unknown fields refused; json_format's errors).

        Flat messages (scalar fields only) with plainly valid values take a shortcut giving the very
        same message; anything else (unknown names, nulls, strings for numbers, ...) goes to json_format.
        ``strict_floats`` (request bodies): a true/false for a float, double or enum field is refused
        (BadInput naming it) where json_format would read 1.0/0.0 or enum number 1/0."""
        desc = descriptor_of(cls)
        plan = self.flat_plan(desc)
        if plan is not None:
            msg = plan.parse(cls, obj)
            if msg is not None:
                return msg
        if strict_floats and self.holds_floats(desc):
            where = _bool_for_float(desc, obj, desc.name, self.holds_floats)
            if where is not None:
                raise BadInput(
                    f"invalid {desc.full_name}: a number or enum field takes no true or false, at {where}",
                    detail={"message": desc.full_name, "path": where},
                )
        msg = cls()
        json_format.ParseDict(obj, msg, ignore_unknown_fields=False, descriptor_pool=self.pool)
        return msg

    def holds_floats(self, desc: Descriptor) -> bool:
        """Whether a ``desc`` message can hold a float, double or enum field at any depth."""
        known = self._holds_floats.get(desc.full_name)
        if known is not None:
            return known
        self._holds_floats[desc.full_name] = False  # a recursive message: what its other fields say
        found = desc.full_name in _FLOAT_WRAPPERS or any(
            f.cpp_type in _FLOAT_TYPES or (f.message_type is not None and self.holds_floats(f.message_type))
            for f in desc.fields
        )
        self._holds_floats[desc.full_name] = found
        return found

    def flat_plan(self, desc: Descriptor) -> FlatPlan | None:
        """The shortcut for messages of type ``desc``, or None when json_format handles them."""
        try:
            return self._flat_plans[desc.full_name]
        except KeyError:
            plan = self._flat_plans[desc.full_name] = FlatPlan.build(desc)
            return plan

    def encode(self, message: Message, media: str) -> bytes:
        """Serialize a response message as JSON (proto3 mapping, .proto field names) or binary."""
        if is_protobuf(media):
            return message.SerializeToString()
        if is_json(media) or not normalize_media(media) or normalize_media(media) == "*/*":
            return self.to_json(message).encode("utf-8")
        raise unsupported_media("cannot produce", media)

    def to_json(self, message: Message) -> str:
        return json.dumps(self.to_dict(message), ensure_ascii=False)

    def to_dict(self, message: Message) -> dict[str, Any]:
        """proto3 JSON mapping as a dict: .proto field names, in declaration order, defaults printed."""
        desc = descriptor_of(message)
        plan = self.flat_plan(desc)
        if plan is not None:
            return plan.dump(message)
        d = json_format.MessageToDict(
            message,
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
            descriptor_pool=self.pool,
        )
        return cast(dict[str, Any], in_field_order(desc, d))


def json_error(name: str, text: str) -> BadInput:
    """json_format's ParseError text for message ``name`` as a BadInput naming the field and path."""
    detail: dict[str, Any] = {"message": name}
    m = re.search(r'Message type "([^"]+)" has no field named "([^"]+)" at "([^"]*)"', text)
    if m:
        msg_type, field, path = m.groups()
        detail.update(field=field, path=f"{path}.{field}", message=msg_type)
        return BadInput(f"unknown field {field!r} at {path} (a {msg_type} has no such field)", detail=detail)
    m = re.search(r" at ([\w.\[\]]+?)\.*$", text)
    if m:
        detail["path"] = m.group(1)
    text = re.sub(r"^(Failed to parse \w+ field: )+", "", text).rstrip(".")
    return BadInput(f"invalid {name}: {text}", detail=detail)


def in_field_order(desc: Descriptor, d: Any) -> Any:
    """``d`` (json_format's dict of a ``desc`` message, or one of its values) with the fields of every
    message in declaration order."""
    # json_format lists set fields before defaulted ones; clients read better in .proto order.
    if not isinstance(d, dict) or desc.full_name.startswith("google.protobuf."):
        return d
    out: dict[str, Any] = {}
    for f in desc.fields:
        if f.name not in d:
            continue
        v = d[f.name]
        mt = f.message_type
        if mt is not None and not mt.GetOptions().map_entry:
            v = [in_field_order(mt, x) for x in v] if f.is_repeated else in_field_order(mt, v)
        out[f.name] = v
    return out


_JSON_STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET_RE = re.compile(r"[\[\]{}]")


def check_json_depth(text: str, max_depth: int) -> None:
    """Refuse JSON nested deeper than ``max_depth`` before parsing it (json's decoder recurses)."""
    if text.count("[") + text.count("{") <= max_depth:
        return  # cannot be that deep: the common, cheap case
    # strings may hold brackets: drop them (in C), then follow the brackets that are left
    depth = 0
    for ch in _JSON_BRACKET_RE.findall(_JSON_STRING_RE.sub("", text)):
        if ch in "[{":
            depth += 1
            if depth > max_depth:
                raise BadInput(
                    f"JSON nested deeper than {max_depth} levels", detail={"max_json_depth": max_depth}
                )
        else:
            depth -= 1


# ---- JSON booleans for float, double and enum fields -----------------------------------------------------

_FLOAT_TYPES = (FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT, FieldDescriptor.CPPTYPE_ENUM)
_FLOAT_WRAPPERS = ("google.protobuf.DoubleValue", "google.protobuf.FloatValue")


def _bool_for_float(
    desc: Descriptor, obj: Any, path: str, holds_floats: Callable[[Descriptor], bool]
) -> str | None:
    """Where in ``obj`` (the JSON of a ``desc`` message) a boolean stands for a float, double or enum, if
    anywhere (``holds_floats`` says which messages need no look)."""
    if desc.full_name in _FLOAT_WRAPPERS:
        return path if isinstance(obj, bool) else None
    if not isinstance(obj, dict) or desc.full_name.startswith("google.protobuf."):
        return None  # json_format says what is wrong with it; Struct, Value, Any take anything
    fields = desc.fields_by_name
    by_json = {f.json_name: f for f in desc.fields}
    for key, value in obj.items():
        f = fields.get(key) or by_json.get(key)
        if f is None or value is None:
            continue
        where = f"{path}.{key}"
        mt = f.message_type
        if mt is not None and mt.GetOptions().map_entry:
            vf = mt.fields_by_name["value"]
            if isinstance(value, dict) and (vf.cpp_type in _FLOAT_TYPES or vf.message_type is not None):
                for k, v in value.items():
                    found = _bool_for_value(vf, v, f"{where}[{k}]", holds_floats)
                    if found:
                        return found
        elif f.is_repeated and isinstance(value, list):
            for i, v in enumerate(value):
                found = _bool_for_value(f, v, f"{where}[{i}]", holds_floats)
                if found:
                    return found
        else:
            found = _bool_for_value(f, value, where, holds_floats)
            if found:
                return found
    return None


def _bool_for_value(
    f: FieldDescriptor, value: Any, where: str, holds_floats: Callable[[Descriptor], bool]
) -> str | None:
    if f.cpp_type in _FLOAT_TYPES:
        return where if isinstance(value, bool) else None
    if f.message_type is not None and holds_floats(f.message_type):
        return _bool_for_float(f.message_type, value, where, holds_floats)
    return None


# ---- the flat-message shortcut of the JSON mapping -----------------------------------------------------

_NO = object()  # "not plainly valid: ask json_format"
_F = FieldDescriptor
_FLOAT32_MAX = float.fromhex("0x1.fffffep+127")
_EXACT_INT = 2**53

InConverter = Callable[[Any], object]
"""A JSON value -> the field's Python value, or ``_NO`` when the value is not plainly valid."""
OutConverter = Callable[[Any], Any]
"""A field's Python value -> its JSON value."""


def _in_double(v: Any) -> object:
    t = type(v)
    if t is float:
        return v if v - v == 0.0 else _NO  # NaN and infinities only as json_format's quoted strings
    if t is int and -_EXACT_INT <= v <= _EXACT_INT:
        return float(v)
    return _NO


def _in_float(v: Any) -> object:
    t = type(v)
    if t is float:
        return v if v - v == 0.0 and -_FLOAT32_MAX <= v <= _FLOAT32_MAX else _NO
    if t is int and -_EXACT_INT <= v <= _EXACT_INT:
        return float(v)
    return _NO


def _in_int(lo: int, hi: int) -> InConverter:
    def conv(v: Any) -> object:
        return v if type(v) is int and lo <= v <= hi else _NO

    return conv


def _in_bool(v: Any) -> object:
    return v if type(v) is bool else _NO


_SURROGATE_RE = re.compile("[\ud800-\udfff]")  # left in a str by json.loads only when unpaired


def _in_str(v: Any) -> object:
    if type(v) is not str:
        return _NO
    return v if v.isascii() or _SURROGATE_RE.search(v) is None else _NO


def _out_double(v: float) -> float | str:
    if v - v == 0.0:
        return v
    return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")


def _out_float(v: float) -> float | str:
    if v - v == 0.0:
        return type_checkers.ToShortestFloat(v)  # what json_format prints float fields with
    return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")


def _identity(v: Any) -> Any:
    return v


_FLAT_CONVERTERS: dict[int, tuple[InConverter, OutConverter]] = {
    _F.CPPTYPE_DOUBLE: (_in_double, _out_double),
    _F.CPPTYPE_FLOAT: (_in_float, _out_float),
    _F.CPPTYPE_INT32: (_in_int(-(2**31), 2**31 - 1), _identity),
    _F.CPPTYPE_UINT32: (_in_int(0, 2**32 - 1), _identity),
    _F.CPPTYPE_INT64: (_in_int(-(2**63), 2**63 - 1), str),
    _F.CPPTYPE_UINT64: (_in_int(0, 2**64 - 1), str),
    _F.CPPTYPE_BOOL: (_in_bool, _identity),
    _F.CPPTYPE_STRING: (_in_str, _identity),
}


class FlatPlan:
    """The proto3 JSON mapping of a message whose fields are all plain scalars (or repeated ones):
    numbers, bools, strings, proto3 ``optional`` ones included (printed only when set, as json_format
    does); no bytes, enums, messages, maps, oneofs or extensions.

    ``dump`` is exactly what ``Codec.to_dict`` gets from json_format (.proto names, declaration
    order, defaults printed); ``parse`` builds the message json_format would, or returns None when a
    value is not plainly valid (json_format then parses it, or says what is wrong)."""

    def __init__(
        self,
        by_key: dict[str, tuple[str, InConverter, bool]],
        out: list[tuple[str, OutConverter, bool]],
        presence: frozenset[str] = frozenset(),
    ):
        self.by_key = by_key  # JSON key -> (field name, converter, repeated)
        self.out = out  # (field name, converter, repeated) in declaration order
        self.presence = presence  # proto3 optional fields: printed only when set

    @classmethod
    def build(cls, desc: Descriptor) -> FlatPlan | None:
        if desc.full_name.startswith("google.protobuf.") or desc.extension_ranges:
            return None
        optional = proto3_optional_fields(desc) if desc.oneofs else frozenset()
        if len(desc.oneofs) != len(optional):
            return None  # a real oneof
        by_key: dict[str, tuple[str, InConverter, bool]] = {}
        out: list[tuple[str, OutConverter, bool]] = []
        for f in desc.fields:
            convs = _FLAT_CONVERTERS.get(f.cpp_type)
            if convs is None or f.type == _F.TYPE_BYTES or (f.has_presence and f.name not in optional):
                return None
            by_key[f.name] = (f.name, convs[0], f.is_repeated)
            out.append((f.name, convs[1], f.is_repeated))
        for f in desc.fields:  # json_format looks a key up as a JSON name first
            by_key[f.json_name] = by_key[f.name]
        return cls(by_key, out, optional)

    def parse(self, msg_cls: type[Message], obj: dict[str, Any]) -> Message | None:
        kwargs: dict[str, Any] = {}
        by_key = self.by_key
        for key, value in obj.items():
            entry = by_key.get(key)
            if entry is None or entry[0] in kwargs:  # unknown, or given twice (.proto and JSON name)
                return None
            name, conv, repeated = entry
            if repeated:
                if type(value) is not list:
                    return None
                items = [conv(x) for x in value]
                if _NO in items:
                    return None
                kwargs[name] = items
            else:
                value = conv(value)
                if value is _NO:
                    return None
                kwargs[name] = value
        try:
            return msg_cls(**kwargs)
        except Exception:  # noqa: BLE001 (a safety net: what the constructor refuses, json_format reports)
            return None

    def dump(self, message: Message) -> dict[str, Any]:
        d: dict[str, Any] = {}
        presence = self.presence
        for name, conv, repeated in self.out:
            if presence and name in presence and not message.HasField(name):
                continue
            value = getattr(message, name)
            d[name] = [conv(x) for x in value] if repeated else conv(value)
        return d

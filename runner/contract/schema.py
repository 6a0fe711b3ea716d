"""JSON Schema (OpenAPI 3 compatible subset) of messages under the proto3 JSON mapping."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

_INT64_TYPES = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}
_INT32_TYPES = {
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_SINT32,
    FieldDescriptor.TYPE_SFIXED32,
}
_UINT32_TYPES = {FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32}
NON_FINITE = ("NaN", "Infinity", "-Infinity")

_WKT_SCHEMAS: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?\d+(\.\d+)?s$"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object", "properties": {}},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
        "additionalProperties": True,
    },
    "google.protobuf.DoubleValue": {"type": "number", "nullable": True},
    "google.protobuf.FloatValue": {"type": "number", "nullable": True},
    "google.protobuf.Int64Value": {"type": "string", "format": "int64", "nullable": True},
    "google.protobuf.UInt64Value": {"type": "string", "format": "uint64", "nullable": True},
    "google.protobuf.Int32Value": {"type": "integer", "format": "int32", "nullable": True},
    "google.protobuf.UInt32Value": {"type": "integer", "format": "int64", "minimum": 0, "nullable": True},
    "google.protobuf.BoolValue": {"type": "boolean", "nullable": True},
    "google.protobuf.StringValue": {"type": "string", "nullable": True},
    "google.protobuf.BytesValue": {"type": "string", "format": "byte", "nullable": True},
}


def message_schema(desc: Descriptor, required: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """JSON Schema of ``desc`` messages. Nested messages are inlined; a recursive reference becomes a
    plain ``object``. ``required`` (message full name -> field names, runner.contract.RequiredFields'
    ``spec``) gives each such message's schema its ``required`` list."""
    return _message_schema(desc, (), required or {})


def _scalar_schema(
    field: FieldDescriptor, stack: tuple[str, ...], required: Mapping[str, Sequence[str]]
) -> dict[str, Any]:
    t = field.type
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        # proto3 JSON writes (and reads) the non-finite values as these strings
        number = {"type": "number", "format": "double" if t == FieldDescriptor.TYPE_DOUBLE else "float"}
        return {"anyOf": [number, {"type": "string", "enum": list(NON_FINITE)}]}
    if t in _INT64_TYPES:
        # proto3 JSON prints 64-bit integers as strings (numbers are accepted on input)
        return {"type": "string", "format": "int64", "pattern": r"^-?\d+$"}
    if t in _INT32_TYPES:
        return {"type": "integer", "format": "int32"}
    if t in _UINT32_TYPES:
        return {"type": "integer", "format": "int64", "minimum": 0, "maximum": 4294967295}
    if t == FieldDescriptor.TYPE_BOOL:
        return {"type": "boolean"}
    if t == FieldDescriptor.TYPE_STRING:
        return {"type": "string"}
    if t == FieldDescriptor.TYPE_BYTES:
        return {"type": "string", "format": "byte"}
    # what is left has an enum or a message type
    if field.enum_type is not None:
        return {"type": "string", "enum": [v.name for v in field.enum_type.values]}
    if field.message_type is not None:
        return _message_schema(field.message_type, stack, required)
    raise AssertionError(f"{field.full_name}: field type {t} has neither an enum nor a message type")


def _message_schema(
    desc: Descriptor, stack: tuple[str, ...], required: Mapping[str, Sequence[str]]
) -> dict[str, Any]:
    if desc.full_name in _WKT_SCHEMAS:
        return dict(_WKT_SCHEMAS[desc.full_name])
    if desc.full_name in stack:
        return {"type": "object", "description": f"{desc.full_name} (recursive)"}
    stack = (*stack, desc.full_name)
    props: dict[str, Any] = {}
    for f in desc.fields:
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            value_field = f.message_type.fields_by_name["value"]
            props[f.name] = {
                "type": "object",
                "additionalProperties": _scalar_schema(value_field, stack, required),
            }
        elif f.is_repeated:
            props[f.name] = {"type": "array", "items": _scalar_schema(f, stack, required)}
        else:
            props[f.name] = _scalar_schema(f, stack, required)
    schema = {"type": "object", "title": desc.full_name, "properties": props, "additionalProperties": False}
    must = [n for n in required.get(desc.full_name, ()) if n in props]  # a required oneof has no property
    if must:
        schema["required"] = must
    return schema

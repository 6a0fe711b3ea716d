"""The data files of the Acumos generic runner's utility routes (`/getBinary*`, `/transform*`) as
messages of a contract: a CSV file with a header line, or a JSON file.

CSV, as the Acumos runner reads it: the first line names the columns, each following line is a row,
cells are separated by ',' (no quoting). The input message's fields are filled in declaration order:

- a scalar field takes the cell of the column named like it (the first such column of a line; a later
  line overrides an earlier one), a repeated scalar field every such cell of every line;
- a message field is built from the cells of each line the same way (its own fields by name, nested
  messages recursively): a repeated message field gets one element per line, a singular one the last
  line's;
- an empty cell leaves its field unset; columns naming no field are ignored.

Values are read as Java reads them there (Integer.parseInt for 32-bit kinds, Long.parseLong for 64-bit
ones, unsigned kinds taking the two's-complement bits; Double.parseDouble; bytes are the cell's UTF-8;
an enum is its number, or here also its name), with one difference: where the Acumos runner answers an
empty 200, every problem is a BadInput naming the line, the column and the field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from runner.contract import Contract, descriptor_of
from runner.errors import BadInput

_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(NaN|Infinity|([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?)[fFdD]?")
_INT32 = (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32)
_UINT32 = (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32)
_INT64 = (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64)
_UINT64 = (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64)


def operation(contract: Contract, given: str | None) -> str:
    """The rpc an `operation` parameter names; without one, the contract's only rpc."""
    if given:
        contract.method(given)  # MethodNotFound naming the contract's rpcs
        return given
    rpcs = contract.method_names()
    if len(rpcs) == 1:
        return rpcs[0]
    raise BadInput(
        f"name the rpc with the 'operation' parameter: the contract has {', '.join(rpcs)}",
        {"parameter": "operation", "methods": rpcs, "hint": "e.g. -F operation=" + (rpcs[0] if rpcs else "")},
    )


def message_from_csv(contract: Contract, rpc: str, data: bytes) -> Message:
    """The input message of ``rpc`` from a CSV file with a header line (see the module's docstring)."""
    cls = contract.input_class(rpc)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BadInput(f"the CSV file is not UTF-8 text (byte {err.start})", {"offset": err.start}) from None
    lines = [line.rstrip("\r") for line in text.split("\n")]
    header = lines[0].split(",")
    rows = [(number, line.split(",")) for number, line in enumerate(lines[1:], 2) if line.strip()]
    desc = descriptor_of(cls)
    if not (set(header) & _field_names(desc)):
        raise BadInput(
            f"no column of the CSV header names a field of {desc.full_name}: the header line is "
            f"{lines[0][:200]!r}",
            {
                "header": header[:50],
                "fields": sorted(_field_names(desc))[:50],
                "message": desc.full_name,
                "hint": "the first line names the columns, as the input message's fields are named",
            },
        )
    if not rows:
        raise BadInput("the CSV file has a header line but no rows", {"header": header[:50]})
    message = cls()
    for field in desc.fields:
        if _is_map(field):
            continue
        target: Any = getattr(message, field.name)
        inner = _message_type(field)
        for number, cells in rows:
            if inner is not None:
                sub = target.add() if _repeated(field) else target
                sub.SetInParent()
                _fill_row(sub, inner, header, cells, number, (desc.full_name,))
            else:
                values = _cells(field, header, cells, number)
                if _repeated(field):
                    target.extend(values)
                elif values:
                    setattr(message, field.name, values[0])
    return message


def message_from_json(contract: Contract, rpc: str, data: bytes, *, max_json_depth: int) -> Message:
    """The input message of ``rpc`` from a JSON file (proto3 JSON mapping, unknown fields refused)."""
    return contract.from_json(contract.input_class(rpc), data, max_json_depth=max_json_depth)


def _fill_row(
    message: Message,
    desc: Descriptor,
    header: Sequence[str],
    cells: Sequence[str],
    number: int,
    path: tuple[str, ...],
) -> None:
    """One line's cells into ``message`` (of ``desc``, held by the messages of ``path``)."""
    if desc.full_name in path:
        raise BadInput(
            f"{desc.full_name} holds itself: a recursive message cannot come from a CSV line",
            {"message": desc.full_name, "hint": "send it as JSON (/getBinaryJSONDefault)"},
        )
    for field in desc.fields:
        if _is_map(field):
            continue
        target: Any = getattr(message, field.name)
        inner = _message_type(field)
        if inner is not None:
            sub = target.add() if _repeated(field) else target
            sub.SetInParent()
            _fill_row(sub, inner, header, cells, number, (*path, desc.full_name))
            continue
        values = _cells(field, header, cells, number)
        if _repeated(field):
            target.extend(values)
        elif values:
            setattr(message, field.name, values[0])


def _cells(field: FieldDescriptor, header: Sequence[str], cells: Sequence[str], number: int) -> list[Any]:
    """The values of the non-empty cells of ``cells`` whose column names ``field``."""
    out = []
    for column, name in enumerate(header):
        if name == field.name and column < len(cells) and cells[column] != "":
            out.append(_value(field, cells[column], number, column))
    return out


def _value(field: FieldDescriptor, cell: str, number: int, column: int) -> Any:
    kind = field.type
    text = cell.strip()
    try:
        if kind == FieldDescriptor.TYPE_STRING:
            return cell
        if kind == FieldDescriptor.TYPE_BYTES:
            return cell.encode("utf-8")
        if kind == FieldDescriptor.TYPE_BOOL:
            if text.lower() not in ("true", "false"):
                raise ValueError("true or false")
            return text.lower() == "true"
        if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            if not _FLOAT.fullmatch(text):
                raise ValueError("a number")
            value = float(text.rstrip("fFdD").replace("Infinity", "inf"))
            if (
                kind == FieldDescriptor.TYPE_FLOAT
                and math.isfinite(value)
                and abs(value) > 3.4028234663852886e38
            ):
                raise ValueError("a number within the range of a float")
            return value
        if kind == FieldDescriptor.TYPE_ENUM:
            by_name = field.enum_type.values_by_name.get(text) if field.enum_type is not None else None
            if by_name is not None:
                return by_name.number
            return _java_int(text, 32, signed=True)
        if kind in _INT32 or kind in _UINT32:
            return _java_int(text, 32, signed=kind in _INT32)
        if kind in _INT64 or kind in _UINT64:
            return _java_int(text, 64, signed=kind in _INT64)
    except ValueError as err:
        raise BadInput(
            f"CSV line {number}, column {column + 1} ({field.name}): {cell[:100]!r} is not {err}",
            {
                "line": number,
                "column": column + 1,
                "field": field.name,
                "value": cell[:100],
                "expected": str(err),
            },
        ) from None
    raise BadInput(f"field {field.name}: its type cannot come from a CSV cell", {"field": field.name})


def _java_int(text: str, bits: int, *, signed: bool) -> int:
    """Integer.parseInt / Long.parseLong: a signed decimal of ``bits``; an unsigned field takes its bits."""
    if not _INT.fullmatch(text):
        raise ValueError(f"a {bits}-bit integer")
    value = int(text)
    if not -(1 << (bits - 1)) <= value < (1 << (bits - 1)):
        raise ValueError(f"a {bits}-bit integer (Java's range)")
    return value if signed else value & ((1 << bits) - 1)


def _field_names(desc: Descriptor, seen: frozenset[str] = frozenset()) -> set[str]:
    """The names of the fields of ``desc`` and of the messages it holds: the column names it reads."""
    names: set[str] = set()
    for field in desc.fields:
        names.add(field.name)
        inner = _message_type(field)
        if inner is not None and inner.full_name not in seen:
            names |= _field_names(inner, seen | {desc.full_name})
    return names


def _repeated(field: FieldDescriptor) -> bool:
    is_repeated = getattr(field, "is_repeated", None)
    # an older protobuf has only ``label``
    return (
        is_repeated
        if isinstance(is_repeated, bool)
        else getattr(field, "label") == FieldDescriptor.LABEL_REPEATED
    )


def _message_type(field: FieldDescriptor) -> Descriptor | None:
    """The message a field holds (None: a scalar or enum field)."""
    return field.message_type if field.type == FieldDescriptor.TYPE_MESSAGE else None


def _is_map(field: FieldDescriptor) -> bool:
    inner = _message_type(field)
    return inner is not None and bool(inner.GetOptions().map_entry)

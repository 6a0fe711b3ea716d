"""Open Inference Protocol (KServe V2) over the contracts: tensors onto top-level fields.

Transport-free: the HTTP edge (runner/http/oip.py) splits the body, and whatever else speaks V2 (the gRPC
service) builds the same tensor dicts (``{"name", "datatype", "shape", "data" | "parameters":
{"binary_data_size"}}``); these functions map them onto the contract and back, and refuse, naming the
problem, anything the spec does not allow.

The mapping. Each top-level field of the rpc's input message is one input tensor of the same name, and
each top-level field of its output message one output tensor:

- a scalar field is a tensor of one element (shape ``[1]``, any shape holding one element is taken), a
  repeated field a tensor of any shape (flattened row-major);
- datatypes: ``double`` FP64, ``float`` FP32, ``int32``/``sint32``/``sfixed32`` INT32, the 64-bit ones
  INT64/UINT64, ``uint32``/``fixed32`` UINT32, ``bool`` BOOL, ``string`` and ``bytes`` BYTES, an enum
  BYTES (value names);
- a message field (a map too) is a BYTES tensor whose elements are the proto3 JSON text of the message
  (of each message, for a repeated one; of the whole map, for a map): its metadata says so with
  ``parameters: {"content_type": "application/json", "message": <full name>}``.

Which inputs a request must send: every field without presence (a plain scalar, a repeated field, a
map), since proto3 cannot tell one that was not sent from one that is 0 (a missing ``sepal_length``
would be a confident answer about a flower of length 0), and every field the bundle's ``required`` names
for the input message. A field with presence (proto3 ``optional``, a message, a oneof member) may be
left out: the model sees it unset. Metadata marks those ``parameters: {"optional": true}`` with shape
``[-1]``; an output field with presence is answered with shape ``[0]`` when the model left it unset.

Which rpc runs: the request's ``parameters.method``, else the contract's first rpc (the one metadata
describes).

The binary tensor data extension (Triton's ``binary_tensor_data``): an input whose
``parameters.binary_data_size`` is set takes that many bytes from the binary part of the request, in
the order of the inputs; an output asked for with ``parameters.binary_data`` (or every output, by the
request's ``parameters.binary_data_output``) is answered the same way. Binary data is little-endian,
row-major; BOOL one byte (0 or 1); BYTES each element a 4-byte little-endian length and its bytes.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from runner.contract import (
    DEFAULT_MAX_JSON_DEPTH,
    NO_REQUIRED_FIELDS,
    Contract,
    RequiredFields,
    descriptor_of,
)
from runner.contract.codec import check_json_depth
from runner.errors import BadInput, MethodNotFound

_F = FieldDescriptor
DATATYPES: dict[int, str] = {
    _F.CPPTYPE_DOUBLE: "FP64",
    _F.CPPTYPE_FLOAT: "FP32",
    _F.CPPTYPE_INT32: "INT32",
    _F.CPPTYPE_INT64: "INT64",
    _F.CPPTYPE_UINT32: "UINT32",
    _F.CPPTYPE_UINT64: "UINT64",
    _F.CPPTYPE_BOOL: "BOOL",
    _F.CPPTYPE_STRING: "BYTES",
    _F.CPPTYPE_ENUM: "BYTES",
}
"""The datatype of a scalar field's tensor, by the field's C++ type (message fields: MESSAGE_DATATYPE)."""
MESSAGE_DATATYPE = "BYTES"
"""The datatype of a message field's tensor: each element is the proto3 JSON text of one message."""
MESSAGE_CONTENT_TYPE = "application/json"

ELEMENT_SIZES: dict[str, int | None] = {
    "BOOL": 1,
    "UINT8": 1,
    "UINT16": 2,
    "UINT32": 4,
    "UINT64": 8,
    "INT8": 1,
    "INT16": 2,
    "INT32": 4,
    "INT64": 8,
    "FP16": 2,
    "FP32": 4,
    "FP64": 8,
    "BYTES": None,
}
"""Every V2 tensor datatype and the size of one element in binary data (BYTES: a length, then bytes)."""
_NUMPY_TYPES = {
    "BOOL": "<u1",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
_INT_RANGES = {
    "UINT8": (0, 2**8 - 1),
    "UINT16": (0, 2**16 - 1),
    "UINT32": (0, 2**32 - 1),
    "UINT64": (0, 2**64 - 1),
    "INT8": (-(2**7), 2**7 - 1),
    "INT16": (-(2**15), 2**15 - 1),
    "INT32": (-(2**31), 2**31 - 1),
    "INT64": (-(2**63), 2**63 - 1),
}
_FLOATS = ("FP16", "FP32", "FP64")
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_SHOWN = 200  # characters of a client's value quoted in an error


def method_of(contract: Contract, parameters: Any) -> str:
    """The rpc an inference request runs: ``parameters.method`` or the contract's first rpc."""
    names = contract.method_names()
    wanted = parameters.get("method") if isinstance(parameters, dict) else None
    if wanted is None:
        return names[0]
    if not isinstance(wanted, str):
        raise BadInput(
            f"parameters.method is the name of an rpc, not {_json_kind(wanted)}", {"method": wanted}
        )
    if wanted not in names:
        raise MethodNotFound(
            f"parameters.method {wanted!r} is not an rpc of {contract.full_service_name} "
            f"(rpcs: {', '.join(names)})",
            {"method": wanted, "methods": names},
        )
    return wanted


# ----------------------------------------------------------------------------------------- metadata


def datatype_of(field: FieldDescriptor) -> str:
    """The V2 datatype of a field's tensor."""
    if field.message_type is not None:
        return MESSAGE_DATATYPE
    return DATATYPES[field.cpp_type]


def _is_map(field: FieldDescriptor) -> bool:
    msg = field.message_type
    return msg is not None and field.is_repeated and msg.GetOptions().map_entry


def _message_name(field: FieldDescriptor) -> str:
    msg = field.message_type
    assert msg is not None
    if _is_map(field):
        key, value = msg.fields_by_name["key"], msg.fields_by_name["value"]
        return f"map<{_type_name(key)}, {_type_name(value)}>"
    return str(msg.full_name)


_TYPE_NAMES = {v: k[len("TYPE_") :].lower() for k, v in vars(_F).items() if k.startswith("TYPE_")}


def _type_name(field: FieldDescriptor) -> str:
    if field.message_type is not None:
        return str(field.message_type.full_name)
    if field.enum_type is not None:
        return str(field.enum_type.full_name)
    return _TYPE_NAMES.get(field.type, "?")


def _required_names(desc: Descriptor, required: RequiredFields) -> set[str]:
    """Top-level fields of ``desc`` a request must send (see the module docstring)."""
    declared = set(required.spec.get(desc.full_name, ()))
    return {f.name for f in desc.fields if not f.has_presence or f.name in declared}


def _optional(field: FieldDescriptor, required: set[str] | None) -> bool:
    """Whether the field's tensor may be absent (input: may be left out; output: may come back empty)."""
    if required is not None:
        return field.name not in required
    return bool(field.has_presence)


def _tensor_metadata(field: FieldDescriptor, required: set[str] | None) -> dict[str, Any]:
    optional = _optional(field, required)
    spec: dict[str, Any] = {
        "name": field.name,
        "datatype": datatype_of(field),
        "shape": [-1] if (field.is_repeated and not _is_map(field)) or optional else [1],
    }
    parameters: dict[str, Any] = {}
    if field.message_type is not None:
        parameters.update(content_type=MESSAGE_CONTENT_TYPE, message=_message_name(field))
    if optional:
        parameters["optional"] = True
    if parameters:
        spec["parameters"] = parameters
    return spec


def model_metadata(
    name: str, version: int, runtime: str, contract: Contract, required: RequiredFields = NO_REQUIRED_FIELDS
) -> dict[str, Any]:
    """V2 model metadata: the tensors of the first rpc (the one an inference runs by default).

    The spec's keys (``name``, ``versions``, ``platform`` as ``<project>_<format>``, ``inputs``,
    ``outputs``: every top-level field); ``parameters`` (string values, as V2 parameters are) name the
    rpc described, every rpc and the service."""
    methods = contract.method_names()
    method = methods[0]
    in_desc = descriptor_of(contract.input_class(method))
    needed = _required_names(in_desc, required)
    return {
        "name": name,
        "versions": [str(version)],
        "platform": f"model-runner_{runtime}",
        "inputs": [_tensor_metadata(f, needed) for f in in_desc.fields],
        "outputs": [_tensor_metadata(f, None) for f in descriptor_of(contract.output_class(method)).fields],
        "parameters": {
            "method": method,
            "methods": ",".join(methods),
            "service": contract.full_service_name,
        },
    }


# ------------------------------------------------------------------------------------ binary tensors


def decode_tensor_bytes(datatype: str, raw: bytes | memoryview, name: str) -> list[Any]:
    """The elements of a tensor sent as binary data (little-endian, row-major; BYTES elements as
    ``bytes``). BadInput naming the input when the bytes do not hold whole elements of ``datatype``."""
    if datatype not in ELEMENT_SIZES:
        raise _unknown_datatype(name, datatype)
    if datatype == "BYTES":
        return _split_bytes_elements(bytes(raw), name)
    size = ELEMENT_SIZES[datatype]
    assert size is not None
    if len(raw) % size:
        raise BadInput(
            f"input {name!r}: {len(raw)} bytes of binary data are not whole {datatype} elements "
            f"({size} bytes each)",
            {"input": name, "binary_data_size": len(raw), "element_size": size},
        )
    values: list[Any] = np.frombuffer(raw, dtype=_NUMPY_TYPES[datatype]).tolist()
    if datatype == "BOOL":
        bad = next((i for i, v in enumerate(values) if v > 1), None)
        if bad is not None:
            raise BadInput(
                f"input {name!r}: BOOL element {bad} is byte {values[bad]}; a BOOL is one byte, 0 or 1",
                {"input": name, "index": bad},
            )
        return [v == 1 for v in values]
    return values


def _split_bytes_elements(raw: bytes, name: str) -> list[Any]:
    out: list[Any] = []
    at = 0
    while at < len(raw):
        if at + 4 > len(raw):
            raise BadInput(
                f"input {name!r}: BYTES binary data ends inside the 4-byte length of element {len(out)}",
                {"input": name, "index": len(out)},
            )
        (length,) = struct.unpack_from("<I", raw, at)
        at += 4
        if at + length > len(raw):
            raise BadInput(
                f"input {name!r}: BYTES element {len(out)} says {length} bytes, "
                f"{len(raw) - at} are left in its binary data",
                {"input": name, "index": len(out)},
            )
        out.append(raw[at : at + length])
        at += length
    return out


def encode_tensor_bytes(datatype: str, values: Sequence[Any]) -> bytes:
    """A tensor's elements as binary data (the inverse of :func:`decode_tensor_bytes`; BYTES elements
    may be ``str``, sent as UTF-8)."""
    if datatype == "BYTES":
        parts = []
        for v in values:
            b = v.encode("utf-8") if isinstance(v, str) else bytes(v)
            parts.append(struct.pack("<I", len(b)))
            parts.append(b)
        return b"".join(parts)
    if datatype == "BOOL":
        return bytes(1 if v else 0 for v in values)
    return np.asarray(values, dtype=_NUMPY_TYPES[datatype]).tobytes()


# -------------------------------------------------------------------------------------------- request


def request_to_json(
    contract: Contract,
    method: str,
    body: Any,
    binary: bytes | memoryview = b"",
    *,
    required: RequiredFields = NO_REQUIRED_FIELDS,
    max_json_depth: int = DEFAULT_MAX_JSON_DEPTH,
) -> dict[str, Any]:
    """The proto3 JSON of the rpc's input message from a V2 inference request (its JSON object, and
    the binary data that followed it, for inputs sent with ``binary_data_size``).

    BadInput naming the problem for anything the spec or the contract does not allow: a malformed
    request (``id``, ``parameters``, ``inputs``, ``outputs``), an input that is not a field, given
    twice, of an unknown or another datatype, whose shape does not hold its data, whose elements are not
    of its datatype; binary data that does not add up; every missing input (named together); an output
    asked for that the rpc does not produce (:func:`requested_outputs`)."""
    check_request(body)
    requested_outputs(contract, method, body)
    desc = descriptor_of(contract.input_class(method))
    fields = {f.name: f for f in desc.fields}
    tail = memoryview(binary)
    used = 0
    out: dict[str, Any] = {}
    seen: set[str] = set()
    for i, tensor in enumerate(body["inputs"]):
        where = f"inputs[{i}]"
        if not isinstance(tensor, dict):
            raise BadInput(f"{where} is {_json_kind(tensor)}, not a tensor object", {"input": i})
        name = tensor.get("name")
        if not isinstance(name, str):
            raise BadInput(f'{where} has no "name" (a string)', {"input": i})
        if name in seen:
            raise BadInput(f"input {name!r} is given twice: send each input once", {"input": name})
        seen.add(name)
        field = fields.get(name)
        if field is None:
            raise BadInput(
                f"input {name!r} is not an input of {method} (its inputs: {', '.join(fields) or 'none'})",
                {"input": name, "inputs": list(fields)},
            )
        datatype, shape, parameters = _tensor_header(tensor, name, "input")
        expected = datatype_of(field)
        if datatype not in ELEMENT_SIZES:
            raise _unknown_datatype(name, datatype)
        if datatype != expected:
            raise BadInput(
                f"input {name!r} is {expected} ({_field_text(field)}), not {datatype}",
                {"input": name, "datatype": datatype, "expected": expected},
            )
        size = parameters.get("binary_data_size")
        if size is not None:
            if type(size) is not int or size < 0:
                raise BadInput(
                    f"input {name!r}: parameters.binary_data_size is a byte count, not {size!r}",
                    {"input": name},
                )
            if "data" in tensor:
                raise BadInput(
                    f'input {name!r} has both "data" and parameters.binary_data_size: send one',
                    {"input": name},
                )
            if used + size > len(tail):
                raise BadInput(
                    f"input {name!r}: binary_data_size {size} goes past the binary data "
                    f"({len(tail) - used} bytes left of {len(tail)} after the JSON header)",
                    {"input": name, "binary_data_size": size, "binary_bytes": len(tail)},
                )
            values = decode_tensor_bytes(datatype, tail[used : used + size], name)
            used += size
        elif "data" not in tensor:
            raise BadInput(f'input {name!r} has no "data" (nor parameters.binary_data_size)', {"input": name})
        else:
            if not isinstance(tensor["data"], list):
                raise BadInput(
                    f'input {name!r}: "data" is an array of elements, not {_json_kind(tensor["data"])}',
                    {"input": name},
                )
            values = _flatten(tensor["data"])
        count = math.prod(shape)
        if len(values) != count:
            raise BadInput(
                f"input {name!r}: shape {shape} holds {count} element{'s' if count != 1 else ''}, "
                f"its data has {len(values)}",
                {"input": name, "shape": shape, "elements": len(values)},
            )
        if size is None:
            _check_elements(values, datatype, name)
        value = _field_value(field, values, name, max_json_depth)
        if value is not _ABSENT:
            out[name] = value
    if used != len(tail):
        raise BadInput(
            f"the request has {len(tail)} bytes of binary data after its JSON header, its inputs' "
            f"binary_data_size add up to {used}",
            {"binary_bytes": len(tail), "binary_data_size": used},
        )
    needed = _required_names(desc, required)
    missing = [f.name for f in desc.fields if f.name in needed and f.name not in seen]
    if missing:
        names = ", ".join(repr(n) for n in missing)
        raise BadInput(
            f"missing input{'s' if len(missing) > 1 else ''} {names} of {method}: send every input "
            "the model metadata lists without parameters.optional, even when its value is 0 or empty "
            "(proto3 cannot tell a value that was not sent from 0, so the model refuses to guess)",
            {"missing": missing},
        )
    return out


def check_request(body: Any) -> dict[str, Any]:
    """``body``, when it has the shape of a V2 inference request object; else BadInput saying why."""
    if not isinstance(body, dict):
        raise BadInput(
            f'a V2 inference request is a JSON object with a list "inputs", not {_json_kind(body)}',
            {"expected": "object"},
        )
    if not isinstance(body.get("inputs"), list):
        raise BadInput('a V2 inference request needs "inputs": a list of tensors', {"expected": "inputs"})
    if "id" in body and not isinstance(body["id"], str):
        raise BadInput(f'"id" is a string, not {_json_kind(body["id"])}', {"field": "id"})
    _check_parameters(body.get("parameters"), "parameters")
    if "outputs" in body and not isinstance(body["outputs"], list):
        raise BadInput(
            f'"outputs" is a list of requested outputs, not {_json_kind(body["outputs"])}',
            {"field": "outputs"},
        )
    return body


def _check_parameters(parameters: Any, where: str) -> None:
    if parameters is None:
        return
    if not isinstance(parameters, dict):
        raise BadInput(f"{where} is an object, not {_json_kind(parameters)}", {"field": where})
    for key, value in parameters.items():
        if not isinstance(value, (str, int, float, bool)):
            raise BadInput(
                f"{where}.{key} is {_json_kind(value)}: a parameter is a string, a number or a boolean",
                {"field": f"{where}.{key}"},
            )


def _tensor_header(tensor: dict[str, Any], name: str, role: str) -> tuple[str, list[int], dict[str, Any]]:
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str):
        raise BadInput(f'{role} {name!r} has no "datatype" (a string such as "FP64")', {role: name})
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise BadInput(
            f'{role} {name!r}: "shape" is a list of dimensions (integers >= 0), not {_shown(shape)}',
            {role: name},
        )
    parameters = tensor.get("parameters")
    _check_parameters(parameters, f"{role} {name!r} parameters")
    return datatype, shape, parameters or {}


def requested_outputs(
    contract: Contract, method: str, body: dict[str, Any]
) -> list[tuple[str, bool | None]] | None:
    """The outputs a request asks for, in its order, each with its ``binary_data`` parameter (None when
    not given); None when it asks for none (then every output). BadInput for an output the rpc does
    not produce, one asked twice, or a parameter this server does not implement (``classification``)."""
    wanted = body.get("outputs")
    if wanted is None:
        return None
    if not isinstance(wanted, list):
        raise BadInput(
            f'"outputs" is a list of requested outputs, not {_json_kind(wanted)}', {"field": "outputs"}
        )
    names = [f.name for f in descriptor_of(contract.output_class(method)).fields]
    out: list[tuple[str, bool | None]] = []
    seen: set[str] = set()
    for i, item in enumerate(wanted):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise BadInput(f'outputs[{i}] is an object with a "name" (a string)', {"output": i})
        name = item["name"]
        if name not in names:
            raise BadInput(
                f"output {name!r} is not an output of {method} (its outputs: {', '.join(names) or 'none'})",
                {"output": name, "outputs": names},
            )
        if name in seen:
            raise BadInput(f"output {name!r} is asked for twice", {"output": name})
        seen.add(name)
        parameters = item.get("parameters")
        _check_parameters(parameters, f"output {name!r} parameters")
        parameters = parameters or {}
        if parameters.get("classification"):
            raise BadInput(
                f"output {name!r}: the classification extension is not implemented by this server",
                {"output": name},
            )
        binary = parameters.get("binary_data")
        if binary is not None and not isinstance(binary, bool):
            raise BadInput(f"output {name!r}: parameters.binary_data is true or false", {"output": name})
        out.append((name, binary))
    return out


def _flatten(data: list[Any]) -> list[Any]:
    if not any(isinstance(item, list) for item in data):
        return data
    out: list[Any] = []
    for item in data:
        if isinstance(item, list):
            out.extend(_flatten(item))
        else:
            out.append(item)
    return out


def _check_elements(values: list[Any], datatype: str, name: str) -> None:
    """BadInput naming the first element of JSON data that is not of ``datatype``."""
    if datatype == "BOOL":
        ok = [type(v) is bool for v in values]
        want = "true or false"
    elif datatype in _FLOATS:
        ok = [type(v) in (int, float) for v in values]
        want = "a number"
    elif datatype == "BYTES":
        ok = [type(v) in (str, bytes) for v in values]
        want = "a string"
    else:
        lo, hi = _INT_RANGES[datatype]
        ok = [type(v) is int and lo <= v <= hi for v in values]
        want = f"an integer from {lo} to {hi}"
    if all(ok):
        return
    bad = ok.index(False)
    raise BadInput(
        f"input {name!r} is {datatype}: element {bad} is {_shown(values[bad])}, not {want}",
        {"input": name, "index": bad, "datatype": datatype},
    )


class _Absent:
    pass


_ABSENT = _Absent()


def _field_value(field: FieldDescriptor, values: list[Any], name: str, max_json_depth: int) -> Any:
    """The proto3 JSON value of ``field`` from its tensor's elements."""
    if field.message_type is not None:
        items = [_json_element(v, field, name, i, max_json_depth) for i, v in enumerate(values)]
        if _is_map(field) or not field.is_repeated:
            if len(items) == 1:
                return items[0]
            if not items and field.has_presence:
                return _ABSENT
            raise _one_element(field, name, len(items))
        return items
    if field.cpp_type == _F.CPPTYPE_STRING or field.cpp_type == _F.CPPTYPE_ENUM:
        if field.type == _F.TYPE_BYTES:
            items = [
                base64.b64encode(v.encode("utf-8") if isinstance(v, str) else v).decode() for v in values
            ]
        else:
            items = [_text(v, name, i) for i, v in enumerate(values)]
    elif field.cpp_type in (_F.CPPTYPE_DOUBLE, _F.CPPTYPE_FLOAT):
        items = [v if math.isfinite(v) else _non_finite(v) for v in values]
    else:
        items = values
    if field.is_repeated:
        return items
    if len(items) == 1:
        return items[0]
    if not items and field.has_presence:
        return _ABSENT
    raise _one_element(field, name, len(items))


def _one_element(field: FieldDescriptor, name: str, count: int) -> BadInput:
    can_be_empty = " (or none, to leave it unset)" if field.has_presence else ""
    return BadInput(
        f"input {name!r} is a single value ({_field_text(field)}): send a tensor of one element"
        f"{can_be_empty}, not {count}",
        {"input": name, "elements": count},
    )


def _text(value: Any, name: str, index: int) -> str:
    if isinstance(value, str):
        return value
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError as err:
        raise BadInput(
            f"input {name!r}: element {index} is not UTF-8 text (byte {err.start}); the field is a string",
            {"input": name, "index": index},
        ) from None


def _json_element(value: Any, field: FieldDescriptor, name: str, index: int, max_json_depth: int) -> Any:
    text = _text(value, name, index)
    check_json_depth(text, max_json_depth)
    try:
        return json.loads(text)
    except ValueError as err:
        raise BadInput(
            f"input {name!r}: element {index} is not JSON ({err}); each element is the proto3 JSON of "
            f"a {_message_name(field)}",
            {"input": name, "index": index},
        ) from None
    except RecursionError:
        raise BadInput(
            f"input {name!r}: element {index} is JSON nested too deeply", {"input": name}
        ) from None


def _non_finite(v: float) -> str:
    return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")


# ------------------------------------------------------------------------------------------- response


def infer_response(
    contract: Contract,
    method: str,
    output: dict[str, Any],
    *,
    name: str,
    version: int,
    request_id: str | None,
    outputs: Any = None,
    binary_output: bool = False,
) -> tuple[dict[str, Any], bytes]:
    """The V2 inference response from the proto3 JSON of the rpc's output message: its JSON object and
    the binary data that follows it (empty when every output is answered as JSON).

    ``outputs`` is the request's ``outputs`` (None: every output); an output is answered as binary
    data when its ``binary_data`` parameter says so, else when ``binary_output`` (the request's
    ``parameters.binary_data_output``) does."""
    desc = descriptor_of(contract.output_class(method))
    wanted = requested_outputs(contract, method, {"outputs": outputs} if outputs is not None else {})
    if wanted is None:
        chosen = [(f, binary_output) for f in desc.fields]
    else:
        by_name = desc.fields_by_name
        chosen = [(by_name[n], binary_output if b is None else b) for n, b in wanted]
    tensors: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for field, as_binary in chosen:
        datatype = datatype_of(field)
        values = _output_values(field, output)
        tensor: dict[str, Any] = {"name": field.name, "datatype": datatype, "shape": [len(values)]}
        if as_binary:
            raw = encode_tensor_bytes(datatype, values)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            tensor["data"] = [_json_output(v, field) for v in values] if datatype == "BYTES" else values
        tensors.append(tensor)
    answer: dict[str, Any] = {"model_name": name, "model_version": str(version)}
    if request_id is not None:
        answer["id"] = request_id
    answer["outputs"] = tensors
    return answer, b"".join(chunks)


def response_from_json(
    contract: Contract,
    method: str,
    output: dict[str, Any],
    *,
    name: str,
    version: int,
    request_id: str | None,
    wanted: Any = None,
) -> dict[str, Any]:
    """The V2 inference response, every output as JSON data (``binary_data`` parameters ignored), from
    the proto3 JSON of the rpc's output message; ``wanted`` is the request's ``outputs``."""
    if isinstance(wanted, list):
        wanted = [
            {k: v for k, v in item.items() if k != "parameters"} if isinstance(item, dict) else item
            for item in wanted
        ]
    return infer_response(
        contract, method, output, name=name, version=version, request_id=request_id, outputs=wanted
    )[0]


def output_values(
    contract: Contract, method: str, output: dict[str, Any]
) -> dict[str, tuple[str, list[Any]]]:
    """Every output tensor of the proto3 JSON of the rpc's output message: name -> (datatype, its
    elements as Python values: bool, int, float, str or bytes), for transports with typed contents."""
    desc = descriptor_of(contract.output_class(method))
    return {f.name: (datatype_of(f), _output_values(f, output)) for f in desc.fields}


def _output_values(field: FieldDescriptor, output: dict[str, Any]) -> list[Any]:
    if field.name not in output:
        return []  # a field with presence the model left unset (every other field is printed)
    value = output[field.name]
    if field.message_type is not None:
        if _is_map(field) or not field.is_repeated:
            return [_compact(value)]
        return [_compact(v) for v in value]
    items: list[Any] = list(value) if field.is_repeated else [value]
    cpp = field.cpp_type
    if cpp in (_F.CPPTYPE_INT64, _F.CPPTYPE_UINT64):
        return [int(v) for v in items]
    if cpp in (_F.CPPTYPE_DOUBLE, _F.CPPTYPE_FLOAT):
        return [_NON_FINITE[v] if isinstance(v, str) else v for v in items]
    if field.type == _F.TYPE_BYTES:
        return [base64.b64decode(v) for v in items]
    if cpp == _F.CPPTYPE_ENUM:
        return [str(v) for v in items]  # a name, or the number of a value the contract does not name
    return items


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _json_output(value: Any, field: FieldDescriptor) -> str:
    if isinstance(value, str):
        return value
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(
            f"output {field.name!r} holds bytes that are not UTF-8 text: JSON cannot carry them; ask for "
            "it as binary data (outputs: [{name, parameters: {binary_data: true}}])",
            {"output": field.name},
        ) from None


# ------------------------------------------------------------------------------------------- messages


def _field_text(field: FieldDescriptor) -> str:
    label = "repeated " if field.is_repeated and not _is_map(field) else ""
    type_name = _message_name(field) if field.message_type is not None else _type_name(field)
    return f"field {label}{type_name} {field.name}"


def _unknown_datatype(name: str, datatype: str) -> BadInput:
    return BadInput(
        f"input {name!r}: unknown datatype {datatype[:_SHOWN]!r} (V2 datatypes: {', '.join(ELEMENT_SIZES)})",
        {"input": name, "datatype": datatype[:_SHOWN]},
    )


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array"}
    return names.get(type(value), "an object" if isinstance(value, dict) else type(value).__name__)


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, bytes) else repr(value)
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}..."

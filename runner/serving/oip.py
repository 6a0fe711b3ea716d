"""Open Inference Protocol (KServe V2) over the contracts: tensors onto top-level fields.

Transport-free: the HTTP edge (runner/http/oip.py) parses the JSON body and answers with what these
functions return. A V2 inference request names tensors; each tensor feeds the input message's
top-level field of the same name (a scalar field takes a one-element tensor, a repeated one any
shape, flattened row-major). The response lists one tensor per top-level scalar field of the output
message. Which rpc runs: the request's ``parameters.method``, else the contract's first rpc.
Message-typed fields have no tensor form here: the model's own endpoints serve them.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from runner.contract import Contract, descriptor_of
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
_INT64 = (_F.CPPTYPE_INT64, _F.CPPTYPE_UINT64)  # strings in proto3 JSON, numbers in V2 tensors


def method_of(contract: Contract, parameters: Any) -> str:
    """The rpc an inference request runs: ``parameters.method`` or the contract's first rpc."""
    names = contract.method_names()
    wanted = parameters.get("method") if isinstance(parameters, dict) else None
    if wanted is None:
        return names[0]
    if wanted not in names:
        raise MethodNotFound(
            f"parameters.method {wanted!r} is not an rpc of {contract.full_service_name}",
            {"method": wanted, "methods": names},
        )
    return str(wanted)


def _tensor_fields(desc: Descriptor) -> list[FieldDescriptor]:
    return [f for f in desc.fields if f.cpp_type in DATATYPES]


def _spec(field: FieldDescriptor) -> dict[str, Any]:
    return {
        "name": field.name,
        "datatype": DATATYPES[field.cpp_type],
        "shape": [-1] if field.is_repeated else [1],
    }


def model_metadata(name: str, version: int, runtime: str, contract: Contract) -> dict[str, Any]:
    """V2 model metadata: the tensors of the first rpc (the one an inference runs by default)."""
    method = contract.method_names()[0]
    return {
        "name": name,
        "versions": [str(version)],
        "platform": f"model-runner-{runtime}",
        "inputs": [_spec(f) for f in _tensor_fields(descriptor_of(contract.input_class(method)))],
        "outputs": [_spec(f) for f in _tensor_fields(descriptor_of(contract.output_class(method)))],
        "parameters": {"methods": contract.method_names(), "service": contract.full_service_name},
    }


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    out: list[Any] = []
    for item in data:
        out.extend(_flatten(item))
    return out


def request_to_json(contract: Contract, method: str, body: Any) -> dict[str, Any]:
    """The proto3 JSON of the rpc's input message from a V2 inference request body."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list):
        raise BadInput('a V2 inference request is a JSON object with a list "inputs"', {"expected": "inputs"})
    desc = descriptor_of(contract.input_class(method))
    fields = {f.name: f for f in desc.fields}
    out: dict[str, Any] = {}
    for tensor in body["inputs"]:
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str) or "data" not in tensor:
            raise BadInput('each input tensor needs a "name" and "data"', {"tensor": str(tensor)[:200]})
        field = fields.get(tensor["name"])
        if field is None:
            raise BadInput(
                f"input {tensor['name']!r} is not a field of {desc.full_name}",
                {"input": tensor["name"], "inputs": [f.name for f in _tensor_fields(desc)]},
            )
        if field.cpp_type not in DATATYPES:
            kind = field.message_type.full_name if field.message_type else "a message"
            raise BadInput(
                f"input {field.name!r} is a message ({kind}): it has no tensor form; "
                f"call POST /models/{{name}}/methods/{method} with the contract's JSON instead",
                {"input": field.name},
            )
        data = _flatten(tensor["data"])
        if field.is_repeated:
            out[field.name] = data
        elif len(data) == 1:
            out[field.name] = data[0]
        else:
            raise BadInput(
                f"input {field.name!r} is a single value: send a tensor of shape [1], not {len(data)} values",
                {"input": field.name, "values": len(data)},
            )
    return out


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
    """The V2 inference response from the proto3 JSON of the rpc's output message."""
    names = None
    if isinstance(wanted, list):
        names = {t["name"] for t in wanted if isinstance(t, dict) and isinstance(t.get("name"), str)}
    tensors = []
    for field in _tensor_fields(descriptor_of(contract.output_class(method))):
        if names is not None and field.name not in names:
            continue
        value: Any = output.get(field.name, [] if field.is_repeated else None)
        data: list[Any] = list(value) if field.is_repeated else [value]
        if field.cpp_type in _INT64:
            data = [int(v) for v in data]
        tensors.append(
            {"name": field.name, "datatype": DATATYPES[field.cpp_type], "shape": [len(data)], "data": data}
        )
    answer: dict[str, Any] = {"model_name": name, "model_version": str(version), "outputs": tensors}
    if request_id is not None:
        answer["id"] = request_id
    return answer

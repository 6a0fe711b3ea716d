"""The Open Inference Protocol (KServe V2) over gRPC: ``inference.GRPCInferenceService``, served on the
same port as each model's own contract.

The service's contract is protos/grpc_predict_v2.proto, compiled at run time like the models' contracts
(runner.contract; nothing generated in the tree). Every call goes to the data plane
(runner.serving.dataplane): an inference is ``DataPlane.infer`` (routing, the version held for the
whole call, the one deadline rule, the tensors mapped onto the rpc's input message by
runner.serving.oip, with every check the REST routes make), metadata and readiness
``DataPlane.current`` / ``DataPlane.model_ready``. What this module adds is the gRPC wire: typed
``contents`` and ``raw_input_contents`` into the V2 tensor dicts runner.serving.oip reads, and its
answer back into ``contents`` or ``raw_output_contents``.

- ``raw_input_contents``: one entry per input, in the order of ``inputs``, laid out as the REST binary
  tensor data (runner.serving.oip.decode_tensor_bytes); no input may then have ``contents``. The answer
  uses ``raw_output_contents`` too (every V2 client reads it; tritonclient reads only that).
- ``contents``: each input's elements in the list of its datatype (``fp64_contents`` for FP64, ...);
  the answer then carries typed ``contents``.
- ``parameters``: the request's ``method`` picks the rpc (default: the contract's first).
- A model that is not served answers NOT_FOUND; errors carry the same status codes and trailing
  metadata (``x-error-kind``, ``x-error-detail``) as the models' own services; answers name the model
  and version in their initial metadata (``x-model-name``, ``x-model-version``).
"""

from __future__ import annotations

import functools
import importlib.metadata
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import grpc

from runner.contract import Contract
from runner.errors import BadInput, ModelRunnerError
from runner.serving import metrics, oip
from runner.serving.dataplane import DataPlane
from runner.serving.registry import LoadedVersion

PROTO_FILE = "grpc_predict_v2.proto"
SERVICE = "inference.GRPCInferenceService"
SERVER_NAME = "model-runner"
MODEL_HEADER = "x-model-name"
VERSION_HEADER = "x-model-version"

Abort = Callable[[grpc.ServicerContext, Exception, Mapping[str, Any]], None]
"""How a failure is answered (runner.grpc.server's one table): context, error, what the initial metadata named."""

CONTENTS: dict[str, str] = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
"""The list of InferTensorContents holding each datatype's elements (FP16 has none: raw only)."""


def proto_path() -> Path:
    """protos/grpc_predict_v2.proto of this source tree."""
    return Path(__file__).resolve().parents[2] / "protos" / PROTO_FILE


@functools.cache
def oip_contract() -> Contract:
    """The compiled service contract (once per process)."""
    path = proto_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise RuntimeError(f"cannot read the Open Inference Protocol contract {path}: {err}") from err
    return Contract.compile(text, filename=PROTO_FILE)


def server_version() -> str:
    try:
        return importlib.metadata.version("model-runner")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


# ------------------------------------------------------------------------------------ wire <-> tensors


def _parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """A ``map<string, InferParameter>`` as V2 parameters (keys whose value is unset are left out)."""
    out: dict[str, Any] = {}
    for key, param in parameters.items():
        which = param.WhichOneof("parameter_choice")
        if which is not None:
            out[key] = getattr(param, which)
    return out


def _contents(tensor: Any) -> list[Any]:
    """The elements of an input sent as typed ``contents``: the list of its datatype, and no other."""
    datatype, name = tensor.datatype, tensor.name
    expected = CONTENTS.get(datatype)
    others = sorted(f.name for f, _ in tensor.contents.ListFields() if f.name != expected)
    if others:
        where = f"{expected}" if expected else "raw_input_contents (it has no list of its own)"
        raise BadInput(
            f"input {name!r} is {datatype}: its elements go in {where}, not {', '.join(others)}",
            {"input": name, "datatype": datatype, "contents": others},
        )
    if expected is None:
        if datatype == "FP16":
            raise BadInput(
                f"input {name!r} is FP16: send it in raw_input_contents (contents has no FP16 list)",
                {"input": name, "datatype": datatype},
            )
        return []  # an unknown datatype: the mapping names it
    return list(getattr(tensor.contents, expected))


def request_tensors(request: Any) -> tuple[dict[str, Any], bytes]:
    """A ModelInferRequest as runner.serving.oip's V2 request object and binary data."""
    for tensor in request.inputs:
        _no_shared_memory(tensor.parameters, f"input {tensor.name!r}")
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise BadInput(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs: "
            "one per input, in the order of inputs",
            {"raw_input_contents": len(raw), "inputs": len(request.inputs)},
        )
    inputs: list[dict[str, Any]] = []
    for i, tensor in enumerate(request.inputs):
        item: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)}
        if raw:
            if tensor.HasField("contents"):
                raise BadInput(
                    f"input {tensor.name!r} has contents but the request sends raw_input_contents: "
                    "send every input one way",
                    {"input": tensor.name},
                )
            item["parameters"] = {"binary_data_size": len(raw[i])}
        else:
            item["data"] = _contents(tensor)
        inputs.append(item)
    body: dict[str, Any] = {"inputs": inputs}
    if request.id:
        body["id"] = request.id
    parameters = _parameters(request.parameters)
    if parameters:
        body["parameters"] = parameters
    if len(request.outputs):
        outputs: list[dict[str, Any]] = []
        for wanted in request.outputs:
            _no_shared_memory(wanted.parameters, f"output {wanted.name!r}")
            output: dict[str, Any] = {"name": wanted.name}
            parameters = _parameters(wanted.parameters)
            if parameters:
                output["parameters"] = parameters  # e.g. classification: refused by the mapping
            outputs.append(output)
        body["outputs"] = outputs
    return body, b"".join(raw)


def _no_shared_memory(parameters: Mapping[str, Any], what: str) -> None:
    if "shared_memory_region" in parameters:
        raise BadInput(
            f"{what}: shared memory (parameters.shared_memory_region) is not supported by this server; "
            "send the tensor in raw_input_contents or contents",
            {"tensor": what},
        )


def _set_contents(contents: Any, datatype: str, values: list[Any]) -> None:
    field = CONTENTS.get(datatype)
    if field is None:
        raise ModelRunnerError(
            f"an output of datatype {datatype} has no typed contents", {"datatype": datatype}
        )
    if datatype == "BYTES":
        values = [v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in values]
    getattr(contents, field).extend(values)


# ------------------------------------------------------------------------------------------ service


class OipService:
    """The six rpcs of ``inference.GRPCInferenceService`` over a data plane."""

    def __init__(self, dataplane: DataPlane, abort: Abort) -> None:
        self.dataplane = dataplane
        self.abort = abort
        self.contract = oip_contract()
        self._out: dict[str, Any] = {m: self.contract.output_class(m) for m in self.contract.method_names()}

    def handler(self) -> grpc.GenericRpcHandler:
        """The generic handler answering the service's paths (add it before a catch-all handler)."""
        handlers = {
            name: grpc.unary_unary_rpc_method_handler(
                self._answering(name, getattr(self, name)),
                request_deserializer=self.contract.input_class(name).FromString,
                response_serializer=_serialize,
            )
            for name in self.contract.method_names()
        }
        return grpc.method_handlers_generic_handler(SERVICE, handlers)

    def _answering(
        self, name: str, rpc: Callable[[Any, grpc.ServicerContext, dict[str, Any]], Any]
    ) -> Callable[[Any, grpc.ServicerContext], Any]:
        def call(request: Any, context: grpc.ServicerContext) -> Any:
            answered: dict[str, Any] = {}
            try:
                return rpc(request, context, answered)
            except Exception as exc:  # every failure leaves through the one table
                self.abort(context, exc, answered)
                raise  # abort raises

        call.__name__ = name
        return call

    # --- health and metadata ---

    def ServerLive(self, request: Any, context: grpc.ServicerContext, answered: dict[str, Any]) -> Any:  # noqa: N802 (the rpc's name)
        return self._out["ServerLive"](live=True)

    def ServerReady(self, request: Any, context: grpc.ServicerContext, answered: dict[str, Any]) -> Any:  # noqa: N802
        return self._out["ServerReady"](ready=self.dataplane.registry.ready())

    def ModelReady(self, request: Any, context: grpc.ServicerContext, answered: dict[str, Any]) -> Any:  # noqa: N802
        return self._out["ModelReady"](ready=self.dataplane.model_ready(request.name, request.version))

    def ServerMetadata(self, request: Any, context: grpc.ServicerContext, answered: dict[str, Any]) -> Any:  # noqa: N802
        return self._out["ServerMetadata"](name=SERVER_NAME, version=server_version(), extensions=[])

    def ModelMetadata(self, request: Any, context: grpc.ServicerContext, answered: dict[str, Any]) -> Any:  # noqa: N802
        lv = self.dataplane.current(request.name, request.version)
        meta = oip.model_metadata(lv.name, lv.version, lv.metadata.runtime, lv.contract, lv.required)
        answer = self._out["ModelMetadata"](
            name=meta["name"], versions=meta["versions"], platform=meta["platform"]
        )
        for role in ("inputs", "outputs"):
            for spec in meta[role]:
                getattr(answer, role).add(name=spec["name"], datatype=spec["datatype"], shape=spec["shape"])
        return answer

    # --- inference ---

    @metrics.tracked("oip-grpc")  # counted once, the refusals of this edge included
    def ModelInfer(self, request: Any, context: grpc.ServicerContext, answered: dict[str, Any]) -> Any:  # noqa: N802
        def started(lv: LoadedVersion, _rpc: str) -> None:
            answered.update(model=lv.name, version=lv.version)
            context.send_initial_metadata(((MODEL_HEADER, lv.name), (VERSION_HEADER, str(lv.version))))

        body, binary = request_tensors(request)
        result = self.dataplane.infer(
            request.model_name,
            request.model_version,
            body,
            binary,
            timeout=context.time_remaining(),
            protocol="oip-grpc",
            started=started,
        )
        tensors = oip.output_values(result.contract, result.method, result.output)
        wanted = oip.requested_outputs(result.contract, result.method, body)
        names = [name for name, _ in wanted] if wanted is not None else list(tensors)
        answer = self._out["ModelInfer"](
            model_name=result.model, model_version=str(result.version), id=request.id
        )
        raw = bool(request.raw_input_contents)
        for name in names:
            datatype, values = tensors[name]
            tensor = answer.outputs.add(name=name, datatype=datatype, shape=[len(values)])
            if raw:
                answer.raw_output_contents.append(oip.encode_tensor_bytes(datatype, values))
            else:
                _set_contents(tensor.contents, datatype, values)
        return answer


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data

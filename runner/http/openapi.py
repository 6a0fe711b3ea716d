"""The OpenAPI document of every route: the predict endpoints derived from the live models' contracts
(one path per model method, JSON schemas of its messages), and the fixed routes (reads, admin with its
bearer-token security scheme, health, the Open Inference Protocol) with the answers each may give.

It is what `GET /openapi.json` serves and what the fuzz stage (schemathesis, tests/e2e/test_fuzz_openapi.py)
checks the service against: every status an operation may answer is listed, and every JSON answer
has a schema.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf.message import Message

from runner.contract import Contract
from runner.errors import Kind
from runner.serving.registry import LoadedVersion

JSON = "application/json"
BINARY_MEDIA = ("application/x-protobuf", "application/vnd.google.protobuf")
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_TEXT = {"schema": {"type": "string"}}

#: What each error status means, as the operations list them.
_ERROR_STATUS = {
    "400": "bad input (kind bad_input, or ambiguous on a single-model path of a service with several)",
    "401": "no bearer token, or not a bearer token (kind unauthenticated)",
    "403": "a wrong token, or admin disabled: no token configured (kind forbidden)",
    "404": "no such model, version, method or endpoint (kind not_found or method_not_found)",
    "408": "the request's headers or body did not arrive in time (kind request_timeout)",
    "409": "a breaking contract change, or a change superseded before it was served (kind conflict)",
    "412": "If-Match names another version than the current one (kind precondition_failed)",
    "413": "the body or message is larger than the limit (kind too_large)",
    "415": "a media type this endpoint does not read or cannot answer in (kind unsupported_media)",
    "422": "the bundle or contract is refused by validation (kind invalid_bundle or invalid_contract)",
    "500": "the model raised (kind model_error), or an unexpected error (internal; detail.request_id)",
    "503": "the model is not loaded in this process (kind not_ready)",
    "504": "the call's deadline passed (deadline), or the swap was not served in time (swap_timeout)",
}

#: Statuses of the predict endpoints, of the admin routes, of the reads of one model.
_PREDICT_ERRORS = ("400", "404", "408", "413", "415", "500", "503", "504")
_ADMIN_ERRORS = ("400", "401", "403", "404", "408", "409", "412", "413", "504")
_READ_ERRORS = ("400", "404")

_SECURED: list[dict[str, list[str]]] = [{"bearerAuth": []}]


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {JSON: {"schema": schema}}


def _errors(*codes: str) -> dict[str, Any]:
    return {code: _ref("responses", f"E{code}") for code in codes}


def _ok(description: str, schema: dict[str, Any], *, versioned: bool = False) -> dict[str, Any]:
    """A 200 with a JSON body (``versioned``: with the X-Model-Name and X-Model-Version headers)."""
    answer: dict[str, Any] = {"description": description, "content": _json(schema)}
    if versioned:
        answer["headers"] = _VERSION_HEADERS
    return answer


_VERSION_HEADERS = {
    "X-Model-Name": {"description": "the model that answered", "schema": {"type": "string"}},
    "X-Model-Version": {"description": "the version that answered", "schema": {"type": "string"}},
}


def build_openapi(snapshot: Mapping[str, LoadedVersion]) -> dict[str, Any]:
    """An OpenAPI 3 document of every route; one predict path per live model method (schemas from the
    contracts), the live model names as examples of the `{name}` of the read and inference routes."""
    paths: dict[str, Any] = {}
    for name, loaded in sorted(snapshot.items()):
        contract: Contract = loaded.contract
        for method in contract.method_names():
            in_schema = _schema(contract, contract.input_class(method), loaded.required.spec)
            out_schema = _schema(contract, contract.output_class(method))
            paths[f"/models/{name}/methods/{method}"] = {
                "post": _predict(
                    f"{name}.{method}",
                    f"{contract.full_service_name}.{method} of model {name} (version {loaded.version})",
                    [name],
                    in_schema,
                    out_schema,
                )
            }
    paths.update(_fixed_paths())
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "model-runner",
            "version": "1",
            "description": (
                "Models served by this model-runner: the predict endpoints derived from their live "
                "contracts, the reads, the admin routes (bearer token) and the Open Inference Protocol."
            ),
        },
        "paths": paths,
        "components": _components(sorted(snapshot)),
    }


def _predict(
    operation_id: str,
    summary: str,
    tags: list[str],
    in_schema: dict[str, Any],
    out_schema: dict[str, Any],
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    content = {JSON: {"schema": in_schema}, **{media: _BINARY for media in BINARY_MEDIA}}
    op: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "tags": tags,
        "parameters": [_ref("parameters", "Accept"), _ref("parameters", "Timeout"), *(parameters or [])],
        "requestBody": {"required": True, "content": content},
        "responses": {
            "200": {
                "description": "prediction",
                "headers": _VERSION_HEADERS,
                "content": {JSON: {"schema": out_schema}, **{media: _BINARY for media in BINARY_MEDIA}},
            },
            **_errors(*_PREDICT_ERRORS),
        },
    }
    return op


def _fixed_paths() -> dict[str, Any]:
    """The routes every service has, whatever it serves."""
    name, method, version = (_ref("parameters", p) for p in ("Name", "Method", "Version"))
    admin_name, if_match = _ref("parameters", "AdminName"), _ref("parameters", "IfMatch")
    allow_breaking = _ref("parameters", "AllowBreaking")
    schemas = "schemas"
    any_message = {"type": "object", "description": "the proto3 JSON of the rpc's input message"}
    any_answer = {"type": "object", "description": "the proto3 JSON of the rpc's output message"}
    bundle_body = {
        "required": True,
        "content": {
            "application/zip": _BINARY,
            "application/octet-stream": _BINARY,
            "multipart/form-data": {"schema": _ref(schemas, "UploadParts")},
        },
    }
    proto_body = {
        "required": True,
        "content": {
            "text/plain": _TEXT,
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"proto": {"type": "string", "format": "binary"}},
                    "required": ["proto"],
                }
            },
        },
    }
    swap = {"200": _ok("every live serving process serves the result", _ref(schemas, "Swap"))}
    upload_errors = _errors(*_ADMIN_ERRORS, "415", "422")

    def admin(op_id: str, summary: str, params: list[Any], **rest: Any) -> dict[str, Any]:
        return {
            "operationId": op_id,
            "summary": summary,
            "tags": ["admin"],
            "security": _SECURED,
            "parameters": params,
            **rest,
        }

    def read(op_id: str, summary: str, params: list[Any], responses: dict[str, Any]) -> dict[str, Any]:
        return {"operationId": op_id, "summary": summary, "tags": ["read"], "parameters": params, **responses}

    text_ok = {
        "200": {"description": "the text", "headers": _VERSION_HEADERS, "content": {"text/plain": _TEXT}}
    }
    metadata_ok = {"200": _ok("metadata.json as stored", {"type": "object"}, versioned=True)}
    v2_server = _ok("server", _ref(schemas, "V2Server"))
    v2_model = _ok("V2 model metadata", _ref(schemas, "V2ModelMetadata"))
    infer_header = _ref("parameters", "InferenceHeaderLength")
    v2_ready = {
        "200": _ok("the version is loaded and current", _ref(schemas, "V2ModelReady")),
        "400": {
            "description": "the model or version exists but is not served (a 4xx means false)",
            "content": _json(_ref(schemas, "V2ModelReady")),
        },
        **_v2_errors("404"),
    }
    v2_infer = {
        "description": "V2 inference response (application/octet-stream: JSON, then binary tensor data)",
        "headers": _VERSION_HEADERS,
        "content": {JSON: {"schema": _ref(schemas, "V2InferResponse")}, "application/octet-stream": _BINARY},
    }
    infer_body = {
        "required": True,
        "content": {
            JSON: {"schema": _ref(schemas, "V2InferRequest")},
            "application/octet-stream": _BINARY,
        },
    }
    v2_errors = _v2_errors("400", "404", "503")
    infer_errors = _v2_errors(*_PREDICT_ERRORS)
    paths: dict[str, Any] = {
        # ---------------------------------------------------------------- predictions, any model
        "/models/{name}/methods/{method}": {
            "post": _predict(
                "predict",
                "Call an rpc of a model (the per-model paths above give its schemas)",
                ["predict"],
                any_message,
                any_answer,
                [name, method],
            )
        },
        "/model/methods/{method}": {
            "post": _predict(
                "predict_single",
                "Call an rpc of the one model of a single-model service (Acumos)",
                ["predict"],
                any_message,
                any_answer,
                [method],
            )
        },
        # ---------------------------------------------------------------- reads
        "/models": {
            "get": read(
                "list_models",
                "The current version of every model",
                [],
                {
                    "responses": {
                        "200": _ok(
                            "the models",
                            {
                                "type": "object",
                                "required": ["models"],
                                "properties": {"models": {"type": "array", "items": _ref(schemas, "Model")}},
                            },
                        )
                    }
                },
            )
        },
        "/models/{name}": {
            "get": read(
                "get_model",
                "One model: its current version, versions, and which version each serving process serves",
                [name],
                {
                    "responses": {
                        "200": _ok("the model", _ref(schemas, "ModelDetail")),
                        **_errors(*_READ_ERRORS),
                    }
                },
            ),
            "put": admin(
                "upload",
                "Upload a bundle as a new version and swap to it",
                [admin_name, if_match, allow_breaking],
                requestBody=bundle_body,
                responses={**swap, **upload_errors},
            ),
            "delete": admin(
                "delete",
                "Stop serving the model (its versions stay on disk until cleanup)",
                [admin_name, if_match],
                responses={**swap, **_errors(*_ADMIN_ERRORS)},
            ),
        },
        "/models/{name}/versions": {
            "get": read(
                "get_versions",
                "The current version and every stored version",
                [name],
                {
                    "responses": {
                        "200": _ok("the versions", _ref(schemas, "Versions")),
                        **_errors(*_READ_ERRORS),
                    }
                },
            )
        },
        "/models/{name}/history": {
            "get": read(
                "get_history",
                "Every publish, proto change, rollback and delete",
                [name],
                {
                    "responses": {
                        "200": _ok("the history", _ref(schemas, "History")),
                        **_errors(*_READ_ERRORS),
                    }
                },
            )
        },
        "/models/{name}/proto": {
            "get": read(
                "get_proto",
                "The current model.proto",
                [name],
                {"responses": {**text_ok, **_errors(*_READ_ERRORS)}},
            ),
            "put": admin(
                "replace_proto",
                "Replace only the contract: a new version with the same artifacts",
                [admin_name, if_match, allow_breaking],
                requestBody=proto_body,
                responses={**swap, **upload_errors},
            ),
        },
        "/models/{name}/metadata": {
            "get": read(
                "get_metadata",
                "The current metadata.json",
                [name],
                {"responses": {**metadata_ok, **_errors(*_READ_ERRORS)}},
            )
        },
        "/model/artifacts/protobuf": {
            "get": read(
                "acumos_proto",
                "The model.proto of a single-model service (Acumos)",
                [],
                {"responses": {**text_ok, **_errors(*_READ_ERRORS)}},
            )
        },
        "/model/artifacts/metadata": {
            "get": read(
                "acumos_metadata",
                "The metadata.json of a single-model service (Acumos)",
                [],
                {"responses": {**metadata_ok, **_errors(*_READ_ERRORS)}},
            )
        },
        # ---------------------------------------------------------------- admin
        "/models/{name}/rollback": {
            "post": admin(
                "rollback",
                "Back to the previous version, or to ?version=N",
                [
                    admin_name,
                    if_match,
                    {
                        "name": "version",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1},
                    },
                ],
                responses={**swap, **_errors(*_ADMIN_ERRORS)},
            )
        },
        "/model": {
            "put": admin(
                "acumos_upload",
                "Upload a new version of the one model of a single-model service (Acumos)",
                [
                    {"name": "name", "in": "query", "required": False, "schema": {"type": "string"}},
                    if_match,
                    allow_breaking,
                ],
                requestBody=bundle_body,
                responses={**swap, **upload_errors},
            )
        },
        "/proto": {
            "put": admin(
                "acumos_replace_proto",
                "Replace the contract of the one model of a single-model service (Acumos)",
                [if_match, allow_breaking],
                requestBody=proto_body,
                responses={**swap, **upload_errors},
            )
        },
        "/model/configuration": {
            "put": admin(
                "acumos_replace_config",
                "Replace the modelConfig.properties of the one model of a single-model service (Acumos)",
                [if_match],
                requestBody=_multipart({"modelConfig": True}, text=True),
                responses={**swap, **upload_errors},
            )
        },
        # ---------------------------------------------------------------- Acumos utility routes
        **_acumos_utility_paths(),
        # ---------------------------------------------------------------- health
        "/healthz": {
            "get": _health("healthz", "Liveness: 200 while the process is alive", "Alive", ok_only=True)
        },
        "/readyz": {"get": _health("readyz", "Readiness of this serving process", "Ready")},
        "/openapi.json": {
            "get": _health("openapi", "This document", None, ok_only=True, schema={"type": "object"})
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus text metrics of every serving process (HTTP workers and gRPC processes)",
                "tags": ["health"],
                "responses": {"200": {"description": "Prometheus text", "content": {"text/plain": _TEXT}}},
            }
        },
        # ---------------------------------------------------------------- Open Inference Protocol (V2)
        "/v2": {"get": _v2("v2_server", "V2 server metadata", [], {"200": v2_server})},
        "/v2/": {"get": _v2("v2_server_slash", "V2 server metadata", [], {"200": v2_server})},
        "/v2/health/live": {
            "get": _v2("v2_live", "V2 liveness", [], {"200": _ok("alive", _ref(schemas, "V2Live"))})
        },
        "/v2/health/ready": {
            "get": _v2(
                "v2_ready",
                "V2 readiness: 400 (false) until every model is loaded",
                [],
                {
                    "200": _ok("ready", _ref(schemas, "V2Ready")),
                    "400": {"description": "not ready", "content": _json(_ref(schemas, "V2Ready"))},
                },
            )
        },
        "/v2/models/{name}": {
            "get": _v2("v2_model", "V2 model metadata", [name], {"200": v2_model, **v2_errors})
        },
        "/v2/models/{name}/versions/{version}": {
            "get": _v2(
                "v2_model_version",
                "V2 model metadata of a version",
                [name, version],
                {"200": v2_model, **v2_errors},
            )
        },
        "/v2/models/{name}/ready": {"get": _v2("v2_model_ready", "V2 model readiness", [name], v2_ready)},
        "/v2/models/{name}/versions/{version}/ready": {
            "get": _v2("v2_model_version_ready", "V2 readiness of a version", [name, version], v2_ready)
        },
        "/v2/models/{name}/infer": {
            "post": _v2(
                "v2_infer",
                "V2 inference",
                [name, infer_header],
                {"200": v2_infer, **infer_errors},
                body=infer_body,
            )
        },
        "/v2/models/{name}/versions/{version}/infer": {
            "post": _v2(
                "v2_infer_version",
                "V2 inference on a version",
                [name, version, infer_header],
                {"200": v2_infer, **infer_errors},
                body=infer_body,
            )
        },
    }
    return paths


def _multipart(parts: dict[str, bool], *, text: bool = False) -> dict[str, Any]:
    """A request body of multipart file parts (name -> required), with an `operation` field unless
    ``text`` (then also the raw file as text/plain)."""
    properties: dict[str, Any] = {part: {"type": "string", "format": "binary"} for part in parts}
    if not text:
        properties["operation"] = {"type": "string"}
    body: dict[str, Any] = {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": properties,
                    "required": [part for part, required in parts.items() if required],
                }
            }
        },
    }
    if text:
        body["content"]["text/plain"] = _TEXT
    return body


def _acumos_utility_paths() -> dict[str, Any]:
    """The Acumos generic runner's CSV/JSON utility routes (runner.http.acumos)."""
    operation = {"name": "operation", "in": "query", "required": False, "schema": {"type": "string"}}
    binary = {
        "200": {"description": "the protobuf message", "content": {"application/octet-stream": _BINARY}}
    }
    answered = {
        "200": {
            "description": "the model's answer (binary output message)",
            "headers": _VERSION_HEADERS,
            "content": {"application/octet-stream": _BINARY},
        }
    }

    def op(op_id: str, summary: str, parts: dict[str, bool], responses: dict[str, Any]) -> dict[str, Any]:
        return {
            "post": {
                "operationId": op_id,
                "summary": summary,
                "tags": ["acumos"],
                "parameters": [operation],
                "requestBody": _multipart(parts),
                "responses": responses,
            }
        }

    convert_errors = _errors("400", "404", "408", "413", "422", "503")
    return {
        "/getBinaryDefault": op(
            "acumos_get_binary_default",
            "A CSV file with a header line as the rpc's input message (the served contract)",
            {"csvFile": True},
            {**binary, **convert_errors},
        ),
        "/getBinary": op(
            "acumos_get_binary",
            "A CSV file with a header line as the rpc's input message of the given .proto",
            {"csvFile": True, "proto": True},
            {**binary, **convert_errors},
        ),
        "/getBinaryJSONDefault": op(
            "acumos_get_binary_json_default",
            "A JSON file as the rpc's input message (the served contract)",
            {"jsonFile": True},
            {**binary, **convert_errors},
        ),
        "/getBinaryJSON": op(
            "acumos_get_binary_json",
            "A JSON file as the rpc's input message of the given .proto",
            {"jsonFile": True, "proto": True},
            {**binary, **convert_errors},
        ),
        "/transformCSVDefault": op(
            "acumos_transform_csv_default",
            "A CSV file with a header line run through the served model",
            {"csvFile": True},
            {**answered, **_errors(*_PREDICT_ERRORS)},
        ),
        "/transformJSONDefault": op(
            "acumos_transform_json_default",
            "A JSON file run through the served model",
            {"jsonFile": True},
            {**answered, **_errors(*_PREDICT_ERRORS)},
        ),
        "/transformCSV": op(
            "acumos_transform_csv",
            "Refused (400): it runs a model sent with the request; use /transformCSVDefault",
            {},
            _errors("400", "408", "413"),
        ),
        "/transformJSON": op(
            "acumos_transform_json",
            "Refused (400): it runs a model sent with the request; use /transformJSONDefault",
            {},
            _errors("400", "408", "413"),
        ),
    }


def _health(
    op_id: str,
    summary: str,
    schema_name: str | None,
    *,
    ok_only: bool = False,
    schema: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body = schema if schema is not None else _ref("schemas", schema_name or "")
    responses: dict[str, Any] = {"200": _ok(summary, body)}
    if not ok_only:
        responses["503"] = {"description": "not every model is loaded", "content": _json(body)}
    return {"operationId": op_id, "summary": summary, "tags": ["health"], "responses": responses}


def _v2(
    op_id: str,
    summary: str,
    params: list[Any],
    responses: dict[str, Any],
    *,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": op_id,
        "summary": summary,
        "tags": ["v2"],
        "parameters": params,
        "responses": responses,
    }
    if body is not None:
        op["requestBody"] = body
    return op


def _v2_errors(*codes: str) -> dict[str, Any]:
    """Errors under /v2 have the spec's body, ``{"error": "<message>"}``."""
    return {code: _ref("responses", f"V{code}") for code in codes}


def _components(model_names: list[str]) -> dict[str, Any]:
    string, integer, obj = {"type": "string"}, {"type": "integer"}, {"type": "object"}
    nullable_int = {"type": "integer", "nullable": True}

    def strict(properties: dict[str, Any], required: Sequence[str]) -> dict[str, Any]:
        return {"type": "object", "properties": properties, "required": list(required)}

    name_param: dict[str, Any] = {
        "name": "name",
        "in": "path",
        "required": True,
        "description": "a model name, percent-encoded UTF-8 (models are named [a-z0-9][a-z0-9_.-]{0,62})",
        "schema": {"type": "string"},
    }
    if model_names:
        name_param["examples"] = {n: {"value": n} for n in model_names}
    tensor = strict(
        {
            "name": string,
            "datatype": string,
            "shape": {"type": "array", "items": integer},
            "parameters": obj,
            "data": {"description": "the values, nested or flat (row-major)"},
        },
        ["name", "data"],
    )
    tensor_spec = strict(
        {"name": string, "datatype": string, "shape": {"type": "array", "items": integer}, "parameters": obj},
        ["name", "datatype", "shape"],
    )
    model = strict(
        {
            "name": string,
            "version": integer,
            "runtime": {"type": "string", "nullable": True},
            "entry_point": {"type": "string", "nullable": True},
            "description": string,
            "loaded_version": integer,
            "service": string,
            "methods": {"type": "array", "items": string},
            "load_error": string,
        },
        ["name", "version"],
    )
    model_detail = {
        "allOf": [
            _ref("schemas", "Model"),
            strict(
                {
                    "versions": {"type": "array", "items": integer},
                    "served_by": {
                        "type": "object",
                        "description": "serving process -> the version it serves (null: none)",
                        "additionalProperties": nullable_int,
                    },
                },
                ["versions", "served_by"],
            ),
        ]
    }
    return {
        "securitySchemes": {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": "the admin token (MODEL_RUNNER_ADMIN_TOKEN, or the repository's admin-token file)",
            }
        },
        "parameters": {
            "Name": name_param,
            "AdminName": {**{k: v for k, v in name_param.items() if k != "examples"}},
            "Method": {
                "name": "method",
                "in": "path",
                "required": True,
                "description": "an rpc of the model's contract",
                "schema": string,
            },
            "Version": {
                "name": "version",
                "in": "path",
                "required": True,
                "description": "a version number",
                "schema": string,
            },
            "IfMatch": {
                "name": "If-Match",
                "in": "header",
                "required": False,
                "description": "the version expected to be current (412 when it is not)",
                "schema": string,
            },
            "AllowBreaking": {
                "name": "allow_breaking",
                "in": "query",
                "required": False,
                "description": "publish a contract that breaks the current version's clients",
                "schema": {"type": "boolean"},
            },
            "InferenceHeaderLength": {
                "name": "Inference-Header-Content-Length",
                "in": "header",
                "required": False,
                "description": "the body is that many bytes of JSON, then binary tensor data",
                "schema": {"type": "integer", "minimum": 0},
            },
            "Accept": {
                "name": "Accept",
                "in": "header",
                "required": False,
                "description": "the answer's media type (default: the request's)",
                "schema": string,
            },
            "Timeout": {
                "name": "X-Timeout-Seconds",
                "in": "header",
                "required": False,
                "description": "lowers the call's deadline (never above predict_timeout)",
                "schema": {"type": "number", "exclusiveMinimum": True, "minimum": 0},
            },
        },
        "responses": {
            f"E{code}": {
                "description": description,
                "content": _json(_ref("schemas", "Error")),
            }
            for code, description in _ERROR_STATUS.items()
        }
        | {
            f"V{code}": {"description": description, "content": _json(_ref("schemas", "V2Error"))}
            for code, description in _ERROR_STATUS.items()
        },
        "schemas": {
            "Error": strict(
                {
                    "error": strict(
                        {
                            "kind": {"type": "string", "enum": [k.value for k in Kind] + ["request_timeout"]},
                            "message": string,
                            "detail": obj,
                        },
                        ["kind", "message", "detail"],
                    )
                },
                ["error"],
            ),
            "Model": model,
            "ModelDetail": model_detail,
            "Versions": strict(
                {"name": string, "version": integer, "versions": {"type": "array", "items": integer}},
                ["name", "version", "versions"],
            ),
            "History": strict(
                {
                    "name": string,
                    "history": {
                        "type": "array",
                        "items": strict(
                            {
                                "time": {"type": "number", "description": "seconds since the epoch"},
                                "action": string,
                                "version": nullable_int,
                                "caller": string,
                            },
                            ["time", "action"],
                        ),
                    },
                },
                ["name", "history"],
            ),
            "Swap": strict(
                {
                    "name": string,
                    "version": nullable_int,
                    "previous_version": nullable_int,
                    "sha256": {"type": "string", "nullable": True},
                    "action": {"type": "string", "enum": ["upload", "proto", "rollback", "delete"]},
                    "served_by": {"type": "array", "items": string},
                    "breaking_changes": {"type": "array", "items": string},
                    "warnings": {"type": "array", "items": string},
                    "unchanged": {"type": "boolean"},
                },
                ["name", "version", "action", "served_by"],
            ),
            "UploadParts": {
                "type": "object",
                "description": "a 'bundle' part (zip), or a 'model' part (JAR) with optional others",
                "properties": {
                    "bundle": {"type": "string", "format": "binary"},
                    "model": {"type": "string", "format": "binary"},
                    "proto": {"type": "string", "format": "binary"},
                    "metadata": {"type": "string", "format": "binary"},
                    "modelConfig": {"type": "string", "format": "binary"},
                    "lib": {"type": "array", "items": {"type": "string", "format": "binary"}},
                },
            },
            "Alive": strict({"status": string}, ["status"]),
            "Ready": strict(
                {
                    "ready": {"type": "boolean"},
                    "models": {"type": "object", "additionalProperties": integer},
                    "errors": {"type": "object", "additionalProperties": string},
                },
                ["ready", "models", "errors"],
            ),
            "V2Error": strict({"error": string}, ["error"]),
            "V2Server": strict(
                {"name": string, "version": string, "extensions": {"type": "array", "items": string}},
                ["name", "version", "extensions"],
            ),
            "V2Live": strict({"live": {"type": "boolean"}}, ["live"]),
            "V2Ready": strict({"ready": {"type": "boolean"}}, ["ready"]),
            "V2ModelReady": strict({"name": string, "ready": {"type": "boolean"}}, ["name", "ready"]),
            "V2ModelMetadata": strict(
                {
                    "name": string,
                    "versions": {"type": "array", "items": string},
                    "platform": string,
                    "inputs": {"type": "array", "items": tensor_spec},
                    "outputs": {"type": "array", "items": tensor_spec},
                    "parameters": obj,
                },
                ["name", "platform", "inputs", "outputs"],
            ),
            "V2InferRequest": strict(
                {
                    "id": string,
                    "parameters": obj,
                    "inputs": {"type": "array", "items": tensor},
                    "outputs": {
                        "type": "array",
                        "items": strict({"name": string, "parameters": obj}, ["name"]),
                    },
                },
                ["inputs"],
            ),
            "V2InferResponse": strict(
                {
                    "model_name": string,
                    "model_version": string,
                    "id": string,
                    "parameters": obj,
                    "outputs": {
                        "type": "array",
                        "items": {**tensor, "required": ["name", "datatype", "shape"]},  # data: or binary
                    },
                },
                ["model_name", "outputs"],
            ),
        },
    }


def _schema(
    contract: Contract, cls: type[Message], required: Mapping[str, Sequence[str]] | None = None
) -> dict[str, Any]:
    try:
        return contract.json_schema(cls, required)
    except Exception as err:  # noqa: BLE001 - one broken schema must not take the document down
        return {"description": f"schema unavailable: {err}"}

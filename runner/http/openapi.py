"""The OpenAPI document of the predict endpoints, derived from the live models' contracts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf.message import Message

from runner.contract import Contract
from runner.serving.registry import LoadedVersion


def build_openapi(snapshot: Mapping[str, LoadedVersion]) -> dict[str, Any]:
    """An OpenAPI 3 document with one path per live model method, JSON schemas from the contracts."""
    paths: dict[str, Any] = {}
    error_schema = {"$ref": "#/components/schemas/Error"}
    for name, loaded in sorted(snapshot.items()):
        contract: Contract = loaded.contract
        for method in contract.method_names():
            in_schema = _schema(contract, contract.input_class(method), loaded.required.spec)
            out_schema = _schema(contract, contract.output_class(method))
            binary = {"schema": {"type": "string", "format": "binary"}}
            paths[f"/models/{name}/methods/{method}"] = {
                "post": {
                    "operationId": f"{name}.{method}",
                    "summary": f"{contract.full_service_name}.{method} of model {name} (version {loaded.version})",
                    "tags": [name],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": in_schema},
                            "application/x-protobuf": binary,
                            "application/vnd.google.protobuf": binary,
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "prediction",
                            "headers": {
                                "X-Model-Name": {"schema": {"type": "string"}},
                                "X-Model-Version": {"schema": {"type": "integer"}},
                            },
                            "content": {
                                "application/json": {"schema": out_schema},
                                "application/x-protobuf": binary,
                            },
                        },
                        "default": {
                            "description": "error",
                            "content": {"application/json": {"schema": error_schema}},
                        },
                    },
                }
            }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "model-runner",
            "version": "1",
            "description": "Models served by this model-runner, derived from their live contracts.",
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "kind": {"type": "string"},
                                "message": {"type": "string"},
                                "detail": {"type": "object"},
                            },
                        }
                    },
                }
            }
        },
    }


def _schema(
    contract: Contract, cls: type[Message], required: Mapping[str, Sequence[str]] | None = None
) -> dict[str, Any]:
    try:
        return contract.json_schema(cls, required)
    except Exception as err:  # noqa: BLE001 - one broken schema must not take the document down
        return {"description": f"schema unavailable: {err}"}

"""Open Inference Protocol (KServe V2) REST endpoints, so KServe, Seldon and Triton clients can call the
served models. The mapping between tensors and contract fields is runner.serving.oip's; prediction goes through
the same data plane as every other call (deadlines, metrics of the model, errors mapped by the one table)."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, Response, jsonify, request

from runner.contract import MEDIA_JSON
from runner.errors import BadInput, NotFound, NotReady
from runner.serving import oip

SERVER_NAME = "model-runner"
SERVER_VERSION = "0.1.0"


def add_oip_routes(app: Flask, registry: Any, dataplane: Any, timeout: float) -> None:
    """Register the V2 routes on ``app`` (errors are raised as core errors: the app's handlers map them)."""

    def loaded(name: str, version: str | None = None) -> Any:
        current = registry.snapshot().get(name)
        if current is None:
            if name in registry.load_errors():
                raise NotReady(
                    f"model {name!r} is not loaded: {registry.load_errors()[name]}", {"model": name}
                )
            raise NotFound(f"no model {name!r}", {"model": name})
        if version is not None and version != str(current.version):
            raise NotFound(
                f"model {name!r} serves version {current.version}, not {version}",
                {"model": name, "version": current.version},
            )
        return current

    @app.get("/v2")
    def v2_server() -> Response:
        return jsonify({"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": []})

    @app.get("/v2/health/live")
    def v2_live() -> Response:
        return jsonify({"live": True})

    @app.get("/v2/health/ready")
    def v2_ready() -> Response:
        ready = bool(registry.ready())
        response = jsonify({"ready": ready})
        response.status_code = 200 if ready else 503
        return response

    @app.get("/v2/models/<name>")
    @app.get("/v2/models/<name>/versions/<version>")
    def v2_model(name: str, version: str | None = None) -> Response:
        lv = loaded(name, version)
        return jsonify(oip.model_metadata(name, lv.version, lv.metadata.runtime, lv.contract))

    @app.get("/v2/models/<name>/ready")
    @app.get("/v2/models/<name>/versions/<version>/ready")
    def v2_model_ready(name: str, version: str | None = None) -> Response:
        loaded(name, version)
        return jsonify({"name": name, "ready": True})

    @app.post("/v2/models/<name>/infer")
    @app.post("/v2/models/<name>/versions/<version>/infer")
    def v2_infer(name: str, version: str | None = None) -> Response:
        try:
            body = json.loads(request.get_data() or b"null")
        except ValueError as err:
            raise BadInput(f"the body is not JSON: {err}") from None
        contract = loaded(name, version).contract
        method = oip.method_of(contract, body.get("parameters") if isinstance(body, dict) else None)
        payload = json.dumps(oip.request_to_json(contract, method, body)).encode()
        result = dataplane.predict(name, method, payload, MEDIA_JSON, MEDIA_JSON, timeout=timeout)
        answer = oip.response_from_json(
            contract,
            method,
            json.loads(result.body),
            name=name,
            version=result.version,
            request_id=body.get("id"),
            wanted=body.get("outputs"),
        )
        response = jsonify(answer)
        response.headers["X-Model-Name"] = result.model
        response.headers["X-Model-Version"] = str(result.version)
        return response

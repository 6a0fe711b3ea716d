"""Open Inference Protocol (KServe V2) REST endpoints, so KServe, Seldon and Triton clients can call the
served models. The mapping between tensors and contract fields is runner.serving.oip's; prediction goes through
the same data plane as every other call (deadlines, metrics of the model, errors mapped by the one table)."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, jsonify, request

from runner.contract import MEDIA_JSON, Contract
from runner.contract.codec import check_json_depth
from runner.errors import BadInput, NotFound, NotReady
from runner.serving import oip
from runner.serving.dataplane import DataPlane
from runner.serving.registry import LoadedVersion, Registry

SERVER_NAME = "model-runner"
SERVER_VERSION = "0.1.0"


class OipRoutes:
    """The V2 routes over a registry and its data plane (errors are raised as core errors: the app's
    handlers map them)."""

    def __init__(self, registry: Registry, dataplane: DataPlane, timeout: float) -> None:
        self.registry = registry
        self.dataplane = dataplane
        self.timeout = timeout

    def blueprint(self) -> Blueprint:
        routes = Blueprint("oip", __name__)
        routes.add_url_rule("/v2", view_func=self.v2_server, methods=["GET"])
        routes.add_url_rule("/v2/health/live", view_func=self.v2_live, methods=["GET"])
        routes.add_url_rule("/v2/health/ready", view_func=self.v2_ready, methods=["GET"])
        for prefix in ("/v2/models/<name>", "/v2/models/<name>/versions/<version>"):
            routes.add_url_rule(prefix, view_func=self.v2_model, methods=["GET"])
            routes.add_url_rule(f"{prefix}/ready", view_func=self.v2_model_ready, methods=["GET"])
            routes.add_url_rule(f"{prefix}/infer", view_func=self.v2_infer, methods=["POST"])
        return routes

    def loaded(self, name: str, version: str | None = None) -> LoadedVersion:
        """The live version of ``name``; NotFound when ``version`` is given and is not that one."""
        current = self.registry.snapshot().get(name)
        if current is None:
            if name in self.registry.load_errors():
                raise NotReady(
                    f"model {name!r} is not loaded: {self.registry.load_errors()[name]}", {"model": name}
                )
            raise NotFound(f"no model {name!r}", {"model": name})
        if version is not None and version != str(current.version):
            raise NotFound(
                f"model {name!r} serves version {current.version}, not {version}",
                {"model": name, "version": current.version},
            )
        return current

    def _request_object(self) -> dict[str, Any]:
        """The JSON object of an inference request; BadInput for anything else (the data plane's depth
        limit applies: json's decoder recurses)."""
        depth = self.dataplane.max_json_depth
        try:
            text = request.get_data().decode("utf-8")
        except UnicodeDecodeError as err:
            raise BadInput(f"the body is not UTF-8 text (byte {err.start})", {"offset": err.start}) from None
        check_json_depth(text, depth)
        try:
            body = json.loads(text) if text.strip() else None
        except ValueError as err:
            raise BadInput(f"the body is not JSON: {err}") from None
        except RecursionError:
            raise BadInput(f"JSON nested deeper than {depth} levels", {"max_json_depth": depth}) from None
        if not isinstance(body, dict):
            raise BadInput(
                f'a V2 inference request is a JSON object with a list "inputs", not {_json_type(body)}',
                {"expected": "object"},
            )
        return body

    def v2_server(self) -> Response:
        return jsonify({"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": []})

    def v2_live(self) -> Response:
        return jsonify({"live": True})

    def v2_ready(self) -> Response:
        ready = bool(self.registry.ready())
        response = jsonify({"ready": ready})
        response.status_code = 200 if ready else 503
        return response

    def v2_model(self, name: str, version: str | None = None) -> Response:
        lv = self.loaded(name, version)
        return jsonify(oip.model_metadata(name, lv.version, lv.metadata.runtime, lv.contract))

    def v2_model_ready(self, name: str, version: str | None = None) -> Response:
        self.loaded(name, version)
        return jsonify({"name": name, "ready": True})

    def v2_infer(self, name: str, version: str | None = None) -> Response:
        body = self._request_object()
        contract: Contract = self.loaded(name, version).contract
        method = oip.method_of(contract, body.get("parameters") if isinstance(body, dict) else None)
        payload = json.dumps(oip.request_to_json(contract, method, body)).encode()
        result = self.dataplane.predict(name, method, payload, MEDIA_JSON, MEDIA_JSON, timeout=self.timeout)
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


def _json_type(value: Any) -> str:
    if value is None:
        return "null (or an empty body)"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array"}
    return names.get(type(value), type(value).__name__)

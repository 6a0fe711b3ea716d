"""Open Inference Protocol (KServe V2) REST endpoints, so KServe, Seldon and Triton clients (tritonclient
among them) can call the served models. The mapping between tensors and contract fields is
runner.serving.oip's; prediction goes through the same data plane as every other call (deadlines, metrics
of the model, errors mapped by the one table).

What this edge adds to the mapping, as the spec and its binary tensor data extension say:

- every answer under ``/v2`` that is an error has the spec's body, ``{"error": "<message>"}`` (unknown
  paths and wrong verbs under ``/v2`` too: a V2 client parses every error it gets there); the status
  is the one table's, the request id (5xx) in ``X-Request-Id`` as everywhere;
- health: 200 when true, 400 (a 4xx, as the spec says) when not, with ``{"live"}``, ``{"ready"}`` or
  ``{"name", "ready"}``;
- request bodies may be compressed (``Content-Encoding: gzip`` or ``deflate``), decompressed within the
  service's ``max_body_bytes`` (the limit on the body as sent applies as well);
- a body whose ``Inference-Header-Content-Length`` header is set is that many bytes of JSON followed by
  binary tensor data; an answer with binary outputs says the same (``application/octet-stream``).
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from flask import Blueprint, Response, current_app, request

from runner.contract.codec import check_json_depth
from runner.errors import BadInput, ModelRunnerError, NotFound, NotReady, TooLarge, UnsupportedMedia
from runner.serving import metrics, oip
from runner.serving.dataplane import DataPlane
from runner.serving.registry import LoadedVersion, Registry

SERVER_NAME = "model-runner"
SERVER_VERSION = "0.1.0"
EXTENSIONS = ["binary_tensor_data"]
"""V2 extensions this server implements (Triton's names), listed in the server metadata."""
HEADER_LENGTH = "Inference-Header-Content-Length"
NOT_READY_STATUS = 400
"""Status of a health answer that is false: the spec says "a 4xx status code indicates false"."""
_V2 = "/v2"


class OipRoutes:
    """The V2 routes over a registry and its data plane (errors are raised as core errors: the app's
    handlers map them, and :meth:`spec_error` gives those under /v2 the spec's body)."""

    def __init__(self, registry: Registry, dataplane: DataPlane, timeout: float) -> None:
        self.registry = registry
        self.dataplane = dataplane
        self.timeout = timeout

    def blueprint(self) -> Blueprint:
        routes = Blueprint("oip", __name__)
        routes.add_url_rule("/v2", view_func=self.v2_server, methods=["GET"])
        routes.add_url_rule("/v2/", endpoint="v2_server_slash", view_func=self.v2_server, methods=["GET"])
        routes.add_url_rule("/v2/health/live", view_func=self.v2_live, methods=["GET"])
        routes.add_url_rule("/v2/health/ready", view_func=self.v2_ready, methods=["GET"])
        for prefix in ("/v2/models/<name>", "/v2/models/<name>/versions/<version>"):
            routes.add_url_rule(prefix, view_func=self.v2_model, methods=["GET"])
            routes.add_url_rule(f"{prefix}/ready", view_func=self.v2_model_ready, methods=["GET"])
            routes.add_url_rule(f"{prefix}/infer", view_func=self.v2_infer, methods=["POST"])
        routes.after_app_request(self.spec_error)
        return routes

    @staticmethod
    def spec_error(response: Response) -> Response:
        """An error answered under /v2 (by any handler: a route's, routing's, the body limit's) with the
        spec's body ``{"error": "<message>"}`` instead of the service's own error object."""
        path = request.path
        if response.status_code < 400 or not (path == _V2 or path.startswith(_V2 + "/")):
            return response
        doc = response.get_json(silent=True) if response.is_json else None
        error = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(error, dict):
            response.set_data(json.dumps({"error": str(error.get("message", ""))}))
        return response

    def loaded(self, name: str, version: str | None = None) -> LoadedVersion:
        """The live version of ``name``; NotFound when ``version`` is given and is not that one."""
        current = self.registry.snapshot().get(name)
        if current is None:
            errors = self.registry.load_errors()
            if name in errors:
                raise NotReady(f"model {name!r} is not loaded: {errors[name]}", {"model": name})
            raise NotFound(f"no model {name!r}", {"model": name})
        if version is not None and version != str(current.version):
            raise NotFound(
                f"model {name!r} serves version {current.version}, not {version}",
                {"model": name, "version": current.version},
            )
        return current

    # ------------------------------------------------------------------------------------- bodies

    def _body(self) -> tuple[dict[str, Any], memoryview]:
        """The JSON object of an inference request and the binary data after it (empty without an
        Inference-Header-Content-Length header); BadInput for anything else (the data plane's depth
        limit applies: json's decoder recurses)."""
        raw = decompressed(
            request.get_data(cache=False),
            request.headers.get("Content-Encoding"),
            current_app.config["MAX_CONTENT_LENGTH"],  # settings.max_body_bytes (create_app sets it)
        )
        body = memoryview(raw)
        declared = request.headers.get(HEADER_LENGTH)
        if declared is None:
            header, binary = body, body[len(body) :]
        else:
            length = _header_length(declared, len(body))
            header, binary = body[:length], body[length:]
        depth = self.dataplane.max_json_depth
        try:
            text = bytes(header).decode("utf-8")
        except UnicodeDecodeError as err:
            hint = "" if declared is not None else f" (binary tensor data needs the {HEADER_LENGTH} header)"
            raise BadInput(
                f"the JSON of the request is not UTF-8 text (byte {err.start}){hint}", {"offset": err.start}
            ) from None
        check_json_depth(text, depth)
        try:
            obj = json.loads(text) if text.strip() else None
        except ValueError as err:
            hint = "" if declared is not None else f" (binary tensor data needs the {HEADER_LENGTH} header)"
            raise BadInput(f"the request is not JSON: {err}{hint}") from None
        except RecursionError:
            raise BadInput(f"JSON nested deeper than {depth} levels", {"max_json_depth": depth}) from None
        return oip.check_request(obj), binary

    # ------------------------------------------------------------------------------------- routes

    def v2_server(self) -> Response:
        return _json({"name": SERVER_NAME, "version": SERVER_VERSION, "extensions": EXTENSIONS})

    def v2_live(self) -> Response:
        return _json({"live": True})

    def v2_ready(self) -> Response:
        ready = bool(self.registry.ready())
        return _json({"ready": ready}, 200 if ready else NOT_READY_STATUS)

    def v2_model(self, name: str, version: str | None = None) -> Response:
        lv = self.loaded(name, version)
        return _json(oip.model_metadata(name, lv.version, lv.metadata.runtime, lv.contract, lv.required))

    def v2_model_ready(self, name: str, version: str | None = None) -> Response:
        """200 ``{"name", "ready": true}`` when ``version`` (default: the current one) is loaded and
        current; 400 with ``"ready": false`` for a model or version that exists but is not served;
        404 for a model or version that does not exist."""
        current = self.registry.snapshot().get(name)
        if current is not None and (version is None or version == str(current.version)):
            return _json({"name": name, "ready": True})
        repository = self.registry.repository
        try:
            stored = repository.versions(name) if repository.current_version(name) is not None else []
        except ModelRunnerError:  # not a valid model name
            stored = []
        if not stored and name not in self.registry.load_errors():
            raise NotFound(f"no model {name!r}", {"model": name})
        if version is not None and not (version.isdigit() and int(version) in stored):
            raise NotFound(f"model {name!r} has no version {version}", {"model": name, "version": version})
        return _json({"name": name, "ready": False}, NOT_READY_STATUS)

    @metrics.tracked("oip-http")  # counted once, the refusals of this edge included
    def v2_infer(self, name: str, version: str | None = None) -> Response:
        self.loaded(name, version)  # an unknown model or version says so before the body is read
        body, binary = self._body()
        binary_output = (body.get("parameters") or {}).get("binary_data_output", False)
        if not isinstance(binary_output, bool):
            raise BadInput("parameters.binary_data_output is true or false", {"field": "parameters"})
        # the one entry: the version held for the whole call, the tensors mapped on its contract
        result = self.dataplane.infer(name, version, body, binary, self.timeout, protocol="oip-http")
        answer, tail = oip.infer_response(
            result.contract,
            result.method,
            result.output,
            name=name,
            version=result.version,
            request_id=body.get("id"),
            outputs=body.get("outputs"),
            binary_output=binary_output,
        )
        header = json.dumps(answer, ensure_ascii=False).encode()
        if tail:
            response = Response(header + tail, mimetype="application/octet-stream")
            response.headers[HEADER_LENGTH] = str(len(header))
        else:
            response = Response(header, mimetype="application/json")
        response.headers["X-Model-Name"] = result.model
        response.headers["X-Model-Version"] = str(result.version)
        return response


def decompressed(body: bytes, encoding: str | None, limit: int) -> bytes:
    """``body`` with its Content-Encoding undone (gzip, deflate, identity; listed in the order applied);
    TooLarge past ``limit`` bytes decompressed, BadInput for data that is not what it says,
    UnsupportedMedia for another coding."""
    codings = [c.strip().lower() for c in (encoding or "").split(",") if c.strip()]
    for coding in reversed(codings):
        if coding == "identity":
            continue
        if coding in ("gzip", "x-gzip"):
            body = _inflate(body, 16 + zlib.MAX_WBITS, coding, limit)
        elif coding == "deflate":
            # "deflate" is zlib-wrapped (RFC 9110); some clients send the raw stream
            try:
                body = _inflate(body, zlib.MAX_WBITS, coding, limit)
            except BadInput:
                body = _inflate(body, -zlib.MAX_WBITS, coding, limit)
        else:
            raise UnsupportedMedia(
                f"Content-Encoding {coding!r} is not supported: send gzip, deflate or identity",
                {"content_encoding": coding, "supported": ["gzip", "deflate", "identity"]},
            )
    return body


def _inflate(data: bytes, wbits: int, coding: str, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as err:
        raise BadInput(f"the body is not {coding} data: {err}", {"content_encoding": coding}) from None
    if len(out) > limit:
        raise TooLarge(
            f"request body larger than the limit of {limit} bytes once decompressed ({coding})",
            {"limit": limit, "hint": "raise MODEL_RUNNER_MAX_BODY_BYTES"},
        )
    if not inflater.eof:
        raise BadInput(f"the {coding} body is truncated", {"content_encoding": coding})
    if inflater.unused_data:
        raise BadInput(
            f"the {coding} body has {len(inflater.unused_data)} bytes after its end",
            {"content_encoding": coding},
        )
    return out


def _header_length(value: str, body_length: int) -> int:
    try:
        length = int(value)
    except ValueError:
        length = -1
    if not 0 <= length <= body_length:
        raise BadInput(
            f"{HEADER_LENGTH} is the length of the JSON at the start of the body: a number from 0 to "
            f"{body_length}, not {value[:40]!r}",
            {"header": HEADER_LENGTH},
        )
    return length


def _json(doc: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(doc, ensure_ascii=False), status=status, mimetype="application/json")

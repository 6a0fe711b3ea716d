"""The HTTP transport: a Flask app built by a factory. Routes are fixed; models are looked up per request.

The app translates HTTP to core calls (DataPlane for predictions, Admin for swaps, Repository for
listings) and core errors back to HTTP through the one table in runner.http.errors.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from runner.contract import MEDIA_JSON, MEDIA_PROTOBUF
from runner.errors import (
    BadInput,
    Forbidden,
    Kind,
    ModelRunnerError,
    NotFound,
    TooLarge,
    Unauthenticated,
    UnsupportedMedia,
)
from runner.http.errors import error_response, status_for
from runner.http.metrics import Metrics
from runner.http.oip import add_oip_routes
from runner.settings import Settings

log = logging.getLogger(__name__)

PREDICT_MEDIA = (MEDIA_JSON, *MEDIA_PROTOBUF)
ZIP_MEDIA = ("application/zip", "application/x-zip-compressed", "application/octet-stream")

_WERKZEUG_KIND: dict[int, type[ModelRunnerError]] = {
    400: BadInput,
    404: NotFound,
    405: NotFound,
    413: TooLarge,
    415: UnsupportedMedia,
}


def load_admin_token(settings: Settings) -> str | None:
    """The configured admin token: Settings.admin_token, else the content of admin_token_file."""
    if settings.admin_token:
        return settings.admin_token.strip() or None
    if settings.admin_token_file:
        try:
            return Path(settings.admin_token_file).read_text().strip() or None
        except OSError as err:
            log.warning(
                "admin token file %s unreadable (%s): admin endpoints disabled",
                settings.admin_token_file,
                err,
            )
    return None


def create_app(
    settings: Settings, registry: Any, repository: Any, *, admin: Any = None, dataplane: Any = None
) -> Flask:
    """The Flask app serving `registry` (this process's live models) and administering `repository`.

    `admin` and `dataplane` default to runner.serving.admin.Admin / runner.serving.dataplane.DataPlane over the same objects.
    """
    if dataplane is None:
        from runner.serving.dataplane import DataPlane

        dataplane = DataPlane(registry, max_json_depth=settings.max_json_depth)
    if admin is None:
        from runner.serving.admin import Admin

        # settings: bundle limits, keep_versions cleanup and the JVM options validation starts with
        admin = Admin(repository, swap_timeout=settings.swap_timeout, settings=settings)

    app = Flask("model-runner")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    token = load_admin_token(settings)
    metrics = Metrics()
    app.extensions["model_runner"] = {
        "settings": settings,
        "registry": registry,
        "repository": repository,
        "admin": admin,
        "dataplane": dataplane,
        "metrics": metrics,
    }

    # ---------------------------------------------------------------- errors

    @app.errorhandler(ModelRunnerError)
    def _core_error(err: ModelRunnerError) -> Response:
        return error_response(err)

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException) -> Response:
        code = err.code or 500
        cls = _WERKZEUG_KIND.get(code)
        if isinstance(err, RequestEntityTooLarge):
            core: ModelRunnerError = TooLarge(
                f"request body larger than the limit of {settings.max_body_bytes} bytes",
                {"limit": settings.max_body_bytes, "hint": "raise MODEL_RUNNER_MAX_BODY_BYTES"},
            )
        elif code == 404:
            core = NotFound(f"no endpoint {request.method} {request.path}", {"path": request.path})
        elif code == 405:
            core = NotFound(
                f"{request.method} is not allowed on {request.path}",
                {"path": request.path, "allowed": sorted(getattr(err, "valid_methods", None) or [])},
            )
        elif cls is not None:
            core = cls(err.description or err.name, {})
        else:
            response = jsonify(
                {"error": {"kind": "internal", "message": err.description or err.name, "detail": {}}}
            )
            response.status_code = code
            return response
        response = error_response(core)
        if code == 405:
            # the path exists for other verbs: keep HTTP's own status and say which verbs
            response.status_code = 405
            response.headers["Allow"] = ", ".join(sorted(getattr(err, "valid_methods", None) or []))
        return response

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.path)
        core = ModelRunnerError(f"internal error: {type(err).__name__}: {err}", {"type": type(err).__name__})
        return error_response(core)

    # ---------------------------------------------------------------- helpers

    def require_admin() -> str:
        """Check the bearer token; returns the caller string recorded in history."""
        header = request.headers.get("Authorization", "")
        if token is None:
            raise Forbidden(
                "admin endpoints are disabled: no admin token is configured",
                {"hint": "set MODEL_RUNNER_ADMIN_TOKEN or --admin-token-file"},
            )
        if not header:
            raise Unauthenticated("admin endpoint: send 'Authorization: Bearer <token>'", {})
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise Unauthenticated(
                "admin endpoint: the Authorization header must be 'Bearer <token>'", {"scheme": scheme}
            )
        if not hmac.compare_digest(presented.strip().encode(), token.encode()):
            raise Forbidden("the admin token is wrong", {})
        return f"http:{request.remote_addr or '-'}"

    def expected_version() -> int | None:
        raw = request.headers.get("If-Match")
        if raw is None or raw.strip() in ("", "*"):
            return None
        value = raw.strip()
        value = value.removeprefix("W/")
        value = value.strip('"')
        try:
            return int(value)
        except ValueError:
            raise BadInput(
                f"If-Match must be a version number, got {raw!r}", {"header": "If-Match"}
            ) from None

    def flag(name: str) -> bool:
        raw = request.args.get(name, "false").lower()
        if raw in ("1", "true", "yes", "on", ""):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        raise BadInput(f"query parameter {name} must be true or false, got {raw!r}", {"parameter": name})

    def int_arg(name: str) -> int | None:
        raw = request.args.get(name)
        if raw is None or raw == "":
            return None
        try:
            return int(raw)
        except ValueError:
            raise BadInput(
                f"query parameter {name} must be an integer, got {raw!r}", {"parameter": name}
            ) from None

    def single_model() -> str:
        """The one model of a single-model service (the Acumos paths)."""
        names = repository.models()
        if len(names) == 1:
            return names[0]
        if not names:
            raise NotFound("this service has no model yet", {"hint": "PUT /model or PUT /models/{name}"})
        raise BadInput(
            f"this service serves {len(names)} models; use /models/{{name}}/... with one of them",
            {"models": names},
        )

    def current_or_404(name: str) -> int:
        version = repository.current_version(name)
        if version is None:
            raise NotFound(f"no model named {name!r}", {"model": name, "models": repository.models()})
        return version

    def answer(result: Any, status: int = 200) -> Response:
        response = jsonify(result)
        response.status_code = status
        version = result.get("version") if isinstance(result, dict) else None
        if isinstance(version, int):
            response.headers["ETag"] = f'"{version}"'
        return response

    # ---------------------------------------------------------------- predict

    # The predict path skips Flask (routing, Request/Response objects): it is the hot path. These routes
    # only exist so that other verbs on a predict path answer 405 like every other endpoint.
    fast = PredictPath(app.wsgi_app, settings, dataplane, metrics)
    app.wsgi_app = fast  # type: ignore[method-assign]

    @app.post("/models/<name>/methods/<method>")
    def predict_named(name: str, method: str) -> Response:
        return fast.flask_view(name, method)

    @app.post("/model/methods/<method>")
    def predict_single(method: str) -> Response:
        return fast.flask_view(None, method)

    # ---------------------------------------------------------------- read-only model info

    def describe(name: str) -> dict[str, Any]:
        current = current_or_404(name)
        info: dict[str, Any] = {"name": name, "version": current}
        metadata = _read_json(repository.version_dir(name, current) / "metadata.json")
        info["runtime"] = metadata.get("runtime")
        info["entry_point"] = metadata.get("entry_point")
        info["description"] = metadata.get("description", "")
        loaded = registry.snapshot().get(name)
        if loaded is not None:
            info["loaded_version"] = loaded.version
            info["service"] = loaded.contract.full_service_name
            info["methods"] = loaded.contract.method_names()
        errors = registry.load_errors()
        if name in errors:
            info["load_error"] = errors[name]
        return info

    @app.get("/models")
    def list_models() -> Response:
        out = []
        for name in repository.models():
            try:
                out.append(describe(name))
            except NotFound:
                continue  # deleted meanwhile
        return jsonify({"models": out})

    @app.get("/models/<name>")
    def get_model(name: str) -> Response:
        info = describe(name)
        info["versions"] = repository.versions(name)
        info["served_by"] = {
            pid: rec.get("models", {}).get(name) for pid, rec in repository.live_processes().items()
        }
        return answer(info)

    @app.get("/models/<name>/versions")
    def get_versions(name: str) -> Response:
        current = current_or_404(name)
        return answer({"name": name, "version": current, "versions": repository.versions(name)})

    @app.get("/models/<name>/history")
    def get_history(name: str) -> Response:
        history = repository.history(name)
        if not history and repository.current_version(name) is None:
            raise NotFound(f"no model named {name!r}", {"model": name})
        return jsonify({"name": name, "history": history})

    def proto_of(name: str) -> Response:
        current = current_or_404(name)
        text = (repository.version_dir(name, current) / "model.proto").read_text()
        response = Response(text, content_type="text/plain; charset=utf-8")
        response.headers["X-Model-Name"] = name
        response.headers["X-Model-Version"] = str(current)
        return response

    def metadata_of(name: str) -> Response:
        current = current_or_404(name)
        response = jsonify(_read_json(repository.version_dir(name, current) / "metadata.json"))
        response.headers["X-Model-Name"] = name
        response.headers["X-Model-Version"] = str(current)
        return response

    @app.get("/models/<name>/proto")
    def get_proto(name: str) -> Response:
        return proto_of(name)

    @app.get("/models/<name>/metadata")
    def get_metadata(name: str) -> Response:
        return metadata_of(name)

    @app.get("/model/artifacts/protobuf")
    def acumos_proto() -> Response:
        return proto_of(single_model())

    @app.get("/model/artifacts/metadata")
    def acumos_metadata() -> Response:
        return metadata_of(single_model())

    # ---------------------------------------------------------------- admin

    def upload(name: str | None) -> Response:
        caller = require_admin()
        expected = expected_version()
        source, name = _bundle_source(name, repository)
        result = admin.upload(
            name, source, expected_version=expected, caller=caller, allow_breaking=flag("allow_breaking")
        )
        metrics.observe_swap(name, "upload")
        return answer(result)

    @app.put("/models/<name>")
    def put_model(name: str) -> Response:
        return upload(name)

    @app.put("/model")
    def acumos_put_model() -> Response:
        names = repository.models()
        name = request.args.get("name") or (names[0] if len(names) == 1 else None)
        if name is None and len(names) > 1:
            single_model()  # raises the explanatory error
        return upload(name)

    def replace_proto(name: str) -> Response:
        caller = require_admin()
        expected = expected_version()
        proto_text = _proto_text_from_request()
        result = admin.replace_proto(
            name, proto_text, allow_breaking=flag("allow_breaking"), expected_version=expected, caller=caller
        )
        metrics.observe_swap(name, "proto")
        return answer(result)

    @app.put("/models/<name>/proto")
    def put_proto(name: str) -> Response:
        return replace_proto(name)

    @app.put("/proto")
    def acumos_put_proto() -> Response:
        return replace_proto(single_model())

    @app.post("/models/<name>/rollback")
    def rollback(name: str) -> Response:
        caller = require_admin()
        result = admin.rollback(
            name, version=int_arg("version"), expected_version=expected_version(), caller=caller
        )
        metrics.observe_swap(name, "rollback")
        return answer(result)

    @app.delete("/models/<name>")
    def delete(name: str) -> Response:
        caller = require_admin()
        result = admin.delete(name, caller=caller, expected_version=expected_version())
        metrics.observe_swap(name, "delete")
        return jsonify(result)

    # ---------------------------------------------------------------- health, docs, metrics

    # the Open Inference Protocol (KServe V2) over the same models and data plane
    add_oip_routes(app, registry, dataplane, settings.predict_timeout)

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "alive"})

    @app.get("/readyz")
    def readyz() -> Response:
        snapshot = registry.snapshot()
        body = {
            "ready": bool(registry.ready()),
            "models": {name: lv.version for name, lv in snapshot.items()},
            "errors": registry.load_errors(),
        }
        response = jsonify(body)
        response.status_code = 200 if body["ready"] else 503
        return response

    @app.get("/openapi.json")
    def openapi() -> Response:
        return jsonify(build_openapi(registry.snapshot()))

    @app.get("/metrics")
    def prometheus() -> Response:
        text = metrics.render(registry.snapshot())
        return Response(text, content_type="text/plain; version=0.0.4; charset=utf-8")

    return app


# -------------------------------------------------------------------- request parsing helpers


def _header_timeout(raw: str | None, settings: Settings) -> float:
    """The call's deadline: the configured predict timeout, lowered by an `X-Timeout-Seconds` header."""
    if not raw:
        return settings.predict_timeout
    try:
        value = float(raw)
    except ValueError:
        raise BadInput(
            f"X-Timeout-Seconds must be a number, got {raw!r}", {"header": "X-Timeout-Seconds"}
        ) from None
    if not value > 0:
        raise BadInput("X-Timeout-Seconds must be positive", {"header": "X-Timeout-Seconds"})
    return min(value, settings.predict_timeout)


_PREDICT_PATH = re.compile(r"^/models/([^/]+)/methods/([^/]+)$|^/model/methods/([^/]+)$")
_REASONS = {s.value: f"{s.value} {s.phrase}" for s in HTTPStatus}


class PredictPath:
    """WSGI middleware answering `POST /models/{name}/methods/{method}` and `POST /model/methods/{method}`
    directly (everything else goes to the Flask app)."""

    def __init__(self, app: Any, settings: Settings, dataplane: Any, metrics: Metrics) -> None:
        self.app = app
        self.settings = settings
        self.dataplane = dataplane
        self.metrics = metrics

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("REQUEST_METHOD") == "POST":
            match = _PREDICT_PATH.match(environ.get("PATH_INFO") or "")
            if match is not None:
                name, method = (match.group(1), match.group(2)) if match.group(2) else (None, match.group(3))
                status, headers, body = self.handle(environ, name, method)
                start_response(_REASONS.get(status, str(status)), headers)
                return [body]
        return self.app(environ, start_response)

    def flask_view(self, name: str | None, method: str) -> Response:
        status, headers, body = self.handle(request.environ, name, method)
        return Response(body, status=status, headers=headers)

    def handle(
        self, environ: dict[str, Any], name: str | None, method: str
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        started = time.perf_counter()
        # Metric labels only ever name served models and methods: names taken from the URL of a request
        # that found nothing would let any client grow /metrics without bound.
        label, method_label, status = "-", "-", 500
        try:
            payload = self._read_body(environ)
            # media negotiation (Content-Type, Accept with q-values) is the data plane's, shared with gRPC
            result = self.dataplane.predict(
                name,
                method,
                payload,
                environ.get("CONTENT_TYPE") or MEDIA_JSON,
                environ.get("HTTP_ACCEPT"),
                timeout=_header_timeout(environ.get("HTTP_X_TIMEOUT_SECONDS"), self.settings),
            )
            label, method_label, status = result.model, method, 200
            return (
                200,
                [
                    ("Content-Type", result.content_type),
                    ("Content-Length", str(len(result.body))),
                    ("X-Model-Name", result.model),
                    ("X-Model-Version", str(result.version)),
                ],
                result.body,
            )
        except ModelRunnerError as err:
            if "version" in err.detail and err.kind not in (Kind.NOT_FOUND, Kind.METHOD_NOT_FOUND):
                label, method_label = str(err.detail.get("model") or name or "-"), method
            answer = self._error(err, name)
            status = answer[0]
            return answer
        except Exception as err:
            log.exception("predict %s/%s failed unexpectedly", name, method)
            return self._error(
                ModelRunnerError(
                    f"internal error: {type(err).__name__}: {err}", {"type": type(err).__name__}
                ),
                name,
            )
        finally:
            self.metrics.observe_request(label, method_label, status, time.perf_counter() - started)

    def _read_body(self, environ: dict[str, Any]) -> bytes:
        limit = min(self.settings.max_message_bytes, self.settings.max_body_bytes)
        raw_length = environ.get("CONTENT_LENGTH")
        stream = environ["wsgi.input"]
        if raw_length:
            try:
                length = int(raw_length)
            except ValueError:
                raise BadInput(f"Content-Length {raw_length!r} is not a number", {}) from None
            if length < 0:
                raise BadInput(f"Content-Length {raw_length!r} is negative", {})
            if length > limit:
                raise TooLarge(
                    f"message of {length} bytes exceeds the limit of {limit} bytes", {"limit": limit}
                )
            return stream.read(length) if length else b""
        data = stream.read(limit + 1)  # chunked or unknown length
        if len(data) > limit:
            raise TooLarge(f"message exceeds the limit of {limit} bytes", {"limit": limit})
        return data

    @staticmethod
    def _error(err: ModelRunnerError, name: str | None) -> tuple[int, list[tuple[str, str]], bytes]:
        status = status_for(err.kind)
        body = json.dumps(err.to_dict(), default=str).encode()
        detail = err.detail if isinstance(err.detail, dict) else {}
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("X-Model-Name", str(detail.get("model") or name or "")),
        ]
        if detail.get("version") is not None:
            headers.append(("X-Model-Version", str(detail["version"])))
        return status, headers, body


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _proto_text_from_request() -> str:
    """The .proto of a proto-only swap: a multipart `proto` part, or the raw body."""
    if request.mimetype == "multipart/form-data":
        part = request.files.get("proto")
        if part is None:
            raise BadInput("multipart upload without a 'proto' part", {"parts": sorted(request.files)})
        data = part.read()
    else:
        data = request.get_data()
    if not data.strip():
        raise BadInput("empty .proto", {})
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BadInput(f"the .proto is not UTF-8 text (byte {err.start})", {"offset": err.start}) from None


def _bundle_source(name: str | None, repository: Any) -> tuple[Any, str]:
    """What Admin.upload takes, from the request: zip bytes, or UploadParts from multipart parts.

    Multipart `model` (JAR) with optional `proto`, `metadata`, `lib` parts: parts not sent are taken from
    the model's current version (so Acumos' `PUT /model` with only a JAR replaces just the JAR).
    """
    if request.mimetype == "multipart/form-data":
        files = request.files
        if "bundle" in files:
            data = files["bundle"].read()
            return data, name or _name_from_zip(data)
        if "model" not in files:
            raise BadInput(
                "multipart upload needs a 'bundle' part (zip) or a 'model' part (JAR)",
                {"parts": sorted(files), "hint": "curl -F bundle=@model.zip or -F model=@model.jar"},
            )
        from runner.serving.admin import UploadParts

        metadata: dict[str, Any] | None = None
        if "metadata" in files:
            try:
                metadata = json.loads(files["metadata"].read())
            except ValueError as err:
                raise BadInput(f"the 'metadata' part is not JSON: {err}", {"part": "metadata"}) from None
            except RecursionError:
                raise BadInput("the 'metadata' part is nested too deeply", {"part": "metadata"}) from None
            if not isinstance(metadata, dict):
                raise BadInput("the 'metadata' part must be a JSON object", {"part": "metadata"})
        proto: str | None = None
        if "proto" in files:
            try:
                proto = files["proto"].read().decode("utf-8")
            except UnicodeDecodeError as err:
                raise BadInput(
                    f"the 'proto' part is not UTF-8 text (byte {err.start})", {"part": "proto"}
                ) from None
        libs_parts = files.getlist("lib")
        libs = None
        if libs_parts:
            libs = {
                Path(part.filename or f"lib{i}.jar").name or f"lib{i}.jar": part.read()
                for i, part in enumerate(libs_parts)
            }
        if name is None:
            name = str((metadata or {}).get("name") or "")
            if not name:
                raise BadInput(
                    "no model name: use PUT /models/{name}, ?name=, or a 'metadata' part with a name", {}
                )
        return UploadParts(jar=files["model"].read(), proto=proto, metadata=metadata, libs=libs), name
    if request.mimetype in ZIP_MEDIA or not request.mimetype:
        data = request.get_data()
        if not data:
            raise BadInput("empty upload: send a bundle zip as the body, or multipart parts", {})
        return data, name or _name_from_zip(data)
    raise UnsupportedMedia(
        f"cannot upload a bundle as {request.content_type!r}",
        {"supported": [*ZIP_MEDIA, "multipart/form-data"]},
    )


def _name_from_zip(data: bytes) -> str:
    import io
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for entry in zf.namelist():
                if entry.rstrip("/").split("/")[-1] == "metadata.json" and entry.count("/") <= 1:
                    if zf.getinfo(entry).file_size > 1024 * 1024:  # the bundle's own limit: no zip bomb here
                        break
                    meta = json.loads(zf.read(entry))
                    if isinstance(meta, dict) and meta.get("name"):
                        return str(meta["name"])
    except (zipfile.BadZipFile, ValueError, KeyError):
        pass
    raise BadInput("no model name: use PUT /models/{name} or ?name=", {})


# -------------------------------------------------------------------- OpenAPI


def build_openapi(snapshot: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI 3 document with one path per live model method, JSON schemas from the contracts."""
    paths: dict[str, Any] = {}
    error_schema = {"$ref": "#/components/schemas/Error"}
    for name, loaded in sorted(snapshot.items()):
        contract = loaded.contract
        for method in contract.method_names():
            in_schema = _schema(contract, contract.input_class(method))
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


def _schema(contract: Any, cls: Any) -> dict[str, Any]:
    try:
        return contract.json_schema(cls)
    except Exception as err:  # noqa: BLE001 - one broken schema must not take the document down
        return {"description": f"schema unavailable: {err}"}


AppFactory = Callable[[Settings, Any, Any], Flask]

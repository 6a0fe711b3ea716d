"""The HTTP transport: a Flask app built by a factory. Routes are fixed; models are looked up per request.

The app translates HTTP to core calls (DataPlane for predictions, Admin for swaps, Repository for
listings) and core errors back to HTTP through the one table in runner.http.errors. The routes live in
one module per concern (predict, admin, read, health, oip); this module wires them and maps errors.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from flask import Flask, Response, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from runner.errors import BadInput, ModelRunnerError, NotFound, TooLarge, UnsupportedMedia
from runner.http.access import RequestIds
from runner.http.acumos import AcumosRoutes
from runner.http.admin import AdminRoutes
from runner.http.auth import AdminAuth, load_admin_token
from runner.http.errors import error_response, new_request_id
from runner.http.health import HealthRoutes
from runner.http.oip import OipRoutes
from runner.http.predict import PredictPath
from runner.http.prefix import PathPrefix
from runner.http.read import ReadRoutes
from runner.serving.access import AccessLog
from runner.serving.admin import Admin
from runner.serving.dataplane import DataPlane
from runner.serving.registry import Registry
from runner.settings import Settings
from runner.store import Repository

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

log = logging.getLogger(__name__)

#: The core error a werkzeug HTTP error (routing, body limit, bad request) is answered as.
_WERKZEUG_KIND: dict[int, type[ModelRunnerError]] = {
    400: BadInput,
    404: NotFound,
    405: NotFound,
    413: TooLarge,
    415: UnsupportedMedia,
}


class _InsertionOrderJSON(DefaultJSONProvider):
    sort_keys = False  # answers keep the order the core built them in


def create_app(
    settings: Settings,
    registry: Registry,
    repository: Repository,
    *,
    admin: Admin | None = None,
    dataplane: DataPlane | None = None,
) -> Flask:
    """The Flask app serving `registry` (this process's live models) and administering `repository`.

    `admin` and `dataplane` default to runner.serving.admin.Admin / runner.serving.dataplane.DataPlane
    over the same objects.
    """
    if dataplane is None:
        dataplane = DataPlane(
            registry,
            max_json_depth=settings.max_json_depth,
            predict_timeout=settings.predict_timeout,
            batching=settings.batching,
        )
    if admin is None:
        # settings: bundle limits, keep_versions cleanup and the JVM options validation starts with
        admin = Admin(repository, swap_timeout=settings.swap_timeout, settings=settings)

    app = Flask("model-runner")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json = _InsertionOrderJSON(app)
    app.extensions["model_runner"] = {
        "settings": settings,
        "registry": registry,
        "repository": repository,
        "admin": admin,
        "dataplane": dataplane,
    }
    _add_error_handlers(app, settings)

    # The predict path skips Flask (routing, Request/Response objects): it is the hot path. Its Flask
    # routes only exist so that other verbs on a predict path answer 405 like every other endpoint.
    fast = PredictPath(app.wsgi_app, settings, dataplane)
    # in front of everything: the request id (given or generated, echoed) and the access log line
    # path_prefix (Acumos' context root): every route also answers under it
    routed: WSGIApplication = PathPrefix(fast, settings.path_prefix) if settings.path_prefix else fast
    app.wsgi_app = RequestIds(routed, AccessLog(settings.access_log, "http"))  # type: ignore[method-assign]  # WSGI middleware, as Flask documents it
    app.register_blueprint(fast.blueprint())
    app.register_blueprint(ReadRoutes(registry, repository).blueprint())
    auth = AdminAuth(load_admin_token(settings))
    app.register_blueprint(AdminRoutes(admin, repository, auth).blueprint())
    # the Open Inference Protocol (KServe V2) over the same models and data plane
    app.register_blueprint(OipRoutes(registry, dataplane, settings.predict_timeout).blueprint())
    app.register_blueprint(HealthRoutes(registry).blueprint())
    # the Acumos generic runner's CSV/JSON utility routes (/getBinary*, /transform*)
    app.register_blueprint(AcumosRoutes(dataplane, settings).blueprint())
    return app


def _add_error_handlers(app: Flask, settings: Settings) -> None:
    """Every error answers ``{"error": {"kind", "message", "detail"}}`` with the status of its kind."""

    traces = settings.error_traces

    def core_error(err: ModelRunnerError) -> Response:
        return error_response(err, traces=traces)

    def http_error(err: HTTPException) -> Response:
        code = err.code or 500
        cls = _WERKZEUG_KIND.get(code)
        allowed = sorted(getattr(err, "valid_methods", None) or [])
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
                {"path": request.path, "allowed": allowed},
            )
        elif cls is not None:
            core = cls(err.description or err.name, {})
        else:
            response = jsonify(
                {"error": {"kind": "internal", "message": err.description or err.name, "detail": {}}}
            )
            response.status_code = code
            return response
        response = error_response(core, traces=traces)
        if code == 405:
            # the path exists for other verbs: keep HTTP's own status and say which verbs
            response.status_code = 405
            response.headers["Allow"] = ", ".join(allowed)
        return response

    def unexpected(err: Exception) -> Response:
        # what it says (paths, values) stays in the server log, under the request id the answer gives
        request_id = new_request_id()
        log.exception("request %s: unexpected error on %s %s", request_id, request.method, request.path)
        core = ModelRunnerError(
            f"internal error ({type(err).__name__}); the server log has it under request id {request_id}",
            {"type": type(err).__name__, "request_id": request_id},
        )
        return error_response(core, traces=traces)

    app.register_error_handler(ModelRunnerError, core_error)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected)

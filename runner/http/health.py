"""The service's own routes: liveness, readiness, the OpenAPI document and the Prometheus metrics."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from runner.http.openapi import build_openapi
from runner.serving import metrics
from runner.serving.registry import Registry


class HealthRoutes:
    """`/healthz`, `/readyz`, `/openapi.json` of this serving process, and `/metrics`: every serving
    process's (runner.serving.metrics)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def blueprint(self) -> Blueprint:
        routes = Blueprint("health", __name__)
        routes.add_url_rule("/healthz", view_func=self.healthz, methods=["GET"])
        routes.add_url_rule("/readyz", view_func=self.readyz, methods=["GET"])
        routes.add_url_rule("/openapi.json", view_func=self.openapi, methods=["GET"])
        routes.add_url_rule("/metrics", view_func=self.prometheus, methods=["GET"])
        return routes

    def healthz(self) -> Response:
        return jsonify({"status": "alive"})

    def readyz(self) -> Response:
        snapshot = self.registry.snapshot()
        ready = bool(self.registry.ready())
        body = {
            "ready": ready,
            "models": {name: lv.version for name, lv in snapshot.items()},
            "errors": self.registry.load_errors(),
        }
        response = jsonify(body)
        response.status_code = 200 if ready else 503
        return response

    def openapi(self) -> Response:
        return jsonify(build_openapi(self.registry.snapshot()))

    def prometheus(self) -> Response:
        body, media_type = metrics.render(self.registry.process_kind)
        return Response(body, content_type=media_type)

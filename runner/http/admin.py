"""Admin routes: uploads, proto swaps, rollback and delete (and Acumos' `PUT /model`, `PUT /proto`,
`PUT /model/configuration`). An upload whose content is the current version's answers `"unchanged": true`.

Each checks the bearer token first, then the If-Match precondition, then hands the request to
runner.serving.admin.Admin, which answers once the swap is served.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify, request

from runner.http import uploads
from runner.http.auth import AdminAuth
from runner.http.lookup import single_model
from runner.http.wire import if_match_version, json_answer, query_flag, query_int
from runner.serving import metrics
from runner.serving.admin import Admin, UploadParts
from runner.store import Repository

log = logging.getLogger(__name__)


class AdminRoutes:
    """The routes that change what is served, each counted as a swap in the metrics."""

    def __init__(self, admin: Admin, repository: Repository, auth: AdminAuth) -> None:
        self.admin = admin
        self.repository = repository
        self.auth = auth

    def blueprint(self) -> Blueprint:
        routes = Blueprint("admin", __name__)
        routes.add_url_rule("/models/<name>", view_func=self.put_model, methods=["PUT"])
        routes.add_url_rule("/model", view_func=self.acumos_put_model, methods=["PUT"])
        routes.add_url_rule("/model/configuration", view_func=self.acumos_put_configuration, methods=["PUT"])
        routes.add_url_rule("/models/<name>/proto", view_func=self.put_proto, methods=["PUT"])
        routes.add_url_rule("/proto", view_func=self.acumos_put_proto, methods=["PUT"])
        routes.add_url_rule("/models/<name>/rollback", view_func=self.rollback, methods=["POST"])
        routes.add_url_rule("/models/<name>", view_func=self.delete, methods=["DELETE"])
        return routes

    # ---------------------------------------------------------------- uploads

    def put_model(self, name: str) -> Response:
        return self.upload(name)

    def acumos_put_model(self) -> Response:
        self.auth.require(request)  # first: an unauthenticated caller learns nothing of the models
        names = self.repository.models()
        name = request.args.get("name") or (names[0] if len(names) == 1 else None)
        if name is None and len(names) > 1:
            single_model(self.repository)  # raises the explanatory error
        return self.upload(name)

    def acumos_put_configuration(self) -> Response:
        """Acumos' `PUT /model/configuration`: a new version with another modelConfig.properties."""
        self.auth.require(request)  # first: an unauthenticated caller learns nothing of the models
        name = single_model(self.repository)
        return self.upload(name, uploads.config_parts(request))

    def upload(self, name: str | None, parts: UploadParts | None = None) -> Response:
        caller = self.auth.require(request)
        expected = if_match_version(request)
        source: bytes | UploadParts
        if parts is None or name is None:
            source, name = uploads.bundle_source(request, name)
        else:
            source = parts
        # the URL's name decides where the bundle goes; a metadata.json naming another model is said
        warning = uploads.name_warning(name, uploads.declared_name(source))
        result = self.admin.upload(
            name,
            source,
            expected_version=expected,
            caller=caller,
            allow_breaking=query_flag(request, "allow_breaking"),
        )
        if not result.get("unchanged"):
            metrics.admin_change(name, "upload")
        if warning is not None:
            log.warning("upload of %s by %s: %s", name, caller, warning)
            result = {**result, "warnings": [*result.get("warnings", []), warning]}
        return json_answer(result)

    # ---------------------------------------------------------------- proto swaps

    def put_proto(self, name: str) -> Response:
        return self.replace_proto(name)

    def acumos_put_proto(self) -> Response:
        self.auth.require(request)  # first: an unauthenticated caller learns nothing of the models
        return self.replace_proto(single_model(self.repository))

    def replace_proto(self, name: str) -> Response:
        caller = self.auth.require(request)
        expected = if_match_version(request)
        proto_text = uploads.proto_text(request)
        result = self.admin.replace_proto(
            name,
            proto_text,
            allow_breaking=query_flag(request, "allow_breaking"),
            expected_version=expected,
            caller=caller,
        )
        if not result.get("unchanged"):
            metrics.admin_change(name, "proto")
        return json_answer(result)

    # ---------------------------------------------------------------- rollback, delete

    def rollback(self, name: str) -> Response:
        caller = self.auth.require(request)
        result = self.admin.rollback(
            name,
            version=query_int(request, "version"),
            expected_version=if_match_version(request),
            caller=caller,
        )
        metrics.admin_change(name, "rollback")
        return json_answer(result)

    def delete(self, name: str) -> Response:
        caller = self.auth.require(request)
        result = self.admin.delete(name, caller=caller, expected_version=if_match_version(request))
        metrics.admin_change(name, "delete")
        return jsonify(result)

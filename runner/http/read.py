"""Read-only model routes: listings, versions, history, and the current version's artifacts (the
`/models/...` paths and Acumos' `/model/artifacts/...`)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from runner.bundle import ACUMOS_DIR, METADATA_FILE, read_metadata_dict, read_proto
from runner.errors import InvalidBundle, NotFound
from runner.http.lookup import current_or_404, single_model
from runner.http.wire import json_answer
from runner.serving.registry import Registry
from runner.store import Repository


class ReadRoutes:
    """What the repository holds for each model, and what this process's registry serves of it."""

    def __init__(self, registry: Registry, repository: Repository) -> None:
        self.registry = registry
        self.repository = repository

    def blueprint(self) -> Blueprint:
        routes = Blueprint("read", __name__)
        routes.add_url_rule("/models", view_func=self.list_models, methods=["GET"])
        routes.add_url_rule("/models/<name>", view_func=self.get_model, methods=["GET"])
        routes.add_url_rule("/models/<name>/versions", view_func=self.get_versions, methods=["GET"])
        routes.add_url_rule("/models/<name>/history", view_func=self.get_history, methods=["GET"])
        routes.add_url_rule("/models/<name>/proto", view_func=self.get_proto, methods=["GET"])
        routes.add_url_rule("/models/<name>/metadata", view_func=self.get_metadata, methods=["GET"])
        routes.add_url_rule("/model/artifacts/protobuf", view_func=self.acumos_proto, methods=["GET"])
        routes.add_url_rule("/model/artifacts/metadata", view_func=self.acumos_metadata, methods=["GET"])
        return routes

    # ---------------------------------------------------------------- listings

    def list_models(self) -> Response:
        out = []
        for name in self.repository.models():
            try:
                out.append(self.describe(name))
            except NotFound:
                continue  # deleted meanwhile
        return jsonify({"models": out})

    def get_model(self, name: str) -> Response:
        info = self.describe(name)
        info["versions"] = self.repository.versions(name)
        info["served_by"] = {
            pid: rec.get("models", {}).get(name)
            for pid, rec in self.repository.fleet.live_processes().items()
        }
        return json_answer(info)

    def get_versions(self, name: str) -> Response:
        current = current_or_404(self.repository, name)
        return json_answer({"name": name, "version": current, "versions": self.repository.versions(name)})

    def get_history(self, name: str) -> Response:
        history = self.repository.history(name)
        if not history and self.repository.current_version(name) is None:
            raise NotFound(f"no model named {name!r}", {"model": name})
        return jsonify({"name": name, "history": history})

    def describe(self, name: str) -> dict[str, Any]:
        """A model's current version in the repository, and what this process serves of it."""
        current = current_or_404(self.repository, name)
        info: dict[str, Any] = {"name": name, "version": current}
        metadata = self._metadata(name, current)
        info["runtime"] = metadata.get("runtime")
        info["entry_point"] = metadata.get("entry_point")
        info["description"] = metadata.get("description", "")
        loaded = self.registry.snapshot().get(name)
        if loaded is not None:
            info["loaded_version"] = loaded.version
            info["service"] = loaded.contract.full_service_name
            info["methods"] = loaded.contract.method_names()
        errors = self.registry.load_errors()
        if name in errors:
            info["load_error"] = errors[name]
        return info

    # ---------------------------------------------------------------- artifacts of the current version

    def get_proto(self, name: str) -> Response:
        return self.proto_of(name)

    def get_metadata(self, name: str) -> Response:
        return self.metadata_of(name)

    def acumos_proto(self) -> Response:
        return self.proto_of(single_model(self.repository))

    def acumos_metadata(self) -> Response:
        name = single_model(self.repository)
        current = current_or_404(self.repository, name)
        # an Acumos Python dump: its own metadata.json, as acumos-model-runner serves it
        dumped = self.repository.version_dir(name, current) / ACUMOS_DIR / METADATA_FILE
        if not dumped.is_file():
            return self.metadata_of(name)
        response = Response(dumped.read_bytes(), content_type="application/json")
        response.headers["X-Model-Name"] = name
        response.headers["X-Model-Version"] = str(current)
        return response

    def proto_of(self, name: str) -> Response:
        current = current_or_404(self.repository, name)
        text = read_proto(self.repository.version_dir(name, current))
        response = Response(text, content_type="text/plain; charset=utf-8")
        response.headers["X-Model-Name"] = name
        response.headers["X-Model-Version"] = str(current)
        return response

    def metadata_of(self, name: str) -> Response:
        current = current_or_404(self.repository, name)
        response = jsonify(self._metadata(name, current))
        response.headers["X-Model-Name"] = name
        response.headers["X-Model-Version"] = str(current)
        return response

    def _metadata(self, name: str, version: int) -> dict[str, Any]:
        """The metadata of a stored version as it was stored (every key kept); {} when unreadable."""
        try:
            return read_metadata_dict(self.repository.version_dir(name, version))
        except (InvalidBundle, OSError):
            return {}

"""The predict hot path: `POST /models/{name}/methods/{method}` and `POST /model/methods/{method}`.

It skips Flask (routing, Request/Response objects): a WSGI middleware in front of the app answers these
two paths from the WSGI environ, through the data plane, and counts every answer in the metrics.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING

from flask import Blueprint, Response, request

from runner.bundle import NAME_RE
from runner.contract import MEDIA_JSON, MEDIA_PROTOBUF, is_protobuf, normalize_media
from runner.errors import BadInput, ModelRunnerError, TooLarge
from runner.http.errors import error_json, new_request_id
from runner.serving import metrics
from runner.serving.dataplane import DataPlane
from runner.settings import Settings

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

_PREDICT_PATH = re.compile(r"^/models/([^/]+)/methods/([^/]+)$|^/model/methods/([^/]+)$")
_REASONS = {s.value: f"{s.value} {s.phrase}" for s in HTTPStatus}

Answer = tuple[int, list[tuple[str, str]], bytes]


def header_timeout(raw: str | None) -> float | None:
    """The client's deadline from an `X-Timeout-Seconds` header (None: none sent); the data plane bounds
    it with the service's and the bundle's (runner.runtimes.deadline, the one rule)."""
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise BadInput(
            f"X-Timeout-Seconds must be a number, got {raw!r}", {"header": "X-Timeout-Seconds"}
        ) from None
    if not value > 0:
        raise BadInput("X-Timeout-Seconds must be positive", {"header": "X-Timeout-Seconds"})
    return value


MEDIA_OCTET = "application/octet-stream"


def acumos_media(
    body: bytes, content_type: str | None, accept: str | None
) -> tuple[str, str | None, str | None]:
    """The `acumos_compat` reading of a single-model predict: (the request's media, the Accept the data
    plane answers by, the Content-Type the answer is labelled with instead of the data plane's, or None).

    The Acumos generic runner parses every body as protobuf whatever its Content-Type and answers
    protobuf (`application/octet-stream`); its Python runner honours the protobuf and JSON types. So a
    declared protobuf type is honoured, a body starting with '{' is JSON (no protobuf message starts
    with that byte: a group start, which proto3 never writes), anything else is protobuf.
    """
    accepted = [normalize_media(part) for part in (accept or "").split(",") if part.strip()]
    octet = MEDIA_OCTET in accepted
    if is_protobuf(content_type) or body[:1] == b"{":
        media = content_type if content_type and is_protobuf(content_type) else MEDIA_JSON
        return (media, MEDIA_PROTOBUF[0], MEDIA_OCTET) if octet else (media, accept, None)
    if any(is_protobuf(a) for a in accepted):
        return MEDIA_PROTOBUF[0], accept, None
    return MEDIA_PROTOBUF[0], MEDIA_PROTOBUF[0], MEDIA_OCTET


class PredictPath:
    """WSGI middleware answering `POST /models/{name}/methods/{method}` and `POST /model/methods/{method}`
    directly (everything else goes to the Flask app)."""

    def __init__(self, app: WSGIApplication, settings: Settings, dataplane: DataPlane) -> None:
        self.app = app
        self.settings = settings
        self.dataplane = dataplane

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "POST":
            match = _PREDICT_PATH.match(environ.get("PATH_INFO") or "")
            if match is not None:
                named, method, single = match.groups()
                name = named if method else None
                if not method:
                    method = single
                try:
                    # an ASCII segment (most are) reads the same in latin-1 and UTF-8: nothing to decode
                    if name is not None and not name.isascii():
                        name = _utf8(name)
                    if not method.isascii():
                        method = _utf8(method) or ""
                except BadInput as err:
                    status, headers, body = self._error(err)
                    metrics.refused("http", err)
                else:
                    status, headers, body = self.handle(environ, name, method)
                start_response(_REASONS.get(status) or str(status), headers)
                return [body]
        return self.app(environ, start_response)

    def blueprint(self) -> Blueprint:
        """The same paths as Flask routes: they only exist so that other verbs on a predict path answer
        405 like every other endpoint."""
        routes = Blueprint("predict", __name__)
        routes.add_url_rule("/models/<name>/methods/<method>", "named", self.flask_view, methods=["POST"])
        routes.add_url_rule("/model/methods/<method>", "single", self.flask_view, methods=["POST"])
        return routes

    def flask_view(self, method: str, name: str | None = None) -> Response:
        """The answer of a predict path reached through Flask (``name`` None: the single-model path)."""
        status, headers, body = self.handle(request.environ, name, method)
        return Response(body, status=status, headers=headers)

    def handle(self, environ: WSGIEnvironment, name: str | None, method: str) -> Answer:
        try:
            # counted once, refusals of the body or headers included; labels only from the version the
            # data plane holds (runner.serving.metrics): URL names that found nothing never become labels
            with metrics.track("http"):
                payload = self._read_body(environ)
                content_type, accept = environ.get("CONTENT_TYPE") or MEDIA_JSON, environ.get("HTTP_ACCEPT")
                label = None
                raw_timeout = environ.get("HTTP_X_TIMEOUT_SECONDS")
                if name is None and self.settings.acumos_compat:
                    content_type, accept, label = acumos_media(payload, environ.get("CONTENT_TYPE"), accept)
                # media negotiation (Content-Type, Accept with q-values) is the data plane's, shared with gRPC
                result = self.dataplane.predict(
                    name,
                    method,
                    payload,
                    content_type,
                    accept,
                    timeout=header_timeout(raw_timeout) if raw_timeout else None,
                )
            return (
                200,
                [
                    ("Content-Type", label or result.content_type),
                    ("Content-Length", str(len(result.body))),
                    ("X-Model-Name", result.model),
                    ("X-Model-Version", str(result.version)),
                ],
                result.body,
            )
        except ModelRunnerError as err:
            return self._error(err)
        except Exception as err:
            # what it says (paths, values) stays in the server log, under the request id the answer gives
            request_id = new_request_id()
            log.exception("request %s: predict %r/%r failed unexpectedly", request_id, name, method)
            return self._error(
                ModelRunnerError(
                    f"internal error ({type(err).__name__}); the server log has it under request id {request_id}",
                    {"type": type(err).__name__, "request_id": request_id},
                )
            )

    def _read_body(self, environ: WSGIEnvironment) -> bytes:
        limit = min(self.settings.max_message_bytes, self.settings.max_body_bytes)
        raw_length = environ.get("CONTENT_LENGTH")
        stream = environ["wsgi.input"]
        data: bytes
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
            data = stream.read(length) if length else b""
            return data
        data = stream.read(limit + 1)  # chunked or unknown length
        if len(data) > limit:
            raise TooLarge(f"message exceeds the limit of {limit} bytes", {"limit": limit})
        return data

    def _error(self, err: ModelRunnerError) -> Answer:
        """The JSON error answer (bounded: runner.http.errors). X-Model-Name and X-Model-Version name the
        version that handled the request, when one did: never a name as the URL gave it (a header cannot
        carry every text, and it would not be true)."""
        status, headers, body = error_json(err, traces=self.settings.error_traces)
        detail = err.detail if isinstance(err.detail, dict) else {}
        model, version = detail.get("model"), detail.get("version")
        if isinstance(model, str) and NAME_RE.fullmatch(model) and isinstance(version, int):
            headers += [("X-Model-Name", model), ("X-Model-Version", str(version))]
        return status, headers, body


def _utf8(segment: str | None) -> str | None:
    """A path segment as the client wrote it: WSGI gives the URL's bytes as latin-1 characters."""
    if segment is None:
        return None
    try:
        return segment.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise BadInput(
            "the URL is not UTF-8 (percent-encode names as UTF-8)",
            {"segment": segment.encode("latin-1").decode("utf-8", "replace")},
        ) from None

"""The one table mapping core error kinds to HTTP statuses, and the JSON error answer every route gives.

Error answers are bounded and say nothing of the server's insides: the message is at most
``MAX_MESSAGE_CHARS``, each text in the detail at most ``MAX_TEXT_CHARS``, and stack traces (a model's
Python traceback or Java stack, which name the server's paths) are left out unless the ``error_traces``
setting sends them. What is left out is logged, with the whole error, under a request id that the answer
carries (``detail.request_id`` and the ``X-Request-Id`` header); every 5xx answer has one.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from flask import Response

from runner.errors import Kind, ModelRunnerError

log = logging.getLogger(__name__)

#: The only place an HTTP status is chosen for a core error.
HTTP_STATUS: dict[Kind, int] = {
    Kind.BAD_INPUT: 400,
    Kind.AMBIGUOUS: 400,
    Kind.UNAUTHENTICATED: 401,
    Kind.FORBIDDEN: 403,
    Kind.NOT_FOUND: 404,
    Kind.METHOD_NOT_FOUND: 404,
    Kind.CONFLICT: 409,
    Kind.PRECONDITION_FAILED: 412,
    Kind.TOO_LARGE: 413,
    Kind.UNSUPPORTED_MEDIA: 415,
    Kind.INVALID_BUNDLE: 422,
    Kind.INVALID_CONTRACT: 422,
    Kind.MODEL_ERROR: 500,
    Kind.INTERNAL: 500,
    Kind.NOT_READY: 503,
    Kind.DEADLINE: 504,
    Kind.SWAP_TIMEOUT: 504,
}

MAX_MESSAGE_CHARS = 1024
"""Longest error message sent (the whole one is logged)."""
MAX_TEXT_CHARS = 1024
"""Longest text in an error's detail (e.g. a model's exception message)."""
MAX_DETAIL_CHARS = 16 * 1024
"""Longest detail, as JSON: past it, its largest values are replaced by a note."""
TRACE_KEYS = ("traceback", "java_stack", "stack")
"""Detail keys holding stack traces: sent only when the error_traces setting is on."""
REQUEST_ID_HEADER = "X-Request-Id"


def status_for(kind: Kind) -> int:
    """HTTP status of an error kind (500 for a kind this table does not know yet)."""
    return HTTP_STATUS.get(kind, 500)


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


def _clip(text: str, limit: int) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    return f"{text[:limit]}... ({len(text) - limit} more characters in the server log)", True


def _bounded(value: Any, depth: int = 0) -> tuple[Any, bool]:
    """``value`` with every text clipped to MAX_TEXT_CHARS; whether anything was clipped."""
    if isinstance(value, str):
        return _clip(value, MAX_TEXT_CHARS)
    if depth > 8:
        return "(nested too deeply to show)", True
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        cut = False
        for k, v in value.items():
            out[str(k)], c = _bounded(v, depth + 1)
            cut |= c
        return out, cut
    if isinstance(value, (list, tuple)):
        items = [_bounded(v, depth + 1) for v in value]
        return [v for v, _ in items], any(c for _, c in items)
    if value is None or isinstance(value, (bool, int, float)):
        return value, False
    return _clip(str(value), MAX_TEXT_CHARS)


def public_error(err: ModelRunnerError, *, traces: bool = False) -> tuple[dict[str, Any], str | None]:
    """The body of the answer to ``err`` (``{"error": {"kind", "message", "detail"}}``, bounded, traces
    only when ``traces``) and its request id: set, and the whole error logged under it, when the status
    is 5xx or anything was left out."""
    status = status_for(err.kind)
    detail = dict(err.detail) if isinstance(err.detail, dict) else {}
    request_id = detail.get("request_id") if isinstance(detail.get("request_id"), str) else None
    left_out = False
    if not traces:
        for key in TRACE_KEYS:
            if detail.pop(key, None) is not None:
                left_out = True
    message, cut = _clip(str(err.message), MAX_MESSAGE_CHARS)
    detail, cut_detail = _bounded(detail)
    left_out |= cut | cut_detail
    if len(json.dumps(detail, default=str)) > MAX_DETAIL_CHARS:
        for key, value in sorted(detail.items(), key=lambda kv: -len(json.dumps(kv[1], default=str))):
            if len(json.dumps(detail, default=str)) <= MAX_DETAIL_CHARS:
                break
            size = len(json.dumps(value, default=str))
            detail[key] = f"({size} characters, in the server log)"
        left_out = True
    if request_id is None and (status >= 500 or left_out):
        request_id = new_request_id()
        whole = err.detail if isinstance(err.detail, dict) else {}
        log.log(
            logging.ERROR if err.kind is Kind.INTERNAL else logging.WARNING,
            "request %s answered %d %s: %s\ndetail: %s",
            request_id,
            status,
            err.kind.value,
            err.message,
            json.dumps(whole, default=str, indent=1)[:200_000],
        )
    if request_id is not None:
        detail["request_id"] = request_id
    return {"error": {"kind": err.kind.value, "message": message, "detail": detail}}, request_id


def error_json(err: ModelRunnerError, *, traces: bool = False) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers (Content-Type, Content-Length, X-Request-Id when there is one) and JSON body."""
    doc, request_id = public_error(err, traces=traces)
    body = json.dumps(doc, default=str).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    if request_id is not None:
        headers.append((REQUEST_ID_HEADER, request_id))
    if err.kind is Kind.UNAUTHENTICATED:
        headers.append(("WWW-Authenticate", 'Bearer realm="model-runner admin"'))
    return status_for(err.kind), headers, body


def error_response(err: ModelRunnerError, *, traces: bool = False) -> Response:
    """``{"error": {"kind", "message", "detail"}}`` with the status of the error's kind (see the module
    docstring for what it leaves out)."""
    status, headers, body = error_json(err, traces=traces)
    response = Response(body, status=status, mimetype="application/json")
    for name, value in headers:
        if name not in ("Content-Type", "Content-Length"):
            response.headers[name] = value
    return response

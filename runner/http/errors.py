"""The one table mapping core error kinds to HTTP statuses, and the JSON error response."""

from __future__ import annotations

from flask import Response, jsonify

from runner.errors import Kind, ModelRunnerError

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


def status_for(kind: Kind) -> int:
    """HTTP status of an error kind (500 for a kind this table does not know yet)."""
    return HTTP_STATUS.get(kind, 500)


def error_response(err: ModelRunnerError) -> Response:
    """``{"error": {"kind", "message", "detail"}}`` with the status of the error's kind."""
    response = jsonify(err.to_dict())
    response.status_code = status_for(err.kind)
    if err.kind is Kind.UNAUTHENTICATED:
        response.headers["WWW-Authenticate"] = 'Bearer realm="model-runner admin"'
    return response

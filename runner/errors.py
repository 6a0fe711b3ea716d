"""The one error hierarchy of the core.

Every failure the service reports is a :class:`ModelRunnerError` with a neutral :class:`Kind`.
Each transport maps kinds to its own status codes in exactly one table (runner/http, runner/grpc);
nothing else in the core knows about HTTP statuses or gRPC codes.
"""

from __future__ import annotations

import enum
import random
import sys
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any

if sys.version_info >= (3, 11):  # noqa: UP036 (the child process of a model may run 3.9)
    _StrEnum = enum.StrEnum
else:  # a model's own environment may run an older Python (runner.runtimes.environments)

    class _StrEnum(str, enum.Enum):  # noqa: UP042 (enum.StrEnum is 3.11+)
        def __str__(self) -> str:
            return str(self.value)


class Kind(_StrEnum):
    BAD_INPUT = "bad_input"
    NOT_FOUND = "not_found"
    METHOD_NOT_FOUND = "method_not_found"
    AMBIGUOUS = "ambiguous"
    UNSUPPORTED_MEDIA = "unsupported_media"
    INVALID_BUNDLE = "invalid_bundle"
    INVALID_CONTRACT = "invalid_contract"
    CONFLICT = "conflict"
    PRECONDITION_FAILED = "precondition_failed"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    TOO_LARGE = "too_large"
    MODEL_ERROR = "model_error"
    DEADLINE = "deadline"
    NOT_READY = "not_ready"
    SWAP_TIMEOUT = "swap_timeout"
    INTERNAL = "internal"


class ModelRunnerError(Exception):
    """Base of every error the service reports; ``detail`` is JSON-serialisable."""

    kind: Kind = Kind.INTERNAL

    def __init__(self, message: str, detail: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.detail: dict[str, Any] = detail or {}

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"kind": self.kind.value, "message": self.message, "detail": self.detail}}


class BadInput(ModelRunnerError):
    kind = Kind.BAD_INPUT


class NotFound(ModelRunnerError):
    kind = Kind.NOT_FOUND


class MethodNotFound(NotFound):
    """An unknown method of a known model (gRPC maps it to UNIMPLEMENTED)."""

    kind = Kind.METHOD_NOT_FOUND


class AmbiguousModel(ModelRunnerError):
    """Several models serve the called method and the caller did not name one (detail: candidates)."""

    kind = Kind.AMBIGUOUS


class UnsupportedMedia(ModelRunnerError):
    kind = Kind.UNSUPPORTED_MEDIA


class InvalidBundle(ModelRunnerError):
    kind = Kind.INVALID_BUNDLE


class InvalidContract(ModelRunnerError):
    kind = Kind.INVALID_CONTRACT


class Conflict(ModelRunnerError):
    """E.g. a breaking contract change without the explicit flag."""

    kind = Kind.CONFLICT


class PreconditionFailed(ModelRunnerError):
    """Optimistic concurrency: the current version is not the one the caller expected."""

    kind = Kind.PRECONDITION_FAILED


class Unauthenticated(ModelRunnerError):
    kind = Kind.UNAUTHENTICATED


class Forbidden(ModelRunnerError):
    kind = Kind.FORBIDDEN


class TooLarge(ModelRunnerError):
    kind = Kind.TOO_LARGE


class ModelError(ModelRunnerError):
    """The model itself raised; detail carries its exception class, message and stack."""

    kind = Kind.MODEL_ERROR


class DeadlineExceeded(ModelRunnerError):
    kind = Kind.DEADLINE


class NotReady(ModelRunnerError):
    kind = Kind.NOT_READY


class SwapTimeout(ModelRunnerError):
    """A swap was published but not every live serving process reported it in time."""

    kind = Kind.SWAP_TIMEOUT


# ------------------------------------------------------------------------------------------ request ids
# The id of the request being served, set by the edge that received it (HTTP `X-Request-Id`, gRPC
# metadata `x-request-id`, else generated) for the whole call: a failure is logged under it wherever it
# is logged (the Java runtime, the edges' error answers), and the answer and the access log line carry it.

_request_id: ContextVar[str | None] = ContextVar("model_runner_request_id", default=None)


def new_request_id() -> str:
    """A fresh request id: 16 hex digits. From ``random`` (reseeded in each forked child; no system
    call, unlike uuid4: an id is made for every request), not meant to be unguessable."""
    return random.getrandbits(64).to_bytes(8, "big").hex()  # as f"{n:016x}", in half the time


def current_request_id() -> str | None:
    """The id of the request this thread serves (None outside a request)."""
    return _request_id.get()


def request_id() -> str:
    """The id to log a failure under: the current request's, else a fresh one."""
    return _request_id.get() or new_request_id()


# The ContextVar's own methods, not functions calling them: the edges call these on every request,
# and a Python frame costs more than the work.
enter_request: Callable[[str], Token[str | None]] = _request_id.set
"""Make a request id the current request's id until :func:`leave_request` with the token returned."""
leave_request: Callable[[Token[str | None]], None] = _request_id.reset

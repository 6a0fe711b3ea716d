"""Request ids and the access log of the gRPC edge: a server interceptor around every unary call.

Each call gets an id: the client's metadata ``x-request-id`` when it is acceptable
(runner.serving.access.accepted_id), else a generated one. The id is the current request's
(runner.errors.current_request_id) while the call is answered, so a failure is logged under it, and the
answer carries it back in its trailing metadata ``x-request-id``, errors included. Once answered, the
call gets one access log line (runner.serving.access): ``gRPC /package.Service/Method``, the model and
version that answered, the status code's name, the duration, the request id. Streaming calls (health
Watch, reflection) pass through untouched.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import grpc

from runner.errors import enter_request, leave_request, new_request_id
from runner.grpc.oip import SERVICE as OIP_SERVICE
from runner.serving.access import AccessLog, accepted_id, begin_access, end_access

REQUEST_ID_KEY = "x-request-id"
_CACHE_LIMIT = 4096  # method paths come from clients: bound the cache of wrapped handlers
_OIP_PREFIX = f"/{OIP_SERVICE}/"


class AccessInterceptor(grpc.ServerInterceptor):
    """Request id in and out, and the access line, for every unary-unary call of the server."""

    def __init__(self, access_log: AccessLog) -> None:
        self.access_log = access_log
        self._wrapped: dict[str, tuple[Any, Any]] = {}  # path -> (inner handler, wrapped handler)
        self._lock = threading.Lock()

    def intercept_service(self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        path = details.method
        cached = self._wrapped.get(path)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = grpc.unary_unary_rpc_method_handler(
            self._wrap(handler.unary_unary, path),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        with self._lock:
            if len(self._wrapped) < _CACHE_LIMIT:
                self._wrapped[path] = (handler, wrapped)
        return wrapped

    def _wrap(self, behavior: Callable[[Any, Any], Any], path: str) -> Callable[[Any, Any], Any]:
        access_log = self.access_log
        protocol = "oip-grpc" if path.startswith(_OIP_PREFIX) else "grpc"

        def call(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            given = None
            for key, value in context.invocation_metadata():
                if key == REQUEST_ID_KEY:
                    given = value
                    break
            request_id = accepted_id(given) or new_request_id()
            token = enter_request(request_id)
            access, access_token = begin_access()
            failed = True
            try:
                response = behavior(request, context)
                failed = False
                return response
            finally:
                end_access(access_token)
                leave_request(token)
                _add_trailing(context, request_id)
                if access_log.enabled:
                    code = context.code()  # type: ignore[attr-defined]  # grpcio has it; the stubs lack it
                    if code is None:
                        code = grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK
                    access_log.write(
                        protocol,
                        "gRPC",
                        path,
                        access.model,
                        access.version,
                        code.name if isinstance(code, grpc.StatusCode) else str(code),
                        time.perf_counter() - started,
                        request_id,
                    )

        return call


def _add_trailing(context: grpc.ServicerContext, request_id: str) -> None:
    """The request id in the call's trailing metadata, beside what the handler set there (an error's)."""
    trailing = tuple(
        (key, value) for key, value in (context.trailing_metadata() or ()) if key != REQUEST_ID_KEY
    )
    context.set_trailing_metadata((*trailing, (REQUEST_ID_KEY, request_id)))

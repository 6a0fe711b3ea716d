"""The gRPC transport: each model's own contract served as written, the Open Inference Protocol's
``inference.GRPCInferenceService`` (runner.grpc.oip), reflection and health, on one port.

One generic handler answers every ``/{package}.{Service}/{Method}`` that no registered service does:
it hands the service, the method, the ``x-model-name`` metadata, the call's deadline and the request
bytes untouched (no (de)serializers: the model gets binary protobuf) to the data plane
(runner.serving.dataplane), which routes the call over the registry's current contracts (a swap
changes what is served without a restart; gRPC cannot add handlers after start), holds the chosen
version for the whole call, checks the rpc's required fields and applies the one deadline rule.
Core errors map to status codes in ``STATUS_BY_KIND``, the one table.

Choosing a model: request metadata ``x-model-name`` picks one; otherwise a method served by exactly
one loaded model goes to it, and several candidates answer FAILED_PRECONDITION naming them.
Answers carry ``x-model-name`` and ``x-model-version`` in their initial metadata; errors carry
``x-error-kind`` (the core kind) in their trailing metadata, and ``x-error-detail`` (the error's
detail as JSON, without what the initial metadata said).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health_pb2_grpc

from runner.contract import MEDIA_PROTOBUF
from runner.errors import Kind, ModelRunnerError
from runner.errors import request_id as current_or_new_request_id
from runner.grpc.access import AccessInterceptor
from runner.grpc.health import HealthSync
from runner.grpc.oip import OipService
from runner.grpc.reflection import LiveReflection, add_reflection
from runner.serving.access import AccessLog
from runner.serving.dataplane import DataPlane
from runner.serving.registry import LoadedVersion, Registry
from runner.settings import Settings

log = logging.getLogger(__name__)

MODEL_HEADER = "x-model-name"
VERSION_HEADER = "x-model-version"
ERROR_KIND_HEADER = "x-error-kind"
ERROR_DETAIL_HEADER = "x-error-detail"

# The one table: core error kind -> gRPC status code (docs/api.md lists it beside the HTTP statuses).
STATUS_BY_KIND: dict[Kind, grpc.StatusCode] = {
    Kind.BAD_INPUT: grpc.StatusCode.INVALID_ARGUMENT,
    Kind.AMBIGUOUS: grpc.StatusCode.FAILED_PRECONDITION,
    Kind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Kind.METHOD_NOT_FOUND: grpc.StatusCode.UNIMPLEMENTED,
    Kind.UNSUPPORTED_MEDIA: grpc.StatusCode.INVALID_ARGUMENT,
    Kind.INVALID_BUNDLE: grpc.StatusCode.FAILED_PRECONDITION,
    Kind.INVALID_CONTRACT: grpc.StatusCode.FAILED_PRECONDITION,
    Kind.CONFLICT: grpc.StatusCode.ABORTED,
    Kind.PRECONDITION_FAILED: grpc.StatusCode.ABORTED,
    Kind.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    Kind.FORBIDDEN: grpc.StatusCode.PERMISSION_DENIED,
    Kind.TOO_LARGE: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Kind.MODEL_ERROR: grpc.StatusCode.INTERNAL,
    Kind.DEADLINE: grpc.StatusCode.DEADLINE_EXCEEDED,
    Kind.NOT_READY: grpc.StatusCode.UNAVAILABLE,
    Kind.SWAP_TIMEOUT: grpc.StatusCode.UNAVAILABLE,
    Kind.INTERNAL: grpc.StatusCode.INTERNAL,
}

DEFAULT_THREADS = 4
"""Threads handling calls per server process. Measured on 2 cores: the gRPC machinery costs ~120-170 us
of CPU per call, and more threads mostly add GIL hand-offs (2 threads: ~120 us/call; 16: ~165 us).
Java calls release the GIL, so a few threads already overlap Java work with gRPC work; more
processes (SO_REUSEPORT) add parallelism without contention. Fewer threads means a few calls stuck
in a slow model (until their deadlines) hold up the others sooner: raise it for slow models."""

_MAX_DETAIL_CHARS = 2000  # metadata must stay well under the client's header size limit
_MAX_MESSAGE_CHARS = 1024  # the status message a caller gets (the whole one is logged)
_BULKY_DETAIL = ("traceback", "java_stack", "stack")
REQUEST_ID_HEADER = "x-request-id"


def status_for(error: BaseException) -> grpc.StatusCode:
    """The status code a failure is answered with."""
    if isinstance(error, ModelRunnerError):
        return STATUS_BY_KIND.get(error.kind, grpc.StatusCode.INTERNAL)
    return grpc.StatusCode.INTERNAL


def _error_message(error: BaseException) -> str:
    if not isinstance(error, ModelRunnerError):
        return f"internal error: {type(error).__name__}: {error}"
    message = error.message
    if error.kind is Kind.MODEL_ERROR:
        # Name the model's own exception class if the message does not already.
        cls = next(
            (
                error.detail[k]
                for k in ("exception_class", "java_class", "python_class", "class")
                if isinstance(error.detail.get(k), str)
            ),
            None,
        )
        if cls and cls not in message:
            emsg = error.detail.get("exception_message") or error.detail.get("java_message")
            message = f"{message} ({cls}: {emsg})" if emsg else f"{message} ({cls})"
    return message


class _ModelHandler(grpc.GenericRpcHandler):
    """Routes every call not answered by a registered service to the current model contracts."""

    def __init__(self, dataplane: DataPlane):
        self.dataplane = dataplane
        self._handlers: dict[str, grpc.RpcMethodHandler[bytes, bytes]] = {}
        self._lock = threading.Lock()

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[bytes, bytes] | None:
        path = handler_call_details.method
        handler = self._handlers.get(path)
        if handler is not None:
            return handler
        service, method = _split_path(path)
        handler = grpc.unary_unary_rpc_method_handler(self._make_call(service, method))
        with self._lock:
            if len(self._handlers) < 4096:  # paths come from clients: bound the cache
                self._handlers[path] = handler
        return handler

    def _make_call(self, service: str, method: str) -> Callable[[bytes, grpc.ServicerContext], bytes]:
        def call(request: bytes, context: grpc.ServicerContext) -> bytes:
            return self._call(service, method, request, context)

        return call

    # --- the call: translated to the data plane and back ---

    def _call(self, service: str, method: str, request: bytes, context: grpc.ServicerContext) -> bytes:
        hint = None
        for key, value in context.invocation_metadata():
            if key == MODEL_HEADER:
                hint = value if isinstance(value, str) else value.decode()
                break

        answered: dict[str, Any] = {}

        def started(lv: LoadedVersion, _rpc: str) -> None:
            answered["model"] = lv.name
            answered["version"] = version = lv.version
            context.send_initial_metadata(((MODEL_HEADER, lv.name), (VERSION_HEADER, str(version))))

        try:
            result = self.dataplane.predict(
                hint,
                method,
                request,
                MEDIA_PROTOBUF[0],
                timeout=context.time_remaining(),
                service=service,
                protocol="grpc",
                started=started,
            )
            return result.body
        except Exception as exc:  # every failure leaves through the one table
            self._abort(context, exc, answered)
            raise  # abort raises; keeps type checkers happy

    @staticmethod
    def _abort(
        context: grpc.ServicerContext, exc: Exception, answered: Mapping[str, Any] | None = None
    ) -> None:
        """Answer ``exc`` with its status, message and trailing metadata; ``answered``: the model and
        version the initial metadata named (the detail does not repeat them)."""
        code = status_for(exc)
        kind = exc.kind.value if isinstance(exc, ModelRunnerError) else Kind.INTERNAL.value
        trailing = [(ERROR_KIND_HEADER, kind)]
        message = _error_message(exc)
        bulky = isinstance(exc, ModelRunnerError) and any(k in exc.detail for k in _BULKY_DETAIL)
        if code is grpc.StatusCode.INTERNAL or bulky or len(message) > _MAX_MESSAGE_CHARS:
            # stack traces, long messages and what went wrong inside stay in the server log, under an id
            request_id = current_or_new_request_id()  # the call's own (runner.grpc.access)
            trailing.append((REQUEST_ID_HEADER, request_id))
            if isinstance(exc, ModelRunnerError):
                log.log(
                    logging.ERROR
                    if code is grpc.StatusCode.INTERNAL and kind != Kind.MODEL_ERROR
                    else logging.WARNING,
                    "gRPC request %s failed (%s): %s\ndetail: %s",
                    request_id,
                    kind,
                    exc.message,
                    json.dumps(exc.detail, default=str, indent=1)[:200_000],
                )
            else:
                log.error("gRPC request %s failed", request_id, exc_info=exc)
                message = (
                    f"internal error ({type(exc).__name__}); "
                    f"the server log has it under request id {request_id}"
                )
        if len(message) > _MAX_MESSAGE_CHARS:
            more = len(message) - _MAX_MESSAGE_CHARS
            message = f"{message[:_MAX_MESSAGE_CHARS]}... ({more} more characters in the server log)"
        if isinstance(exc, ModelRunnerError) and exc.detail:
            # Stack traces stay in the server log: metadata must stay small.
            small = {
                k: v
                for k, v in exc.detail.items()
                if k not in _BULKY_DETAIL and not (answered and k in answered and answered[k] == v)
            }
            try:
                detail = json.dumps(small, default=str)  # ASCII only (ensure_ascii)
            except (TypeError, ValueError):
                detail = ""
            if detail and len(detail) <= _MAX_DETAIL_CHARS:
                trailing.append((ERROR_DETAIL_HEADER, detail))
        context.set_trailing_metadata(tuple(trailing))
        context.abort(code, message)


def _split_path(path: str) -> tuple[str, str]:
    # "/pkg.Service/Method" -> ("pkg.Service", "Method"); anything else matches no service.
    _, _, rest = path.partition("/")
    service, _, method = rest.partition("/")
    return service, method


MAX_CONNECTION_AGE = 10.0
"""Seconds a client connection lives before the server asks the client to reconnect (grpc adds up to 10%
jitter); a stopping or retiring process waits at most that long for its clients to move
(runner.grpc.__main__)."""


class CallActivity(grpc.ServerInterceptor):
    """How many unary calls are being answered and when a call last came or went: a stopping process
    that lets its connections age out stops waiting once they are quiet (runner.grpc.__main__)."""

    def __init__(self) -> None:
        self._in_flight = 0
        self._last = time.monotonic()  # the last call's arrival or end
        self._lock = threading.Lock()
        self._wrapped: dict[str, tuple[Any, Any]] = {}  # path -> (inner handler, wrapped handler)

    def quiet_for(self) -> float:
        """Seconds since a call last arrived or ended; 0 while one is being answered."""
        with self._lock:
            return 0.0 if self._in_flight else time.monotonic() - self._last

    def intercept_service(self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails) -> Any:
        self._last = time.monotonic()  # streaming calls (health Watch, reflection) count as arrivals only
        handler = continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        cached = self._wrapped.get(details.method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = grpc.unary_unary_rpc_method_handler(
            self._counted(handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        with self._lock:
            if len(self._wrapped) < 4096:  # paths come from clients: bound the cache
                self._wrapped[details.method] = (handler, wrapped)
        return wrapped

    def _counted(self, behavior: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def call(request: Any, context: grpc.ServicerContext) -> Any:
            with self._lock:
                self._in_flight += 1
            try:
                return behavior(request, context)
            finally:
                with self._lock:
                    self._in_flight -= 1
                    self._last = time.monotonic()

        return call


class ModelServer:
    """A ``grpc.Server`` plus the health sync thread; stops both together.

    Everything not defined here is delegated to the underlying ``grpc.Server``.
    """

    def __init__(
        self,
        server: grpc.Server,
        health_sync: HealthSync,
        reflection: LiveReflection,
        activity: CallActivity | None = None,
    ):
        self.grpc_server = server
        self.health = health_sync
        self.reflection = reflection
        self.activity = activity or CallActivity()
        self.port = 0  # the port bound (create_server)

    def stop_listening(self) -> int:
        """Take this process's listening socket out of the port (the processes sharing it by SO_REUSEPORT
        get every new connection) while the connections it has keep being served: a retiring process
        lets them age out (MAX_CONNECTION_AGE: a graceful GOAWAY each, the client reconnects elsewhere)
        before it stops, since a stopping gRPC server cancels calls still arriving on them. grpc has no
        call for it: the socket is found among this process's descriptors and shut down (the kernel
        removes it from the port's group; grpc logs that it closes its acceptor). The sockets shut down."""
        done = 0
        for fd in os.listdir("/proc/self/fd"):
            try:
                if not os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                    continue
                sock = socket.socket(fileno=os.dup(int(fd)))
            except (OSError, ValueError):
                continue
            try:
                listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
                if listening and sock.type == socket.SOCK_STREAM and sock.getsockname()[1] == self.port:
                    sock.shutdown(socket.SHUT_RDWR)
                    done += 1
            except OSError:
                pass  # not a TCP socket, or one already shut down (a duplicate descriptor)
            finally:
                sock.close()
        return done

    def start(self) -> None:
        self.grpc_server.start()
        self.health.start()

    def stop(self, grace: float | None) -> threading.Event:
        """Report NOT_SERVING, then stop the server after ``grace`` seconds of draining."""
        self.health.stop()
        return self.grpc_server.stop(grace)

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        return self.grpc_server.wait_for_termination(timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.grpc_server, name)


def create_server(
    settings: Settings,
    registry: Registry,
    *,
    port: int | None = None,
    reuse_port: bool = False,
    max_workers: int = DEFAULT_THREADS,
) -> tuple[ModelServer, int]:
    """Build (not start) the gRPC server for ``registry`` and bind it.

    ``port`` defaults to ``settings.grpc_port`` (0 picks a free one); ``reuse_port`` lets several
    processes share the port (SO_REUSEPORT). Returns the server and the bound port.
    """
    options = [
        ("grpc.so_reuseport", 1 if reuse_port else 0),
        # connections are renewed (graceful GOAWAY: calls in flight finish, nothing fails), which spreads
        # clients over the processes sharing the port and lets a retiring process shed its clients
        ("grpc.max_connection_age_ms", int(MAX_CONNECTION_AGE * 1000)),
        ("grpc.max_connection_age_grace_ms", int((settings.predict_timeout + 5) * 1000)),
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
    ]
    activity = CallActivity()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        options=options,
        # every call: its request id (x-request-id in and out) and its access log line; then counted
        interceptors=[AccessInterceptor(AccessLog(settings.access_log, "grpc")), activity],
    )
    dataplane = DataPlane(
        registry,
        max_json_depth=settings.max_json_depth,
        predict_timeout=settings.predict_timeout,
        batching=settings.batching,
    )
    health_sync = HealthSync(registry, interval=max(settings.poll_interval, 0.05))
    health_pb2_grpc.add_HealthServicer_to_server(health_sync.servicer, server)
    oip_service = OipService(dataplane, _ModelHandler._abort)
    reflection = LiveReflection(registry.snapshot, services=[oip_service.contract.file_descriptor_set])
    add_reflection(server, reflection)
    server.add_generic_rpc_handlers((oip_service.handler(),))
    # Last: it answers every path, including unknown ones (with a helpful UNIMPLEMENTED).
    server.add_generic_rpc_handlers((_ModelHandler(dataplane),))
    bind_port = settings.grpc_port if port is None else port
    bound = server.add_insecure_port(f"{settings.http_host}:{bind_port}")
    if bound == 0:
        raise RuntimeError(f"cannot bind gRPC to {settings.http_host}:{bind_port}")
    model_server = ModelServer(server, health_sync, reflection, activity)
    model_server.port = bound
    return model_server, bound

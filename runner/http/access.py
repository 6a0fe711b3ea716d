"""Request ids and the access log of the HTTP edge: a WSGI middleware in front of every route.

Each request gets an id: the client's ``X-Request-Id`` when it is acceptable (:func:`accepted_id`: at
most 64 characters of letters, digits and ``-_.:``), else a generated one (16 hex digits). The id is
the current request's (runner.errors.current_request_id) while the request is answered, so a failure is
logged under it wherever it is logged, and every answer carries it back in ``X-Request-Id``.

Once answered, the request gets one access log line (runner.serving.access, on standard error):
method, path, model and version (of the served model that answered, if any), status, duration in
milliseconds, request id; text or JSON by the ``access_log`` setting.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from runner.errors import enter_request, leave_request, new_request_id
from runner.serving.access import AccessLog, accepted_id, begin_access, end_access

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

REQUEST_ID_HEADER = "X-Request-Id"


class RequestIds:
    """WSGI middleware: the request id (given or generated, echoed) and the access log line. The answer
    gets exactly one ``X-Request-Id``, this one (runner.http.errors adds none while a request id is
    current); the model and version of the line are the ones the data plane held (none for the other
    routes)."""

    def __init__(self, app: WSGIApplication, access_log: AccessLog) -> None:
        self.app = app
        self.access_log = access_log

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        given = environ.get("HTTP_X_REQUEST_ID")
        request_id = (given if given is not None and accepted_id(given) else None) or new_request_id()
        token = enter_request(request_id)
        access, access_token = begin_access()
        answered = ["500"]

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answered[0] = status
            headers.append((REQUEST_ID_HEADER, request_id))
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, start)
        finally:
            end_access(access_token)
            leave_request(token)
            access_log = self.access_log
            if access_log.enabled:
                path = environ.get("PATH_INFO") or ""
                if not path.isascii():
                    path = _display(path)
                code = answered[0][:3]
                access_log.write(
                    "oip-http" if path.startswith("/v2") and (len(path) == 3 or path[3] == "/") else "http",
                    environ.get("REQUEST_METHOD") or "",
                    path,
                    access.model,
                    access.version,
                    int(code) if code.isdigit() else 500,
                    time.perf_counter() - started,
                    request_id,
                )


def _display(path: str) -> str:
    """A WSGI path (the URL's bytes as latin-1 characters) as the UTF-8 text the client wrote."""
    try:
        return path.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return path.encode("latin-1", "replace").decode("utf-8", "replace")

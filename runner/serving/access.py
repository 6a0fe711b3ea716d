"""The access log, one line per request, written the same way by every edge (HTTP, gRPC).

A line says: protocol, method, path, model and version (the served model version that answered, when
one did: filled by the data plane through :func:`current_access`), status, duration in milliseconds and
request id. ``text`` (the default)::

    2026-12-01T12:00:00.123Z http[4101] access: POST /models/iris/methods/Classify 200 1.52ms model=iris version=3 request_id=9f1c2d3e4b5a6978 protocol=http

``json``: one object a line, ``{"time", "pid", "process", "protocol", "method", "path", "model",
"version", "status", "duration_ms", "request_id"}``. The lines go to the serving process's standard
error as they are (no logging prefix: a JSON line stays JSON), one write each.

Request ids the clients give (HTTP ``X-Request-Id``, gRPC metadata ``x-request-id``) are kept when
:func:`accepted_id` accepts them (1 to 64 characters of letters, digits and ``-_.:``): anything else is
replaced by a generated one, so an id never breaks a log line or a header.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from contextvars import ContextVar, Token
from typing import Final, TextIO
from urllib.parse import quote

FORMATS: Final = ("text", "json", "off")
MAX_ID_CHARS: Final = 64
_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def accepted_id(given: str | bytes | None) -> str | None:
    """``given`` when it is an acceptable request id, else None."""
    if given is None:
        return None
    if isinstance(given, bytes):
        try:
            given = given.decode("ascii")
        except UnicodeDecodeError:
            return None
    return given if _ID.fullmatch(given) else None


# ------------------------------------------------------------------------------ the access record


class Access:
    """The served model version that answered the request being served (filled by the data plane)."""

    __slots__ = ("model", "version")

    def __init__(self) -> None:
        self.model: str | None = None
        self.version: int | None = None


_access: ContextVar[Access | None] = ContextVar("model_runner_access", default=None)


def begin_access() -> tuple[Access, Token[Access | None]]:
    """Start the access record of a request (an edge, before the data plane); end it with the token."""
    access = Access()
    return access, _access.set(access)


def current_access() -> Access | None:
    """The access record of the request being served (None outside one)."""
    return _access.get()


def end_access(token: Token[Access | None]) -> None:
    _access.reset(token)


# ------------------------------------------------------------------------------------- the lines


class AccessLog:
    """Writes the access lines of one serving process (``process``: its kind, http or grpc) to
    ``stream`` (default: standard error), one ``write`` a line (lines of several processes sharing the
    stream do not mix)."""

    def __init__(self, fmt: str, process: str, stream: TextIO | None = None) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"access log format {fmt!r}: use one of {', '.join(FORMATS)}")
        self.format = fmt
        self.process = process
        self.enabled = fmt != "off"
        self.stream = stream
        self._pid = os.getpid()
        self._second = -1
        self._stamp = ""

    def _time(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:  # strftime once a second
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((now - second) * 1000):03d}Z"

    def write(
        self,
        *,
        protocol: str,
        method: str,
        path: str,
        model: str | None,
        version: str | int | None,
        status: int | str,
        seconds: float,
        request_id: str,
    ) -> None:
        """Write one line (nothing when the format is ``off``); never raises."""
        if not self.enabled:
            return
        stamp = self._time()
        ms = round(seconds * 1000, 2)
        if self.format == "json":
            line = json.dumps(
                {
                    "time": stamp,
                    "pid": self._pid,
                    "process": self.process,
                    "protocol": protocol,
                    "method": method,
                    "path": path,
                    "model": model,
                    "version": int(version) if isinstance(version, str) and version.isdigit() else version,
                    "status": status,
                    "duration_ms": ms,
                    "request_id": request_id,
                },
                ensure_ascii=False,
            )
        else:
            line = (
                f"{stamp} {self.process}[{self._pid}] access: {method} {path if _PLAIN.fullmatch(path) else quote(path, safe=_SAFE)} "
                f"{status} {ms}ms model={model or '-'} version={version if version is not None else '-'} "
                f"request_id={request_id} protocol={protocol}"
            )
        stream = self.stream or sys.stderr
        try:
            stream.write(line + "\n")
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stream must not fail the request
            pass


_SAFE = "/:@!$&'()*+,;=-._~"
_PLAIN = re.compile(r"[A-Za-z0-9/:@!$&'()*+,;=._~-]*")  # what quote() would leave as it is

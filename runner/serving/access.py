"""The access log, one line per request, written the same way by every edge (HTTP, gRPC).

A line says: protocol, method, path, model and version (the served model version that answered, when
one did: filled by the data plane through :func:`current_access`), status, duration in milliseconds and
request id. ``text`` (the default)::

    2026-12-01T12:00:00.123Z http[4101] access: POST /models/iris/methods/Classify 200 1.52ms model=iris version=3 request_id=9f1c2d3e4b5a6978 protocol=http

``json``: one object a line, ``{"time", "pid", "process", "protocol", "method", "path", "model",
"version", "status", "duration_ms", "request_id"}``. The lines go to the serving process's standard
error as they are (no logging prefix: a JSON line stays JSON), within 0.1 s under load, 1 s when
idle (:class:`AccessLog`).

Request ids the clients give (HTTP ``X-Request-Id``, gRPC metadata ``x-request-id``) are kept when
:func:`accepted_id` accepts them (1 to 64 characters of letters, digits and ``-_.:``): anything else is
replaced by a generated one, so an id never breaks a log line or a header.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
import weakref
from collections.abc import Callable
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


# The ContextVar's own methods, not functions calling them: called on every request, where a Python
# frame costs more than the work.
current_access: Callable[[], Access | None] = _access.get
"""The access record of the request being served (None outside one)."""
end_access: Callable[[Token[Access | None]], None] = _access.reset
"""End the access record :func:`begin_access` started (with its token)."""


# ------------------------------------------------------------------------------------- the lines


class AccessLog:
    """The access lines of one serving process (``process``: its kind, http or grpc), written to
    ``stream`` (default: standard error). :meth:`write` keeps the line's fields (the hot path); what
    was kept is formatted and written at most every FLUSH_INTERVAL, by the request that finds the last
    write that old (no thread of its own: one more thread waking up would take the GIL from the
    requests), by :func:`flush_all` (the registry's heartbeat every second, a stopping process, tests),
    in writes of whole lines of at most PIPE_BUF bytes (lines of several processes sharing a pipe never
    mix). A process killed outright loses its lines since its last write at most."""

    def __init__(self, fmt: str, process: str, stream: TextIO | None = None) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"access log format {fmt!r}: use one of {', '.join(FORMATS)}")
        self.format = fmt
        self.process = process
        self.enabled = fmt != "off"
        self.stream = stream
        self._lock = threading.Lock()
        self._pending: list[
            tuple[float, str, str, str, str | None, str | int | None, int | str, float, str]
        ] = []
        self._write_lock = threading.Lock()
        self._due = 0.0  # time.time() of the next write by a request
        self._second = -1
        self._stamp = ""
        self._parts: dict[tuple[object, ...], tuple[str, str, str]] = {}
        if self.enabled:
            _logs.add(self)

    def write(
        self,
        protocol: str,
        method: str,
        path: str,
        model: str | None,
        version: str | int | None,
        status: int | str,
        seconds: float,
        request_id: str,
    ) -> None:
        """Keep one line (nothing when the format is ``off``); written within FLUSH_INTERVAL."""
        if not self.enabled:
            return
        now = time.time()
        with self._lock:
            self._pending.append((now, protocol, method, path, model, version, status, seconds, request_id))
        if now >= self._due and self._write_lock.acquire(blocking=False):
            try:
                self._write()
            finally:
                self._write_lock.release()

    def flush(self) -> None:
        """Format and write the lines kept so far; never raises."""
        with self._write_lock:
            self._write()

    def _write(self) -> None:
        self._due = time.time() + FLUSH_INTERVAL
        with self._lock:
            pending, self._pending = self._pending, []
        if not pending:
            return
        pid = os.getpid()
        chunk: list[str] = []
        size = 0
        stream = self.stream or sys.stderr
        try:
            for fields in pending:
                line = self._format(pid, fields)
                n = len(line) if line.isascii() else len(line.encode())
                if size + n > _PIPE_BUF and chunk:
                    stream.write("".join(chunk))
                    stream.flush()
                    chunk, size = [], 0
                chunk.append(line)
                size += n
            stream.write("".join(chunk))
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stream must not fail anything
            pass

    def _format(
        self,
        pid: int,
        fields: tuple[float, str, str, str, str | None, str | int | None, int | str, float, str],
    ) -> str:
        """One line, with its newline, from what :meth:`write` kept. What lines of one route and answer
        share is made once (bounded cache): the line is the time, that, the duration and the request id
        (letters, digits and ``-_.:``: nothing to escape, in either format)."""
        now, protocol, method, path, model, version, status, seconds, request_id = fields
        key = (pid, protocol, method, path, model, version, status)
        parts = self._parts.get(key)
        if parts is None:
            if len(self._parts) >= _PARTS_CACHE:
                self._parts.clear()
            parts = self._parts[key] = self._make_parts(*key)
        head, middle, tail = parts
        # the time (strftime once a second)
        second = int(now)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        millis = int((now - second) * 1000)
        return (
            f'{head}{self._stamp}.{millis:03d}Z{middle}{seconds * 1000:.2f}{tail}{request_id}"}}\n'
            if self.format == "json"
            else f"{self._stamp}.{millis:03d}Z{middle}{seconds * 1000:.2f}{tail}{request_id}{head}\n"
        )

    def _make_parts(
        self,
        pid: int,
        protocol: str,
        method: str,
        path: str,
        model: str | None,
        version: str | int | None,
        status: int | str,
    ) -> tuple[str, str, str]:
        if self.format == "json":
            fields = {
                "pid": pid,
                "process": self.process,
                "protocol": protocol,
                "method": method,
                "path": path,
                "model": model,
                "version": int(version) if isinstance(version, str) and version.isdigit() else version,
                "status": status,
            }
            inner = json.dumps(fields, ensure_ascii=False)[1:-1]
            return '{"time": "', f'", {inner}, "duration_ms": ', ', "request_id": "'
        shown = path if _PLAIN.fullmatch(path) else quote(path, safe=_SAFE)
        return (
            f" protocol={protocol}",
            f" {self.process}[{pid}] access: {method} {shown} {status} ",
            f"ms model={model or '-'} version={version if version is not None else '-'} request_id=",
        )


_PARTS_CACHE: Final = 1024
FLUSH_INTERVAL: Final = 0.1
"""Seconds between two writes of a process's access lines while it answers requests."""
_PIPE_BUF: Final = 4096  # a write to a pipe up to this size is never interleaved with another's
_logs: weakref.WeakSet[AccessLog] = weakref.WeakSet()


def flush_all() -> None:
    """Write the access lines every access log of this process kept so far."""
    for access_log in list(_logs):
        access_log.flush()


_SAFE = "/:@!$&'()*+,;=-._~"
_PLAIN = re.compile(r"[A-Za-z0-9/:@!$&'()*+,;=._~-]*")  # what quote() would leave as it is

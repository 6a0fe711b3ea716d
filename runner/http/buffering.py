"""The HTTP worker class: gunicorn's gthread worker that receives every request whole before a thread
takes it, so slow clients cannot hold the threads that answer everyone else.

gunicorn's gthread worker gives a connection to one of its ``threads`` as soon as a byte arrives, and the
thread then reads the request line, the headers and (through the app) the body from a blocking socket.
A client sending 1 byte per second holds that thread for as long as it likes: 20 such connections tied up
2 workers x 8 threads, and normal calls timed out. A per-read socket timeout does not bound a trickle,
and a total deadline alone still lets a few slow clients take every thread for that long.

``BufferingWorker`` reads requests in the worker's event loop instead (non-blocking, every connection at
once, no thread): the request line, the headers and the body, in memory up to ``request_buffer_bytes``,
beyond that into a temporary file (up to ``max_body_bytes``). Only a complete request is handed to a
thread, which then parses and answers it without ever waiting for the client. Limits on what a client may
hold: the request line and headers must arrive within ``client_header_timeout``, the body within
``client_body_timeout`` plus one second per ``client_body_min_rate`` bytes; past either the worker
answers ``408`` (JSON error, kind ``request_timeout``) and closes the connection. Headers beyond
gunicorn's own limits answer 400, a declared body above ``max_body_bytes`` 413, without a thread either.
``Expect: 100-continue`` is answered by the event loop (and the header removed before the request
reaches gunicorn's parser, so the client never sees a second interim answer).

Connections the event loop holds count against gunicorn's ``worker_connections`` like kept-alive ones.
TLS and HTTP/2 (not configured by `serve`) are left to gthread as they are.

This relies on a few members of gunicorn's ThreadWorker (``enqueue_req``, ``murder_keepalived``, the
``poller`` and ``nr_conns``) and of its connections (``sock``, ``init()``, ``parser.unreader``);
:func:`supported` checks they exist, and `serve` falls back to the plain gthread worker if not.
"""

from __future__ import annotations

import errno
import json
import logging
import selectors
import socket
import tempfile
import time
from functools import partial
from typing import IO, Any

from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers.gthread import ThreadWorker

from runner.settings import Settings

log = logging.getLogger(__name__)

_READY = "_model_runner_ready"  # set on a connection whose request is complete: a thread may take it
RECV_BYTES = 64 * 1024
LINGER_SECONDS = 2.0  # how long a refused connection's late input is drained before it is closed
STOP_LINGER = 2.0  # a stopping worker waits this long for the first bytes of a connection it accepted
MAX_CHUNK_LINE = 4096  # a chunk-size line longer than this is malformed (gunicorn's parser says why)


def supported() -> bool:
    """Whether the installed gunicorn has what BufferingWorker builds on."""
    return all(hasattr(ThreadWorker, m) for m in ("enqueue_req", "murder_keepalived", "init_process")) and (
        hasattr(SocketUnreader, "chunk")
    )


class _Chunks:
    """Finds the end of a chunked body as its bytes arrive (only the framing: gunicorn decodes it)."""

    def __init__(self) -> None:
        self.tail = bytearray()  # bytes not scanned yet
        self.offset = 0  # body offset of tail[0]
        self.skip = 0  # chunk data (and its CRLF) still to pass over
        self.trailers = False  # the last chunk was seen: looking for the blank line ending the trailers
        self.size = 0  # decoded body bytes so far

    def feed(self, data: bytes) -> int | None:
        """Take the next body bytes; the body's length (framing included) once complete, else None.
        Raises ValueError for malformed framing."""
        self.tail += data
        while True:
            if self.skip:
                n = min(self.skip, len(self.tail))
                del self.tail[:n]
                self.offset += n
                self.skip -= n
                if self.skip:
                    return None
            if self.trailers:
                if self.tail.startswith(b"\r\n"):
                    return self.offset + 2
                end = self.tail.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.tail) > 64 * 1024:
                        raise ValueError("trailers too long")
                    return None
                return self.offset + end + 4
            line_end = self.tail.find(b"\r\n")
            if line_end < 0:
                if len(self.tail) > MAX_CHUNK_LINE:
                    raise ValueError("chunk size line too long")
                return None
            size_text = bytes(self.tail[:line_end]).split(b";", 1)[0].strip()
            if not size_text or any(c not in b"0123456789abcdefABCDEF" for c in size_text):
                raise ValueError("bad chunk size")
            size = int(size_text, 16)
            del self.tail[: line_end + 2]
            self.offset += line_end + 2
            if size == 0:
                self.trailers = True
            else:
                self.size += size
                self.skip = size + 2


class _Request:
    """One request being received by the event loop."""

    def __init__(self, conn: Any, prefix: bytes, now: float, header_timeout: float) -> None:
        self.conn = conn
        self.data = bytearray(prefix)  # received bytes not spooled (all of them until spooling starts)
        self.spool: IO[bytes] | None = None
        self.spooled = 0  # bytes in the spool (the request's first bytes)
        self.total = len(prefix)  # bytes received in all
        self.deadline = now + header_timeout
        self.head_end = -1  # offset just past the blank line that ends the headers; -1: not there yet
        self.end: int | None = None  # offset just past the request, once known
        self.chunks: _Chunks | None = None
        self.fresh = bytearray()  # body bytes the chunk scanner has not seen yet
        self.body_started = 0.0
        self.fd = conn.sock.fileno()
        self.registered = False

    @property
    def waiting_for(self) -> str:
        return "the request line and headers" if self.head_end < 0 else "the request body"


class _SpoolUnreader(SocketUnreader):  # type: ignore[misc]
    """gunicorn's socket reader, reading a spooled request first (then what followed it, then the socket)."""

    def __init__(self, sock: socket.socket, spool: IO[bytes], size: int, leftover: bytes) -> None:
        super().__init__(sock)
        self._spool: IO[bytes] | None = spool
        self._left = size
        self._leftover = leftover

    def chunk(self, size_hint: int | None = None) -> bytes:
        if self._spool is not None:
            wanted = max(self.mxchunk, min(size_hint or 0, getattr(self, "max_body_chunk", 1 << 20)))
            data = self._spool.read(min(wanted, self._left))
            self._left -= len(data)
            if self._left <= 0 or not data:
                self._spool.close()
                self._spool = None
                # handed over with the request's last bytes, like read-ahead from the socket: gunicorn
                # keeps what follows a request for the next one
                data += self._leftover
                self._leftover = b""
            if data:
                return data
        return bytes(super().chunk(size_hint))


class BufferingWorker(ThreadWorker):  # type: ignore[misc]
    """gthread, with requests received whole by the event loop (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings: Settings = self.app.settings
        self.settings = settings
        self._receiving: dict[int, _Request] = {}  # fd -> request being received
        self._closing: dict[int, tuple[Any, float]] = {}  # fd -> (connection, drain deadline)
        self._stopping_since: float | None = None  # time.monotonic() when the worker stopped serving
        cfg = self.cfg
        line = cfg.limit_request_line if cfg.limit_request_line > 0 else 8190
        fields = cfg.limit_request_fields if cfg.limit_request_fields > 0 else 100
        field = cfg.limit_request_field_size if cfg.limit_request_field_size > 0 else 8190
        # past this many bytes without the end of the headers, gunicorn's parser refuses the request
        self._max_head = line + 2 + fields * (field + 2) + 2
        self._passthrough = bool(cfg.is_ssl) or "h2" in (getattr(cfg, "http_protocols", None) or ())

    # ------------------------------------------------------------------ receiving

    def enqueue_req(self, conn: Any) -> None:
        """Every connection with a request to read comes here (new, kept alive, or with read-ahead):
        receive it in the event loop; a complete one goes to a thread."""
        if self._passthrough or getattr(conn, _READY, False):
            setattr(conn, _READY, False)
            super().enqueue_req(conn)
            return
        prefix = b""
        parser = getattr(conn, "parser", None)
        if parser is not None:  # what the previous request's reads took past its end (pipelining)
            prefix = _take_buffered(parser.unreader)
        request = _Request(conn, prefix, time.monotonic(), self.settings.client_header_timeout)
        conn.sock.setblocking(False)
        if self._advance(request) and self._receive(request):
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._readable, request))
            request.registered = True
            self._receiving[request.fd] = request

    def _readable(self, request: _Request, _sock: Any) -> None:
        self._receive(request)

    def _receive(self, request: _Request) -> bool:
        """Read what the socket has; False once the request is dispatched, refused or closed."""
        sock = request.conn.sock
        for _ in range(16):  # then let other connections have the loop
            want = RECV_BYTES
            if request.end is not None:
                want = min(want, request.end - request.total)  # never past a body of known length
                if want <= 0:
                    self._dispatch(request)
                    return False
            try:
                data = sock.recv(want)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError:
                self._close(request)
                return False
            if not data:  # the client went away before its request was complete
                self._close(request)
                return False
            self._take(request, data)
            if not self._advance(request):
                return False
        return True

    def _take(self, request: _Request, data: bytes) -> None:
        request.total += len(data)
        if request.chunks is not None:
            request.fresh += data
        if request.spool is None:
            request.data += data
        else:
            request.spool.write(data)
            request.spooled += len(data)

    def _advance(self, request: _Request) -> bool:
        """Look at what was received: False once the request has been dispatched or refused."""
        if request.head_end < 0:
            if not self._parse_head(request):
                return False
            if request.head_end < 0:
                return True
        body = request.total - request.head_end
        if request.chunks is not None:
            fresh = bytes(request.fresh)
            request.fresh.clear()
            return self._advance_chunked(request, fresh, body)
        assert request.end is not None
        if request.spool is None and request.end - request.head_end > self.settings.request_buffer_bytes:
            self._start_spool(request)
        if request.total >= request.end:
            self._dispatch(request)
            return False
        return True

    def _advance_chunked(self, request: _Request, fresh: bytes, body: int) -> bool:
        chunks = request.chunks
        assert chunks is not None
        try:
            end = chunks.feed(fresh)
        except ValueError as err:
            self._refuse(request, 400, "bad_input", f"malformed chunked body: {err}", {})
            return False
        if end is not None:
            request.end = request.head_end + end
            self._dispatch(request)
            return False
        if chunks.size > self.settings.max_body_bytes:
            self._dispatch(request)  # the app refuses it (413) from the bytes already here
            return False
        if request.spool is None and body > self.settings.request_buffer_bytes:
            self._start_spool(request)
        return True

    def _parse_head(self, request: _Request) -> bool:
        data = request.data
        while data.startswith(b"\r\n"):  # empty lines before a request line are ignored (RFC 9112 2.2)
            del data[:2]
            request.total -= 2
        end = data.find(b"\r\n\r\n")
        if end < 0:
            if len(data) > self._max_head:
                self._refuse(
                    request,
                    400,
                    "bad_input",
                    f"the request line and headers exceed {self._max_head} bytes",
                    {"limit": self._max_head},
                )
                return False
            return True
        lines = bytes(data[:end]).split(b"\r\n")
        version = lines[0].rsplit(b" ", 1)[-1]
        headers: list[tuple[bytes, bytes]] = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon:
                self._refuse(request, 400, "bad_input", "malformed request: a header line without ':'", {})
                return False
            headers.append((name.strip().lower(), value.strip()))
        lengths = {v for n, v in headers if n == b"content-length"}
        encodings = [v for n, v in headers if n == b"transfer-encoding"]
        chunked = bool(encodings) and b",".join(encodings).lower().split(b",")[-1].strip() == b"chunked"
        if encodings and (lengths or not chunked):
            # both framings (a smuggling attempt) or a coding gunicorn cannot decode: refused, as it would
            self._refuse(
                request,
                400,
                "bad_input",
                "malformed request: Transfer-Encoding must end with chunked, without Content-Length",
                {},
            )
            return False
        if len(lengths) > 1 or not all(v.isdigit() for v in lengths):
            self._refuse(request, 400, "bad_input", "malformed request: invalid Content-Length", {})
            return False
        length = int(next(iter(lengths))) if lengths else 0
        if length > self.settings.max_body_bytes:
            limit = self.settings.max_body_bytes
            self._refuse(
                request,
                413,
                "too_large",
                f"request body of {length} bytes exceeds the limit of {limit} bytes",
                {"limit": limit, "hint": "raise MODEL_RUNNER_MAX_BODY_BYTES"},
            )
            return False
        expects = [v for n, v in headers if n == b"expect" and v.lower() == b"100-continue"]
        if expects and version == b"HTTP/1.1" and (length or chunked):
            # answered here, so the client sends its body; gunicorn must not answer it a second time
            self._send(request.conn.sock, b"HTTP/1.1 100 Continue\r\n\r\n")
            kept = [
                lines[0],
                *(line for line in lines[1:] if line.partition(b":")[0].strip().lower() != b"expect"),
            ]
            head = b"\r\n".join(kept)
            del data[:end]
            data[:0] = head
            request.total -= end - len(head)
            end = len(head)
        now = time.monotonic()
        request.head_end = end + 4
        request.body_started = now
        if chunked:
            request.chunks = _Chunks()
            request.fresh = bytearray(data[request.head_end :])
        else:
            request.end = request.head_end + length
        request.deadline = self._body_deadline(request, length)
        return True

    def _body_deadline(self, request: _Request, length: int) -> float:
        s = self.settings
        return request.body_started + s.client_body_timeout + length / s.client_body_min_rate

    def _start_spool(self, request: _Request) -> None:
        spool = tempfile.TemporaryFile(prefix="model-runner-body-")
        spool.write(request.data)
        request.spooled = len(request.data)
        request.data = bytearray()
        request.spool = spool

    def _dispatch(self, request: _Request) -> None:
        """The request is complete (or gunicorn's parser will refuse it from what is here): a thread
        takes it, reading only what was received."""
        self._forget(request)
        conn = request.conn
        conn.init()  # a new connection gets its parser here (no I/O: TLS and HTTP/2 are passed through)
        if request.spool is None:
            conn.parser.unreader.unread(bytes(request.data))
        else:
            spool, leftover = request.spool, b""
            if request.end is not None and request.spooled > request.end:  # read past a chunked body
                spool.seek(request.end)
                leftover = spool.read()
                spool.truncate(request.end)
                request.spooled = request.end
            spool.flush()
            spool.seek(0)
            leftover += bytes(request.data)
            conn.parser.unreader = _SpoolUnreader(conn.sock, spool, request.spooled, leftover)
        conn.sock.setblocking(True)
        setattr(conn, _READY, True)
        conn.data_ready = True  # gthread must not wait for data: it is all here
        self.enqueue_req(conn)

    # ------------------------------------------------------------------ limits and closing

    def murder_keepalived(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.alive and self._stopping_since is None:
            self._stopping_since = now
        if not self.alive and not force:
            self._serve_arrived(now)
        if force:
            super().murder_keepalived(force)
        else:
            super().murder_keepalived()  # older gthread workers take no argument
        # A stopping worker (SIGTERM, a retirement) gives a connection that has sent nothing yet the
        # moment gunicorn gives kept-alive ones (STOP_LINGER): its request may be on its way.
        lingered = self._stopping_since is not None and now >= self._stopping_since + STOP_LINGER
        for request in list(self._receiving.values()):
            if lingered and not force and request.total == 0 and _has_input(request.conn.sock):
                self._receive(request)  # arrived while the loop was busy (e.g. a graceful close)
            elif force or (lingered and request.total == 0):
                self._close(request)
            elif now >= self._deadline(request):
                if request.total == 0:  # never sent a byte: closed, as gunicorn closes idle connections
                    self._close(request)
                    continue
                timeout = (
                    self.settings.client_header_timeout
                    if request.head_end < 0
                    else round(request.deadline - request.body_started, 1)
                )
                self._refuse(
                    request,
                    408,
                    "request_timeout",
                    f"{request.waiting_for} did not arrive within {timeout:g} s",
                    {
                        "waiting_for": "headers" if request.head_end < 0 else "body",
                        "timeout_seconds": timeout,
                        "received_bytes": request.total,
                    },
                )
        for fd, (conn, deadline) in list(self._closing.items()):
            if force or now >= deadline:
                self._finish_close(fd, conn)

    def _serve_arrived(self, now: float) -> None:
        """A stopping worker: kept-alive connections due to close that have a request waiting are
        served (answered with Connection: close) instead: closing them would lose that request."""
        keepalived = getattr(self, "keepalived_conns", None)
        if not keepalived:
            return
        for conn in list(keepalived):
            if conn.timeout is not None and conn.timeout > now:
                break  # sorted by timeout: the rest are not due yet
            if not _has_input(conn.sock):
                continue
            keepalived.remove(conn)
            try:
                self.poller.unregister(conn.sock)
            except (KeyError, ValueError, OSError):
                pass
            self.enqueue_req(conn)

    def _deadline(self, request: _Request) -> float:
        if request.chunks is not None:  # unknown length: the deadline grows with what arrived
            request.deadline = self._body_deadline(request, request.chunks.size)
        return request.deadline

    def _forget(self, request: _Request) -> None:
        """Stop watching the connection (before anything closes it: a selector must never keep a
        closed descriptor, whose number the next connection may get)."""
        if request.registered:
            request.registered = False
            self._receiving.pop(request.fd, None)
            try:
                self.poller.unregister(request.conn.sock)
            except (KeyError, ValueError, OSError):
                pass

    def _close(self, request: _Request) -> None:
        self._forget(request)
        if request.spool is not None:
            request.spool.close()
        self.nr_conns -= 1
        try:
            request.conn.close()
        except OSError:
            pass

    def _refuse(
        self, request: _Request, status: int, kind: str, message: str, detail: dict[str, Any]
    ) -> None:
        """Answer from the event loop (the JSON error of docs/api.md) and close the connection."""
        self._forget(request)
        if request.spool is not None:
            request.spool.close()
        reason = {400: "Bad Request", 408: "Request Timeout", 413: "Content Too Large"}[status]
        body = json.dumps({"error": {"kind": kind, "message": message, "detail": detail}}).encode()
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        log.info("HTTP %d to %s: %s", status, _peer(request.conn), message)
        sock = request.conn.sock
        self._send(sock, head + body)
        # Closing with unread input would reset the connection and could destroy the answer before the
        # client reads it: stop sending, drain what still comes for a moment, then close.
        try:
            sock.shutdown(socket.SHUT_WR)
            fd = sock.fileno()
            self.poller.register(sock, selectors.EVENT_READ, partial(self._drain, request.conn))
            self._closing[fd] = (request.conn, time.monotonic() + LINGER_SECONDS)
        except (OSError, ValueError, KeyError):
            self.nr_conns -= 1
            request.conn.close()

    def _drain(self, conn: Any, sock: Any) -> None:
        try:
            while sock.recv(RECV_BYTES):
                pass
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._finish_close(sock.fileno(), conn)

    def _finish_close(self, fd: int, conn: Any) -> None:
        if self._closing.pop(fd, None) is None:
            return
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        self.nr_conns -= 1
        try:
            conn.close()
        except OSError:
            pass

    @staticmethod
    def _send(sock: socket.socket, data: bytes) -> None:
        try:
            sock.send(data)  # small: fits the socket's buffer of a connection that sent us a request
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                log.debug("send failed: %s", err)


def _has_input(sock: socket.socket) -> bool:
    """Whether a client has sent something (a request, or the end of the connection) not read yet."""
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return False


def _take_buffered(unreader: Any) -> bytes:
    """The bytes gunicorn's reader holds past the previous request, taken out of it."""
    if hasattr(unreader, "take_buffered"):
        return bytes(unreader.take_buffered())
    data = bytes(unreader.buf.getvalue())
    unreader.buf = type(unreader.buf)()
    return data


def _peer(conn: Any) -> str:
    client = getattr(conn, "client", None)
    if isinstance(client, tuple) and len(client) >= 2:
        return f"{client[0]}:{client[1]}"
    return str(client or "?")

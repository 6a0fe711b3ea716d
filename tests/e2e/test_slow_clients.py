"""Slow senders cannot starve `serve`: connections trickling their headers or body at a byte at a time
hold no request thread (the worker receives requests whole in its event loop, runner.http.buffering),
normal calls made meanwhile are answered within their deadline, and each trickler is answered 408 once
its header or body timeout has passed."""

from __future__ import annotations

import json
import selectors
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from tests.e2e.serve_process import Serve, start_serve
from tests.http.conftest import write_toy_bundle
from tests.waiting import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

WORKERS, THREADS = 2, 8  # the setup: 2 workers x 8 threads, all of them tied up before
PER_KIND = 16  # tricklers of each kind: 48 slow connections in all, three times the threads
HEADER_TIMEOUT = BODY_TIMEOUT = 3.0
MIN_RATE = 10 * 1024 * 1024  # bytes/s: the declared bodies below add < 1 s to their deadline
CALL_DEADLINE = 5.0  # what a normal call may take, slow senders or not
TRICKLE_INTERVAL = 0.25  # seconds between two bytes of one trickler
MAX_BODY = 8 * 1024 * 1024


@dataclass
class Trickler:
    kind: str
    sock: socket.socket
    head: bytes  # sent at once
    started: float = 0.0
    answered: float | None = None
    answer: bytes = b""
    sent: int = 0
    timeout: float = field(default=0.0)


def _tricklers(port: int) -> list[Trickler]:
    path = "/models/toy/methods/Echo"
    heads = {
        # the request line, then the headers a byte at a time
        "headers": (f"POST {path} HTTP/1.1\r\n".encode(), HEADER_TIMEOUT),
        # whole headers, then a small body a byte at a time (the case)
        "body": (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n".encode(),
            BODY_TIMEOUT + 1000 / MIN_RATE,
        ),
        # a body above request_buffer_bytes (received into a temporary file), a byte at a time
        "large body": (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {5 * 1024 * 1024}\r\n\r\n".encode(),
            BODY_TIMEOUT + 5 * 1024 * 1024 / MIN_RATE,
        ),
    }
    out = []
    for kind, (head, timeout) in heads.items():
        for _ in range(PER_KIND):
            sock = socket.create_connection(("127.0.0.1", port))
            out.append(Trickler(kind, sock, head, timeout=timeout))
    return out


def _trickle(tricklers: list[Trickler], stop: threading.Event) -> None:
    """Send each trickler's head, then one byte every TRICKLE_INTERVAL until it is answered."""
    selector = selectors.DefaultSelector()
    for t in tricklers:
        t.sock.sendall(t.head)
        t.started = time.monotonic()
        selector.register(t.sock, selectors.EVENT_READ, t)
    next_byte = time.monotonic()
    while not stop.is_set() and any(t.answered is None for t in tricklers):
        for key, _ in selector.select(timeout=0.05):
            t = key.data
            try:
                data = t.sock.recv(65536)
            except OSError:
                data = b""
            t.answer += data
            if t.answered is None:
                t.answered = time.monotonic()
            if not data or b"\r\n\r\n" in t.answer:
                selector.unregister(t.sock)
        if time.monotonic() >= next_byte:
            next_byte += TRICKLE_INTERVAL
            for t in tricklers:
                if t.answered is None:
                    try:
                        t.sock.send(b"x")
                        t.sent += 1
                    except OSError:
                        pass
    selector.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    tmp = tmp_path_factory.mktemp("slow-clients")
    bundle = write_toy_bundle(tmp / "toy")
    served = start_serve(
        [str(bundle)],
        tmp,
        workers=WORKERS,
        threads=THREADS,
        env_extra={
            "MODEL_RUNNER_CLIENT_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
            "MODEL_RUNNER_CLIENT_BODY_TIMEOUT": str(BODY_TIMEOUT),
            "MODEL_RUNNER_CLIENT_BODY_MIN_RATE": str(MIN_RATE),
            "MODEL_RUNNER_MAX_BODY_BYTES": str(MAX_BODY),
        },
    )
    yield served
    assert served.stop() == 0


def test_slow_senders_do_not_starve_normal_calls(served: Serve) -> None:
    url = f"{served.base}/models/toy/methods/Echo"
    stop = threading.Event()
    tricklers = _tricklers(served.port)
    trickling = threading.Thread(target=_trickle, args=(tricklers, stop), daemon=True)
    try:
        trickling.start()
        # every slow connection has sent its head and a few bytes before the normal calls start
        wait_for(lambda: all(t.sent >= 2 for t in tricklers), 30, "every trickler to be under way")

        latencies: list[float] = []
        for i in range(40):  # fresh connections: both workers answer
            t0 = time.monotonic()
            r = requests.post(
                url, json={"text": f"call {i}"}, headers={"Connection": "close"}, timeout=CALL_DEADLINE
            )
            latencies.append(time.monotonic() - t0)
            assert r.status_code == 200 and r.json() == {"value": f"call {i}"}, r.text
        during = sum(1 for t in tricklers if t.answered is None)
        assert during > 0, "the slow senders were all answered before the normal calls ended"

        wait_for(
            lambda: all(t.answered is not None for t in tricklers),
            HEADER_TIMEOUT + BODY_TIMEOUT + 30,
            "every slow sender to be answered",
            interval=0.1,
        )
    finally:
        stop.set()
        trickling.join(timeout=10)
        for t in tricklers:
            t.sock.close()

    report = {
        "normal calls": len(latencies),
        "normal p50 ms": round(1000 * statistics.median(latencies), 1),
        "normal max ms": round(1000 * max(latencies), 1),
        "slow connections": len(tricklers),
        "still unanswered when the normal calls ended": during,
    }
    for kind in ("headers", "body", "large body"):
        mine = [t for t in tricklers if t.kind == kind]
        waited = [t.answered - t.started for t in mine if t.answered is not None]
        report[f"{kind}: answered after s (min-max)"] = f"{min(waited):.1f}-{max(waited):.1f}"
        for t in mine:
            head, _, body = t.answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408 "), (kind, t.answer[:300])
            error = json.loads(body)["error"]
            assert error["kind"] == "request_timeout", error
            assert error["detail"]["waiting_for"] == ("headers" if kind == "headers" else "body"), error
            waited_s = t.answered - t.started
            # the loop checks deadlines about once a second; the machine may be busy
            assert t.timeout - 0.5 <= waited_s <= t.timeout + 5, (kind, waited_s, t.timeout)
    print("\nslow-client figures:", json.dumps(report, indent=1))


# ----------------------------------------------------------------------- requests, however framed


def _response(reader: Any) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response read from ``reader`` (a socket's binary file): status, headers, body."""
    status_line = reader.readline()
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if status == 100:
        return _response(reader)  # an interim answer: the real one follows
    body = reader.read(int(headers.get("content-length", "0")))
    return status, headers, body


def _echo(text: str, *, extra: str = "", chunked: bool = False, chunk: int = 7000) -> bytes:
    body = json.dumps({"text": text}).encode()
    head = f"POST /models/toy/methods/Echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}"
    if not chunked:
        return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
    parts = [body[i : i + chunk] for i in range(0, len(body), chunk)]
    framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    return f"{head}Transfer-Encoding: chunked\r\n\r\n".encode() + framed


def test_requests_arrive_whole_however_they_are_framed(served: Serve) -> None:
    """The event loop receives requests of every framing whole, and gunicorn answers them as before:
    Content-Length or chunked, small or above request_buffer_bytes (received into a file), with
    Expect: 100-continue, pipelined on one connection; too large or malformed ones answer JSON errors."""
    big = "b" * (2 * 1024 * 1024)  # above request_buffer_bytes (1 MiB): received into a temporary file
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as sock:
        reader = sock.makefile("rb")
        # pipelined: every request written before any answer is read, framings mixed
        requests_ = [
            _echo("small"),
            _echo("chunked", chunked=True),
            _echo(big),
            _echo(big, chunked=True),
            _echo("after the big ones"),
        ]
        sock.sendall(b"".join(requests_))
        texts = ["small", "chunked", big, big, "after the big ones"]
        for text in texts:
            status, headers, body = _response(reader)
            assert status == 200, body[:300]
            assert json.loads(body) == {"value": text}

        # Expect: 100-continue: the interim answer comes before the body is sent, exactly once
        body = json.dumps({"text": "continued"}).encode()
        sock.sendall(
            b"POST /models/toy/methods/Echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        assert reader.readline() == b"HTTP/1.1 100 Continue\r\n" and reader.readline() == b"\r\n"
        sock.sendall(body)
        status, _, answer = _response(reader)
        assert status == 200 and json.loads(answer) == {"value": "continued"}
        sock.sendall(_echo("still the same connection"))
        status, _, answer = _response(reader)
        assert status == 200 and json.loads(answer) == {"value": "still the same connection"}

    # a declared body above max_body_bytes: 413 before a byte of it is sent
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as sock:
        sock.sendall(
            b"POST /models/toy/methods/Echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (MAX_BODY + 1)
        )
        status, headers, answer = _response(sock.makefile("rb"))
        assert status == 413 and headers["connection"] == "close"
        assert json.loads(answer)["error"]["kind"] == "too_large"

    # both framings at once (request smuggling): 400, the connection closed
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as sock:
        sock.sendall(
            b"POST /models/toy/methods/Echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        )
        status, headers, answer = _response(sock.makefile("rb"))
        assert status == 400 and headers["connection"] == "close"
        assert json.loads(answer)["error"]["kind"] == "bad_input"

    # headers without end, beyond what gunicorn would accept: 400
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n" + b"X-Pad: " + b"p" * 8000 + b"\r\n")
        try:
            for _ in range(300):
                sock.sendall(b"X-More: " + b"m" * 8000 + b"\r\n")
        except OSError:
            pass  # the server answered and stopped reading
        status, _, answer = _response(sock.makefile("rb"))
        assert status == 400 and json.loads(answer)["error"]["kind"] == "bad_input"

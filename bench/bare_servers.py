"""Ceiling references for the benchmarks: the server stacks with no model behind them.

``http``: a trivial WSGI app answering a fixed small JSON body to any request, served by
runner.http.gunicorn_app.HttpServer itself (the same gunicorn config: worker class, workers, threads,
keepalive, logging), so the row measures gunicorn + WSGI and nothing of ours.

``grpc``: a grpc.server with one generic handler echoing the request bytes, with the same thread pool
size and options as runner.grpc.server.create_server, on a SO_REUSEPORT port shared by ``--procs``
processes (like ``python -m runner.grpc``).

    python bench/bare_servers.py http --workers 1 --threads 8     # prints "bare-http port=N"
    python bench/bare_servers.py grpc --procs 2                   # prints "bare-grpc port=N"
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BODY = b'{"species": "setosa", "probability": 0.97}'


def bare_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH")
    stream.read(int(length)) if length else stream.read()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))])
    return [BODY]


def serve_http(args: argparse.Namespace) -> None:
    from runner.http.gunicorn_app import HttpServer
    from runner.settings import Settings

    class BareServer(HttpServer):  # type: ignore[misc]
        def load(self) -> Any:
            return bare_app

    settings = Settings(http_port=args.port, workers=args.workers, threads=args.threads)
    BareServer(
        settings, on_ready=lambda port: print(f"bare-http port={port}", flush=True), log_level="warning"
    ).run()


def serve_grpc(args: argparse.Namespace) -> None:
    from concurrent import futures

    import grpc

    from runner.grpc.server import DEFAULT_THREADS
    from runner.settings import Settings

    settings = Settings()

    class Echo(grpc.GenericRpcHandler):
        def __init__(self) -> None:
            self._handler = grpc.unary_unary_rpc_method_handler(lambda request, context: request)

        def service(self, handler_call_details: Any) -> Any:
            return self._handler

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=args.threads or DEFAULT_THREADS),
        options=[
            ("grpc.so_reuseport", 1),
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
        ],
    )
    server.add_generic_rpc_handlers((Echo(),))
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"bare-grpc port={port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    children: list[subprocess.Popen[str]] = []
    for _ in range(args.procs - 1):  # the others share the port
        children.append(
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "grpc",
                    "--port",
                    str(port),
                    "--procs",
                    "1",
                    *(["--threads", str(args.threads)] if args.threads else []),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
        )
        assert children[-1].stdout is not None
        children[-1].stdout.readline()
    stop.wait()
    for child in children:
        child.send_signal(signal.SIGTERM)
    for child in children:
        child.wait(timeout=30)
    server.stop(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["http", "grpc"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--procs", type=int, default=1, help="gRPC: processes sharing the port")
    args = parser.parse_args()
    if args.kind == "http":
        args.threads = args.threads or 8
        serve_http(args)
    else:
        serve_grpc(args)


if __name__ == "__main__":
    main()

"""A standalone gRPC serving process: ``python -m runner.grpc``.

Spawned by ``model-runner serve`` (never forked from a process with a JVM): it reads Settings from the
environment (MODEL_RUNNER_*), opens the repository, builds its own Registry (own JVM, serving record
of kind "grpc", so swaps wait for it too) and serves on ``settings.grpc_port`` with SO_REUSEPORT, so
several such processes share the port and the kernel spreads connections over them (both cores).

Prints one line ``model-runner grpc ready host=H port=P pid=N`` on stdout once serving.
SIGTERM/SIGINT: report NOT_SERVING, drain in-flight calls (up to ``--grace`` seconds, default
``stop_timeout``), stop the registry (which removes the serving record), exit 0 within
runner.serving.lifecycle.CLOSE_GRACE seconds more (threads a model left running are logged, not waited
for). The JVM of this process gets ``-Xrs`` so that it leaves SIGTERM/SIGINT to us (its own handlers
would exit at once, without draining). With ``--parent-pid`` (`serve` passes its own), the process gets
SIGTERM when that parent dies, even by SIGKILL (parent-death signal). A process holding more stuck calls
than ``max_stuck_calls`` (runner.serving.stuck_calls) retires: it stops the same way (NOT_SERVING, in-flight
calls drained) and exits with RETIRED_EXIT; `serve` starts a fresh one.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from types import FrameType

from runner.grpc.server import DEFAULT_THREADS, MAX_CONNECTION_AGE, create_server
from runner.serving import metrics
from runner.serving.lifecycle import ProcessEnd, die_with_parent
from runner.serving.loading import BundleLoader
from runner.serving.registry import Registry
from runner.serving.stuck_calls import RETIRED_EXIT, StuckCallWatch
from runner.settings import Settings
from runner.store import Repository

log = logging.getLogger("runner.grpc")


def _open_repository(settings: Settings) -> Repository:
    # Opening wipes only staging folders of dead processes: an upload in progress elsewhere is safe.
    return Repository(settings.repo)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runner.grpc", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=None, help="port (default: MODEL_RUNNER_GRPC_PORT)")
    parser.add_argument(
        "--grace",
        type=float,
        default=None,
        help="seconds to drain in-flight calls on SIGTERM (default: stop_timeout)",
    )
    parser.add_argument(
        "--parent-pid",
        type=int,
        default=None,
        help="stop (SIGTERM) when this process, the parent, dies (`serve` passes its pid)",
    )
    parser.add_argument("--no-reuse-port", action="store_true", help="do not set SO_REUSEPORT")
    parser.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_THREADS,
        help=f"threads handling calls (default {DEFAULT_THREADS})",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s grpc[%(process)d] %(levelname)s %(name)s: %(message)s",
    )

    settings = Settings.from_env()  # the bridge starts every JVM with -Xrs: SIGTERM stays ours
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    parent = os.getppid()
    if args.parent_pid is not None:
        parent = args.parent_pid
        die_with_parent(parent)  # SIGTERM (on_signal above) when `serve` dies, even by SIGKILL
    repository = _open_repository(settings)
    registry = Registry(
        repository, BundleLoader(settings), process_kind="grpc", poll_interval=settings.poll_interval
    )
    registry.start()
    try:
        server, port = create_server(
            settings, registry, port=args.port, reuse_port=not args.no_reuse_port, max_workers=args.threads
        )
    except Exception:
        registry.stop()
        raise
    server.start()
    retired: list[str] = []

    def retire(why: str) -> None:
        retired.append(why)
        stop.set()

    watch = StuckCallWatch(settings, f"gRPC process {os.getpid()}", retire, registry=registry)
    watch.start()
    print(f"model-runner grpc ready host={settings.http_host} port={port} pid={os.getpid()}", flush=True)
    while not stop.wait(0.5):
        if os.getppid() != parent:
            # `serve` died without stopping us (SIGKILL): do not hold the port forever
            log.warning("parent process %d is gone: stopping", parent)
            break
    grace = settings.stop_timeout if args.grace is None else args.grace
    if retired and settings.grpc_processes > 1:
        # new connections go to the other processes now; those it has age out (a graceful GOAWAY each,
        # the client reconnects elsewhere) before the stop, which would cancel calls still arriving.
        # (Alone on the port, it would only refuse everyone meanwhile: it stops at once.)
        server.health.stop()
        if server.stop_listening():
            stop.clear()
            stop.wait(MAX_CONNECTION_AGE * 1.1 + 1)  # a SIGTERM meanwhile ends the wait
    server.stop(grace).wait()
    watch.stop()
    end = ProcessEnd(f"gRPC process {os.getpid()}")
    end.begin()  # from here on the process is gone within CLOSE_GRACE seconds, whatever its models do
    registry.stop()
    metrics.process_ended(os.getpid())  # its gauges go now (its counts stay); `serve` does it too
    log.info("stopped%s", " (retired)" if retired else "")
    end.exit(RETIRED_EXIT if retired else 0)


if __name__ == "__main__":
    sys.exit(main())

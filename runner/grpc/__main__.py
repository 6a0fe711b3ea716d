"""A standalone gRPC serving process: ``python -m runner.grpc``.

Spawned by ``model-runner serve`` (never forked from a process with a JVM): it reads Settings from the
environment (MODEL_RUNNER_*), opens the repository, builds its own Registry (own JVM, serving record
of kind "grpc", so swaps wait for it too) and serves on ``settings.grpc_port`` with SO_REUSEPORT, so
several such processes share the port and the kernel spreads connections over them (both cores).

Prints one line ``model-runner grpc ready host=H port=P pid=N`` on stdout once serving.
SIGTERM: report NOT_SERVING and drain, within ``--grace`` seconds (default ``stop_timeout``): first leave
the port (new connections are refused; behind a proxy they go to another host) and keep serving the
connections held until they age out (MAX_CONNECTION_AGE: a graceful GOAWAY each; a stopping grpc server
would cancel calls still arriving on them), at most half the grace and MAX_CONNECTION_AGE * 1.1 + 1
seconds, ending early once no call came for QUIET seconds; then stop the server, the calls in flight
draining for the rest of the grace. SIGINT, or a second SIGTERM/SIGINT during the wait, skips the wait
(the calls in flight still drain). Then it stops the registry (which removes the serving record) and
exits 0 within runner.serving.lifecycle.CLOSE_GRACE seconds more (threads a model left running are
logged, not waited for). The JVM of this process gets ``-Xrs`` so that it leaves SIGTERM/SIGINT to us
(its own handlers would exit at once, without draining). With ``--parent-pid`` (`serve` passes its own),
the process gets SIGTERM when that parent dies, even by SIGKILL (parent-death signal). A process holding
more stuck calls than ``max_stuck_calls`` (runner.serving.stuck_calls) retires: it stops the same way
(its connections go to the other processes sharing the port, for up to MAX_CONNECTION_AGE * 1.1 + 1
seconds whatever the grace; alone on the port it does not wait) and exits with RETIRED_EXIT; `serve`
starts a fresh one.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from types import FrameType

from runner.grpc.server import DEFAULT_THREADS, MAX_CONNECTION_AGE, ModelServer, create_server
from runner.serving import metrics
from runner.serving.lifecycle import ProcessEnd, die_with_parent
from runner.serving.loading import BundleLoader
from runner.serving.registry import Registry
from runner.serving.stuck_calls import RETIRED_EXIT, StuckCallWatch
from runner.settings import Settings
from runner.store import Repository

log = logging.getLogger("runner.grpc")

QUIET = 1.0
"""Seconds without a call (none in flight either) after which a stopping process takes the connections it
still holds for idle and stops without waiting for them to age out."""


def _let_connections_go(server: ModelServer, limit: float, hurry: threading.Event) -> float:
    """Report NOT_SERVING, leave the port and keep serving the connections held until they age out
    (MAX_CONNECTION_AGE: a graceful GOAWAY each, calls arriving meanwhile are served), at most ``limit``
    seconds; the wait ends early once no call came for QUIET seconds, or when ``hurry`` is set. A stopping
    grpc server would cancel the calls still arriving on them (through a proxy: answered CANCELLED).
    Returns the seconds waited."""
    started = time.monotonic()
    server.health.stop()
    if limit <= 0 or hurry.is_set() or not server.stop_listening():
        return time.monotonic() - started
    deadline = started + limit
    while not hurry.wait(min(0.1, max(0.0, deadline - time.monotonic()))):
        if time.monotonic() >= deadline or server.activity.quiet_for() >= QUIET:
            break
    waited = time.monotonic() - started
    log.info("connections let go in %.1f s; stopping", waited)
    return waited


def _open_repository(settings: Settings) -> Repository:
    # Opening wipes only staging folders of dead processes: an upload in progress elsewhere is safe.
    return Repository.from_settings(settings)


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
    hurry = threading.Event()  # no waiting for connections to go: SIGINT, or a second reason to stop
    reasons: list[str] = []

    def stop_for(why: str, *, quick: bool = False) -> None:
        reasons.append(why)
        if quick or len(reasons) > 1:
            hurry.set()
        stop.set()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping%s", signum, " now" if stop.is_set() else "")
        stop_for(f"signal {signum}", quick=signum == signal.SIGINT)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    parent = os.getppid()
    if args.parent_pid is not None:
        parent = args.parent_pid
        die_with_parent(parent)  # SIGTERM (on_signal above) when `serve` dies, even by SIGKILL
    repository = _open_repository(settings)
    registry = Registry(
        repository,
        BundleLoader(settings),
        process_kind="grpc",
        poll_interval=settings.poll_interval,
        listening=False,
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
    registry.mark_listening()
    retired: list[str] = []

    def retire(why: str) -> None:
        retired.append(why)
        stop_for(why)

    watch = StuckCallWatch(settings, f"gRPC process {os.getpid()}", retire, registry=registry)
    watch.start()
    print(f"model-runner grpc ready host={settings.http_host} port={port} pid={os.getpid()}", flush=True)
    while not stop.wait(0.5):
        if os.getppid() != parent:
            # `serve` died without stopping us (SIGKILL): do not hold the port forever
            log.warning("parent process %d is gone: stopping", parent)
            stop_for("parent gone")
            break
    grace = settings.stop_timeout if args.grace is None else args.grace
    age_out = MAX_CONNECTION_AGE * 1.1 + 1  # grpc's jitter is at most 10%
    if retired:
        # new connections go to the other processes now; those it has age out (the client reconnects
        # elsewhere) before the stop. (Alone on the port, it would only refuse everyone meanwhile: it
        # stops at once.) A SIGTERM meanwhile ends the wait.
        if settings.grpc_processes > 1:
            _let_connections_go(server, age_out, hurry)
    else:
        # the drain, within `grace`: half of it at most for the connections to go, the rest for the
        # calls still in flight then. New connections are refused (this host is stopping; a proxy
        # sends them to another one).
        grace -= _let_connections_go(server, min(age_out, grace / 2), hurry)
    server.stop(max(0.0, grace)).wait()
    watch.stop()
    end = ProcessEnd(f"gRPC process {os.getpid()}")
    end.begin()  # from here on the process is gone within CLOSE_GRACE seconds, whatever its models do
    registry.stop()
    metrics.process_ended(os.getpid())  # its gauges go now (its counts stay); `serve` does it too
    log.info("stopped%s", " (retired)" if retired else "")
    end.exit(RETIRED_EXIT if retired else 0)


if __name__ == "__main__":
    sys.exit(main())

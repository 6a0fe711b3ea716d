"""The HTTP serving processes under granian (``serve --http-server granian``): granian's WSGI interface
(a Rust HTTP server, requests handed to ``threads`` blocking threads per worker) around the same Flask
app as runner.http.gunicorn_app.

What stays as under gunicorn: granian forks its workers and each builds its repository, registry (own
JVM) and Flask app there (granian's ``factory`` target, called in the worker), never in the master;
each registry writes its serving record, so swaps and `serve`'s readiness count every worker the same
way; access logs and metrics come from the app itself (runner.http.access, runner.serving.metrics). A
worker dies with `serve` (parent-death signal), and a worker that ends (crashed, retired for stuck
calls) is replaced by granian (``respawn_failed_workers``); its gauges go, its counts stay, a JVM
crash report it left is logged. SIGTERM stops the workers, each finishing the requests it has taken
(granian's graceful stop) within ``stop_timeout``; the master kills a worker still there after
``stop_timeout`` + CLOSE_GRACE + 2 s.

What differs (docs/operations.md, "HTTP servers"): granian reads request headers in its event loop
(``client_header_timeout`` applies), but it hands a request to a blocking thread before its body has
arrived and the thread waits for the body: clients trickling bodies can hold every thread (no body
deadline; put a buffering proxy in front). granian gives up when a replaced worker crashes again within
5.5 s, where gunicorn keeps forking; there is no per-worker heartbeat timeout (stuck calls still retire
a worker, runner.serving.stuck_calls).

SIGHUP (and a crashed or retired worker) replaces workers one at a time: the fresh worker starts, the
old one stops only once the fresh one's registry serves (granian itself waits a fixed 3.5 s, shorter
than a JVM start on a loaded machine: requests were refused), and is first told (SIGUSR1) to answer
with ``Connection: close`` for CLOSE_WINDOW seconds so that clients leave its kept-alive connections.
This overrides granian's private ``_respawn_workers``: granian is pinned (pyproject's ``granian``
extra).
"""

from __future__ import annotations

import logging
import math
import multiprocessing.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from runner.http import gunicorn_app
from runner.runtimes.java import jvm_crash_report
from runner.serving import metrics
from runner.serving.lifecycle import CLOSE_GRACE, ProcessEnd, die_with_parent
from runner.serving.stuck_calls import StuckCallWatch
from runner.settings import Settings
from runner.store import Repository

log = logging.getLogger(__name__)

WORKER_START_TIMEOUT = 600.0
"""Longest wait for a replacement worker to serve before its predecessor stops anyway."""
BIND_GRACE = 0.5
"""Seconds between a replacement worker's registry serving and its predecessor being told to close."""
CLOSE_WINDOW = 1.0
"""Seconds a replaced worker answers with ``Connection: close`` before it is stopped."""

# Set in the master before the fork; the workers (forked) read it in worker_app.
_settings: Settings | None = None
_log_level = "info"
_master_pid = 0


def worker_app() -> Any:
    """granian's factory target: runs in each worker after the fork and returns the Flask app."""
    assert _settings is not None, "worker_app runs only in a worker forked by GranianHttpServer"
    die_with_parent(_master_pid)  # the worker dies with `serve` (kill -9 included)
    logging.basicConfig(
        level=_log_level.upper() if _log_level.upper() in logging.getLevelNamesMapping() else "INFO",
        stream=sys.stderr,
        format="%(asctime)s http[%(process)d] %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    app = gunicorn_app.build_worker_app(_settings)
    # at the worker's end (multiprocessing runs its finalizers before the process exits): stop the
    # registry (its serving record goes), within the bounded end of a serving process
    multiprocessing.util.Finalize(None, _stop_worker, exitpriority=100)
    StuckCallWatch(
        _settings,
        f"HTTP worker {os.getpid()}",
        lambda _why: os.kill(os.getpid(), signal.SIGTERM),  # granian's graceful stop; the master replaces it
        registry=gunicorn_app._worker_registry,
    ).start()
    signal.signal(signal.SIGUSR1, _start_closing)
    log.info("worker %s serving", os.getpid())
    return _CloseWhenReplaced(app)


_closing = False  # this worker is being replaced: every answer closes its connection


def _start_closing(signum: int, frame: Any) -> None:
    global _closing
    _closing = True


class _CloseWhenReplaced:
    """WSGI middleware: once the worker is told it is being replaced (SIGUSR1 from the master), answers
    carry ``Connection: close``, so clients leave its kept-alive connections after their current call
    instead of sending the next one on a connection the worker is about to close."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: Any, start_response: Any) -> Any:
        if not _closing:
            return self.app(environ, start_response)

        def closing(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers.append(("Connection", "close"))
            return start_response(status, headers, exc_info)

        return self.app(environ, closing)


def _stop_worker() -> None:
    ProcessEnd(f"HTTP worker {os.getpid()}").begin()
    gunicorn_app._stop_worker_registry()


class GranianHttpServer:
    """granian serving model-runner's Flask app with `settings.workers` workers; the same interface
    as runner.http.gunicorn_app.HttpServer (`on_ready(port)` once bound, `on_exit()` when stopped,
    `on_stop_signal(signum)` at once on SIGTERM/SIGINT)."""

    def __init__(
        self,
        settings: Settings,
        *,
        on_ready: Callable[[int], None] | None = None,
        on_exit: Callable[[], None] | None = None,
        on_stop_signal: Callable[[int], None] | None = None,
        log_level: str = "info",
        other_children: Callable[[], Sequence[subprocess.Popen[bytes]]] | None = None,
    ) -> None:
        self.settings = settings
        self._on_ready = on_ready
        self._on_exit = on_exit
        self._on_stop_signal = on_stop_signal
        self._log_level = log_level
        del other_children  # granian joins its own workers (no waitpid(-1)): nothing to reap for them

    def run(self) -> None:
        """Run granian's master in this process until it stops."""
        global _settings, _log_level, _master_pid
        from granian.constants import Interfaces  # noqa: PLC0415 (optional dependency)
        from granian.http import HTTP1Settings  # noqa: PLC0415
        from granian.server import Server  # noqa: PLC0415

        s = self.settings
        if s.http_port == 0:
            # granian's workers each bind the port (SO_REUSEPORT): port 0 must be resolved here, once
            s.http_port = _free_port(s.http_host)
        _settings, _log_level, _master_pid = s, self._log_level, os.getpid()
        # opened here, before any fork (opening takes file locks); read by _wait_serving
        self._repository = Repository.from_settings(s)
        app = self

        class _Server(Server):  # type: ignore[misc,valid-type]
            def signal_handler_interrupt(self, signum: int = 15, *args: Any) -> None:
                app._stop_signal(signum)
                super().signal_handler_interrupt(signum, *args)

            def startup(self, spawn_target: Any, target_loader: Any) -> None:
                super().startup(spawn_target, target_loader)
                app._ready(self)

            def _respawn_workers(
                self, workers: Any, spawn_target: Any, target_loader: Any, delay: float = 0
            ) -> None:
                # granian's, except that the old worker stops only once the new one serves (granian
                # waits a fixed respawn_interval, shorter than a JVM's start on a loaded machine)
                for idx in workers:
                    self.respawned_wrks[idx] = time.monotonic()
                    old = self.wrks.pop(idx)
                    fresh = self._spawn_worker(idx=idx, target=spawn_target, callback_loader=target_loader)
                    fresh.start()
                    self.wrks.insert(idx, fresh)
                    app._wait_serving(fresh, lambda: self.interrupt_signal)
                    app._close_connections(old)
                    old.terminate()
                    old.join(self.workers_kill_timeout)
                    if old.is_alive():
                        log.warning("HTTP worker %s did not stop in time; killing it", old._id())
                        old.kill()
                        old.join()
                    app._ended([old._id()])
                self._metrics.incr_spawn(len(workers))

            def _stop_workers(self) -> None:
                old = [worker._id() for worker in self.wrks]
                try:
                    super()._stop_workers()
                finally:
                    app._ended(old)

        level = self._log_level.lower()
        server = _Server(
            "runner.http.granian_app:worker_app",
            address=s.http_host,
            port=s.http_port,
            interface=Interfaces.WSGI,
            workers=max(1, s.workers),
            blocking_threads=max(1, s.threads),
            factory=True,
            backlog=2048,
            http1_settings=HTTP1Settings(header_read_timeout=int(s.client_header_timeout * 1000)),
            respawn_failed_workers=True,
            workers_kill_timeout=math.ceil(s.stop_timeout + CLOSE_GRACE + 2),
            log_level=level if level in ("critical", "error", "warning", "info", "debug") else "info",
        )
        try:
            server.serve()
        finally:
            if self._on_exit is not None:
                self._on_exit()

    def _ready(self, server: Any) -> None:
        if self._on_ready is not None:
            self._on_ready(self.settings.http_port)

    def _wait_serving(self, worker: Any, stopping: Callable[[], bool]) -> None:
        """Until ``worker``'s registry serves (its serving record says ready), it ends, or serve stops."""
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while time.monotonic() < deadline and worker.is_alive() and not stopping():
            pid = worker._id()
            try:
                records = list(self._repository.fleet.live_processes().values())
            except Exception:  # noqa: BLE001 - a record being written: look again
                records = []
            if any(r.get("pid") == pid and r.get("ready") for r in records):
                time.sleep(BIND_GRACE)  # the worker binds its socket right after building the app
                return
            time.sleep(0.1)

    @staticmethod
    def _close_connections(worker: Any) -> None:
        """Tell a worker about to stop to close its connections as it answers, and give clients on
        kept-alive connections CLOSE_WINDOW seconds to make their next call there (answered, closed)."""
        if worker.is_alive():
            try:
                os.kill(worker._id(), signal.SIGUSR1)
            except OSError:
                return
            time.sleep(CLOSE_WINDOW)

    @staticmethod
    def _ended(pids: list[int | None]) -> None:
        for pid in pids:  # a worker that ended: its gauges go, its counts stay
            if pid is not None:
                metrics.process_ended(pid)
                report = jvm_crash_report(pid)
                if report is not None:
                    log.error("HTTP worker %d: its JVM crashed; the JVM's crash report: %s", pid, report)

    def _stop_signal(self, signum: int) -> None:
        if self._on_stop_signal is not None:
            try:
                self._on_stop_signal(signum)
            except Exception:
                log.exception("stop-signal callback failed")


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])

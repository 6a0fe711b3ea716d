"""The HTTP serving processes: gunicorn (gthread workers) around the Flask app.

The JVM does not survive fork, so nothing that starts it is created in the master: each worker opens
the repository, builds its own Registry (own JVM) and the Flask app when gunicorn loads the app inside
the worker (``preload_app`` is off). SIGTERM drains in-flight requests (gunicorn's graceful stop, at most
``stop_timeout``), then the worker stops its registry, which removes its serving record, and exits within
runner.serving.lifecycle.CLOSE_GRACE seconds (threads a model left running are logged, not waited for).

The workers are runner.http.buffering.BufferingWorker (gthread receiving each request whole before a
thread takes it: slow clients hold no thread). A worker dies with the `serve` process (parent-death
signal). gunicorn ends a worker with ``sys.exit()`` raised inside the master's loop, where it was forked:
:meth:`HttpServer.run` ends the worker process there, so that it never unwinds into its caller's code
(`serve`'s own clean-up: stopping the gRPC processes, removing the ready file).
"""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from runner.http import buffering
from runner.http.app import create_app
from runner.runtimes.java import jvm_crash_report
from runner.serving import metrics
from runner.serving.lifecycle import CLOSE_GRACE, ProcessEnd, die_with_parent
from runner.serving.loading import BundleLoader
from runner.serving.registry import Registry
from runner.serving.stuck_calls import StuckCallWatch
from runner.settings import Settings
from runner.store import Repository

log = logging.getLogger(__name__)

# The registry of this worker process (set inside the worker only).
_worker_registry: Any = None
# The bounded end of this worker process (set inside the worker only, when it stops serving).
_worker_end: ProcessEnd | None = None


def build_worker_app(settings: Settings) -> Any:
    """Repository + Registry + Flask app of one serving process; call it after the fork."""
    global _worker_registry
    # Opening is safe while other processes work: staging entries in use are locked and kept.
    repository = Repository.from_settings(settings)
    registry = Registry(
        repository, BundleLoader(settings), process_kind="http", poll_interval=settings.poll_interval
    )
    registry.start()
    _worker_registry = registry
    return create_app(settings, registry, repository)


def _stop_worker_registry() -> None:
    global _worker_registry
    registry, _worker_registry = _worker_registry, None
    if registry is not None:
        try:
            registry.stop()
        except Exception:
            log.exception("registry stop failed")


class HttpServer(BaseApplication):  # type: ignore[misc]
    """A gunicorn application serving model-runner's Flask app with `settings.workers` workers.

    `on_ready(port)` runs in the master once the listening socket is bound (port 0 resolved);
    `on_exit()` runs in the master when gunicorn stops.
    """

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
        """``other_children``: the master's children that are not workers (`serve`'s gRPC processes),
        reaped by their own Popen before gunicorn's waitpid(-1) could take their exit status."""
        self.settings = settings
        self._other_children = other_children
        self._on_ready = on_ready
        self._on_exit = on_exit
        self._on_stop_signal = on_stop_signal
        self._bind: str | None = None
        self._log_level = log_level
        super().__init__()

    def load_config(self) -> None:
        s = self.settings
        host = s.http_host
        if self._bind is None:
            # fixed at the first load: a reload (SIGHUP) must keep the listening socket, even for port 0
            self._bind = f"[{host}]:{s.http_port}" if ":" in host else f"{host}:{s.http_port}"
        bind = self._bind
        config: dict[str, Any] = {
            "bind": [bind],
            "workers": max(1, s.workers),
            "threads": max(1, s.threads),
            "worker_class": buffering.BufferingWorker if buffering.supported() else "gthread",
            "preload_app": False,  # never start a JVM before the fork
            # gthread workers heartbeat from their event loop, so this only catches a stuck worker
            "timeout": int(max(120.0, 2 * s.predict_timeout, s.swap_timeout + 30)),
            # the master's bound on a stopping worker: its drain (stop_timeout, set in the worker by
            # _post_fork) and the close after it; a worker past it is SIGKILLed
            "graceful_timeout": math.ceil(s.stop_timeout + CLOSE_GRACE + 2),
            "keepalive": 5,
            "loglevel": self._log_level,
            "accesslog": None,
            "errorlog": "-",
            "proc_name": "model-runner-http",
            "control_socket_disable": True,  # a fixed per-user socket path would clash between servers
            "limit_request_field_size": 16384,
            "post_fork": _post_fork,
            "post_worker_init": _post_worker_init,
            "worker_exit": _worker_exit,
            "child_exit": _child_exit,
            "when_ready": self._when_ready,
            "on_exit": self._exit,
        }
        for key, value in config.items():
            self.cfg.set(key, value)

    def run(self) -> None:
        """Run gunicorn's arbiter (in this process) until it stops."""
        app = self

        class _Arbiter(Arbiter):  # type: ignore[misc]
            # tell the caller at once (e.g. to stop the gRPC processes in parallel with the drain)
            def handle_term(self) -> None:
                app._stop_signal(signal.SIGTERM)
                super().handle_term()

            def handle_int(self) -> None:
                app._stop_signal(signal.SIGINT)
                super().handle_int()

            def handle_quit(self) -> None:
                app._stop_signal(signal.SIGQUIT)
                super().handle_quit()

            def reap_workers(self) -> None:
                # waitpid(-1) reaps every child: the other children first, so that their owner sees
                # their exit status (as gunicorn does for its dirty arbiter)
                if app._other_children is not None:
                    for child in app._other_children():
                        child.poll()
                super().reap_workers()

        master = os.getpid()
        try:
            _Arbiter(self).run()
        except SystemExit as exit_:
            if os.getpid() != master:  # a worker: it ends here (see the module docstring)
                _end_worker(exit_.code)
            raise
        except RuntimeError as err:
            print(f"\nError: {err}\n", file=sys.stderr, flush=True)
            sys.exit(1)

    def _stop_signal(self, signum: int) -> None:
        if self._on_stop_signal is not None:
            try:
                self._on_stop_signal(signum)
            except Exception:
                log.exception("stop-signal callback failed")

    def load(self) -> Any:
        # gunicorn calls this inside each worker after the fork (preload_app is off)
        logging.basicConfig(
            level=self._log_level.upper() if self._log_level.upper() in logging._nameToLevel else "INFO",
            stream=sys.stderr,
            format="%(asctime)s http[%(process)d] %(levelname)s %(name)s: %(message)s",
        )
        return build_worker_app(self.settings)

    def _when_ready(self, server: Any) -> None:
        port = self.settings.http_port
        for listener in getattr(server, "LISTENERS", []):
            sockname = listener.sock.getsockname()
            if isinstance(sockname, tuple):
                port = int(sockname[1])
                break
        if self._on_ready is not None:
            self._on_ready(port)

    def _exit(self, server: Any) -> None:
        if self._on_exit is not None:
            self._on_exit()


def _post_fork(server: Any, worker: Any) -> None:
    # in the worker, right after the fork: it dies with the master (kill -9 of `serve` included) ...
    die_with_parent(worker.ppid)
    # ... and drains for stop_timeout when it stops (the master waits that, plus CLOSE_GRACE, for it)
    worker.cfg.set("graceful_timeout", math.ceil(server.app.settings.stop_timeout))


def _post_worker_init(worker: Any) -> None:
    # gunicorn's signal handlers stay in charge even once a JVM starts: the bridge starts it with -Xrs
    log.info("worker %s serving", os.getpid())
    # a worker holding too many calls that never stop retires (runner.serving.stuck_calls)
    StuckCallWatch(
        worker.app.settings,
        f"HTTP worker {os.getpid()}",
        lambda _why: _retire(worker),
        registry=_worker_registry,
    ).start()


def _retire(worker: Any) -> None:
    """Stop the worker as gunicorn's max-requests restart does: no new connections, requests already
    read answered (with Connection: close), kept-alive connections given a moment for a request on its
    way (runner.http.buffering); the master forks a fresh worker when it exits."""
    if worker.alive:
        worker.alive = False
        queue = getattr(worker, "method_queue", None)
        if queue is not None:
            queue.defer(lambda: None)  # wake the event loop up: it starts stopping at once


def _worker_exit(server: Any, worker: Any) -> None:
    if worker.pid != os.getpid():
        return  # gunicorn calls this hook in the master too, for a worker that died unnoticed
    # the worker has stopped serving: from now on, its end is bounded (a model's close may hang too)
    global _worker_end
    if _worker_end is None:
        _worker_end = ProcessEnd(f"HTTP worker {os.getpid()}")
    _worker_end.begin()
    _stop_worker_registry()


def _child_exit(server: Any, worker: Any) -> None:
    # in the master, for each worker that ended (killed included): its gauges go, its counts stay
    metrics.process_ended(worker.pid)
    report = jvm_crash_report(worker.pid)
    if report is not None:
        log.error("HTTP worker %d: its JVM crashed; the JVM's crash report: %s", worker.pid, report)


def _end_worker(code: object) -> None:
    """End this worker process with gunicorn's exit ``code``, within the bound (never returns)."""
    end = _worker_end or ProcessEnd(f"HTTP worker {os.getpid()}")
    end.exit(code if isinstance(code, int) else 0 if code is None else 1)

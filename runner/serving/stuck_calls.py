"""Calls that do not stop, seen by the serving process that holds them, and its retirement.

Once a second (:class:`StuckCallWatch`, a daemon thread of each serving process) the process's stuck
calls (runner.runtimes.stuck: abandoned at their deadline, still running ``stuck_grace`` seconds later)
are polled:

- each call that became stuck is logged once, at WARNING on logger ``model.<name>`` (model, version,
  rpc, thread, request id, and the thread's stack);
- ``model_runner_abandoned_calls_total`` counts each call abandoned while its model still ran, and
  ``model_runner_stuck_calls`` is the number stuck now (runner.serving.metrics);
- a process holding more than ``max_stuck_calls`` (0: no limit) *retires*: the watch logs why (the models
  holding the calls) and calls the ``retire`` callback once. The edge decides how (an HTTP worker stops
  like gunicorn's max-requests restart and the master forks a fresh one; a gRPC process stops its server
  with a grace and exits with :data:`RETIRED_EXIT`, and `serve` starts a fresh one); this module decides
  when. A stuck thread cannot be stopped, but a fresh process has none.

A process retires only while another process of its kind serves (ready, not retiring: the serving
records, read and marked under one lock), so two never retire at once and a gRPC port never goes without
a listener; the only process of its kind (``workers`` or ``grpc_processes`` 1) retires alone.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from collections.abc import Callable
from typing import Final

from runner.locks import locked as _locked
from runner.runtimes import stuck
from runner.serving import metrics
from runner.serving.registry import Registry
from runner.settings import Settings

log = logging.getLogger(__name__)

RETIRED_EXIT: Final = 75
"""The exit status of a gRPC serving process that retired (its stuck calls): `serve` replaces it."""

POLL_INTERVAL: Final = 1.0


class StuckCallWatch:
    """Polls this process's stuck calls: logs, counts, and retires the process past the limit."""

    def __init__(
        self,
        settings: Settings,
        process: str,
        retire: Callable[[str], None] | None = None,
        *,
        registry: Registry | None = None,
        interval: float = POLL_INTERVAL,
    ) -> None:
        """``process`` names this process in the log ("HTTP worker 123"); ``retire(reason)`` stops it
        gracefully (None: it never retires); ``registry``: this process's, to find its peers (None: it
        retires without waiting for one)."""
        self.limit = settings.max_stuck_calls
        self._registry = registry
        kind = registry.process_kind if registry is not None else ""
        self._peers_expected = {"http": settings.workers, "grpc": settings.grpc_processes}.get(kind, 1) - 1
        self._deferred = False
        self.process = process
        self.interval = interval
        self._retire = retire
        self._watch = stuck.StuckWatch(settings.stuck_grace)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.retiring = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="stuck-calls", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # the watch must survive anything
                log.exception("%s: checking the stuck calls failed", self.process)

    def check(self) -> list[stuck.StuckCall]:
        """One poll: log the calls newly stuck, update the metrics, retire past the limit; the stuck calls."""
        poll = self._watch.poll()
        for (model, version), count in poll.abandoned.items():
            metrics.calls_abandoned(model, version, count)
        by_version = Counter((c.model, c.version) for c in poll.stuck)
        metrics.stuck_calls(dict(by_version))
        for call in poll.newly_stuck:
            _log_stuck(call)
        if self.limit and len(poll.stuck) > self.limit and not self.retiring:
            held = ", ".join(f"{m} version {v} ({n})" for (m, v), n in sorted(by_version.items()))
            reason = f"{len(poll.stuck)} stuck calls, more than max_stuck_calls={self.limit}: {held}"
            if self._retire is None:
                self.retiring = True
                log.warning("%s holds %s; it cannot retire", self.process, reason)
            elif not self._may_retire():
                if not self._deferred:
                    self._deferred = True
                    log.warning(
                        "%s holds %s; it retires once another %s process serves",
                        self.process,
                        reason,
                        self._registry.process_kind if self._registry is not None else "",
                    )
            else:
                self.retiring = True
                log.warning(
                    "%s retires: it holds %s. It stops taking requests, finishes those in flight, "
                    "exits and is replaced",
                    self.process,
                    reason,
                )
                self._retire(reason)
        return poll.stuck

    def _may_retire(self) -> bool:
        """Whether another process of this kind serves on this host (then this one is marked retiring,
        under the same lock as its peers' decisions); True for the only process of its kind."""
        registry = self._registry
        if registry is None or self._peers_expected <= 0:
            return True
        fleet = registry.repository.fleet
        # Peers on this host only: another host's process does not take this host's traffic.
        with _locked(fleet.serving_root / f".retire-{fleet.safe_host_id}-{registry.process_kind}.lock"):
            peers = [
                pid
                for pid, record in fleet.live_processes().items()
                if pid != registry.process_id
                and record.get("host") == fleet.host_id
                and record.get("kind") == registry.process_kind
                and record.get("ready")
                and not record.get("retiring")
            ]
            if not peers:
                return False
            registry.mark_retiring()
            return True


def _log_stuck(call: stuck.StuckCall) -> None:
    request = f"request {call.request_id}: " if call.request_id else ""
    logging.getLogger(f"model.{call.model}").warning(
        "[model=%s version=%s pid=%d] %scall %s is stuck: still running %.1f s after its deadline on "
        "%s thread %r (it cannot be stopped; it holds the thread until it returns). Its stack:\n%s",
        call.model,
        call.version,
        os.getpid(),
        request,
        call.rpc,
        call.overdue_seconds,
        call.runtime.capitalize(),
        call.thread,
        call.stack.rstrip(),
    )

"""The standard gRPC health service (grpc.health.v1), kept in sync with the registry.

Service names reported: ``""`` (overall: SERVING when the registry is ready), each model's name, and
each loaded contract's full service name (e.g. ``iris.IrisClassifier``: SERVING while any model
serving that contract is loaded). A name once reported stays known: a deleted model (or a model whose
load failed) reads NOT_SERVING, and SERVING again when it comes back.
"""

from __future__ import annotations

import logging
import threading

from grpc_health.v1 import health, health_pb2

from runner.serving.registry import Registry

log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthSync:
    """Polls the registry and mirrors it into a ``grpc_health`` servicer.

    Polling (every ``interval`` seconds) keeps this independent of how the registry notices swaps;
    the registry snapshot is a cheap dict copy.
    """

    def __init__(self, registry: Registry, interval: float = 0.1):
        self.registry = registry
        self.interval = interval
        self.servicer = health.HealthServicer()
        self._status: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sync()

    def sync(self) -> None:
        """Bring the health statuses up to date with the registry now."""
        snap = self.registry.snapshot()
        wanted: dict[str, int] = {name: NOT_SERVING for name in self._status}
        for name in self.registry.load_errors():
            wanted[name] = NOT_SERVING
        for name, lv in snap.items():
            wanted[name] = SERVING
            wanted[lv.contract.full_service_name] = SERVING
        wanted[""] = SERVING if self.registry.ready() else NOT_SERVING
        for name, status in wanted.items():
            if self._status.get(name) != status:
                self.servicer.set(name, status)
                self._status[name] = status

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sync()
            except Exception:  # keep reporting whatever happens in one round
                log.exception("health sync failed")

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="grpc-health-sync", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop syncing and report NOT_SERVING for everything (graceful shutdown)."""
        self._stop.set()
        self.servicer.enter_graceful_shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5)

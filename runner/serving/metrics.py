"""The service's Prometheus metrics (prometheus_client), true across every serving process.

Under `serve`, every serving process (the gunicorn workers, the gRPC processes) writes its figures into
files of one folder (prometheus_client's multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR``, a fresh folder
per run that `serve` makes); a scrape of ``/metrics`` on any worker reads the folder whole, so each
scrape shows every process: counters summed over processes, dead ones included (a worker that died
still counts what it answered), gauges of live processes only (`serve` calls :func:`process_ended` for
each serving process that ends: gunicorn's child_exit hook, the gRPC processes' watcher). Without the
variable (a process serving on its own, tests), the figures are this process's.

What is recorded, and where:

- requests: ``model_runner_requests_total``, ``model_runner_request_duration_seconds`` (histogram) and
  ``model_runner_requests_in_flight``, by model, version, method, protocol (http, grpc, oip-http,
  oip-grpc) and outcome (``ok`` or the error kind). Recorded once per request around the data plane's
  work (:func:`track`, :func:`serving`), gathered in memory and written every FLUSH_INTERVAL
  (:class:`_Recorder`: a file write per request would cost more than the rest of the recording).
  Label values only ever name served models and their methods:
  a request that named no served model (or no method of it) is counted under ``unknown``, so a client
  cannot grow /metrics with made-up names.
- models: loads (``model_runner_model_loads_total``, ``model_runner_model_load_duration_seconds``, by
  model and outcome: runner.serving.loading), swaps (a process replacing the version it serves:
  ``model_runner_model_swaps_total``, ``model_runner_model_swap_duration_seconds``: the registry) and
  the version each live process serves (``model_runner_model_version``, 0 once deleted).
- calls that do not stop (runner.serving.stuck_calls): ``model_runner_abandoned_calls_total`` (a call
  answered at its deadline while the model ran on) and ``model_runner_stuck_calls`` (still running past
  the deadline by ``stuck_grace``, in live processes), by model and version.
- adaptive batching (runner.serving.batching): ``model_runner_batch_size`` (requests per model call) and
  ``model_runner_batch_queue_wait_seconds`` (each batched request's wait for its call), by model and
  method.
- processes: one ``model_runner_serving_processes`` per live serving process, its CPU, memory, file
  descriptors and threads (``model_runner_process_*``), and its JVM's heap, Metaspace, classes and
  garbage collections (``model_runner_jvm_*``), by ``process`` kind and pid. In multiprocess mode a
  collector runs only in the scraping process, so each process samples its own figures into gauges
  on its registry's heartbeat (:func:`sample_process`, every second).
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import tempfile
import threading
import time
from bisect import bisect_right
from collections.abc import Callable
from contextvars import ContextVar, Token
from pathlib import Path
from threading import get_ident
from types import TracebackType
from typing import Any, Final, ParamSpec, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.process_collector import ProcessCollector

from runner.errors import Kind, ModelRunnerError
from runner.runtimes import jvm_stats
from runner.serving.access import current_access, flush_all
from runner.store.files import pid_alive

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
PROTOCOLS: Final = ("http", "grpc", "oip-http", "oip-grpc")
UNKNOWN: Final = "unknown"
"""The label value of a model, version or method a request named that is not served."""
OK: Final = "ok"
"""The outcome of a request answered without error (otherwise: its error kind)."""

REQUEST_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
LOAD_BUCKETS: Final = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
BATCH_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
SAMPLE_INTERVAL: Final = 1.0
"""Seconds between two samples of a process's own figures (process and JVM gauges)."""

_REQUEST_LABELS: Final = ("model", "version", "method", "protocol", "outcome")


def multiprocess_dir() -> str | None:
    """The folder every serving process writes its figures to (None: this process only)."""
    return os.environ.get(MULTIPROC_ENV) or None


class _Metrics:
    """Every metric of the service, built once per process (see :func:`_metrics`)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        r = registry

        def histogram(name: str, text: str, labels: tuple[str, ...], buckets: tuple[float, ...]) -> Histogram:
            return Histogram(name, text, labels, buckets=buckets, registry=r)

        self.requests = Counter(
            "model_runner_requests_total", "Predictions answered.", _REQUEST_LABELS, registry=r
        )
        self.duration = histogram(
            "model_runner_request_duration_seconds",
            "Time to answer a prediction (the data plane's work: decoding, the model call, encoding).",
            _REQUEST_LABELS,
            REQUEST_BUCKETS,
        )
        self.in_flight = Gauge(
            "model_runner_requests_in_flight",
            "Predictions being answered now.",
            _REQUEST_LABELS[:-1],
            multiprocess_mode="livesum",
            registry=r,
        )
        self.loads = Counter(
            "model_runner_model_loads_total",
            "Model versions loaded by a serving process (outcome: ok or the error kind).",
            ("model", "outcome"),
            registry=r,
        )
        self.load_duration = histogram(
            "model_runner_model_load_duration_seconds",
            "Time to load a model version in a serving process (bundle, contract, model).",
            ("model", "outcome"),
            LOAD_BUCKETS,
        )
        self.swaps = Counter(
            "model_runner_model_swaps_total",
            "Times a serving process started serving another version of a model (each process counts its own).",
            ("model",),
            registry=r,
        )
        self.swap_duration = histogram(
            "model_runner_model_swap_duration_seconds",
            "From a serving process starting to load a new version to serving it.",
            ("model",),
            LOAD_BUCKETS,
        )
        self.version = Gauge(
            "model_runner_model_version",
            "Version of each model a live serving process serves (0: no longer served).",
            ("model", "process"),
            multiprocess_mode="liveall",
            registry=r,
        )
        self.admin = Counter(
            "model_runner_admin_changes_total",
            "Admin changes (upload, proto, rollback, delete) answered by a serving process.",
            ("model", "action"),
            registry=r,
        )
        self.abandoned = Counter(
            "model_runner_abandoned_calls_total",
            "Calls whose deadline passed while the model still ran (answered DeadlineExceeded; the model's "
            "thread could not be stopped and ran on).",
            ("model", "version"),
            registry=r,
        )
        self.stuck = Gauge(
            "model_runner_stuck_calls",
            "Calls still running past their deadline by stuck_grace, in live serving processes.",
            ("model", "version"),
            multiprocess_mode="livesum",
            registry=r,
        )
        self.batch_size = histogram(
            "model_runner_batch_size",
            "Requests merged into one model call by adaptive batching (runner.serving.batching).",
            ("model", "method"),
            BATCH_BUCKETS,
        )
        self.batch_wait = histogram(
            "model_runner_batch_queue_wait_seconds",
            "Time a batched request waited for its batch's model call to start.",
            ("model", "method"),
            REQUEST_BUCKETS,
        )
        self.processes = Gauge(
            "model_runner_serving_processes",
            "Live serving processes.",
            ("process",),
            multiprocess_mode="livesum",
            registry=r,
        )

        def per_process(name: str, text: str, extra: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, text, ("process", *extra), multiprocess_mode="liveall", registry=r)

        self.process: dict[str, Gauge] = {
            "process_cpu_seconds_total": per_process(
                "model_runner_process_cpu_seconds", "CPU time of a serving process (user + system)."
            ),
            "process_resident_memory_bytes": per_process(
                "model_runner_process_resident_memory_bytes", "Resident memory of a serving process."
            ),
            "process_virtual_memory_bytes": per_process(
                "model_runner_process_virtual_memory_bytes", "Virtual memory of a serving process."
            ),
            "process_open_fds": per_process(
                "model_runner_process_open_fds", "Open file descriptors of a serving process."
            ),
            "process_max_fds": per_process(
                "model_runner_process_max_fds", "File descriptor limit of a serving process."
            ),
            "process_start_time_seconds": per_process(
                "model_runner_process_start_time_seconds", "Start time of a serving process (Unix time)."
            ),
        }
        self.threads = per_process("model_runner_process_threads", "Python threads of a serving process.")
        self.jvm: dict[str, Gauge] = {
            "heap_used": per_process("model_runner_jvm_heap_used_bytes", "JVM heap in use."),
            "heap_committed": per_process("model_runner_jvm_heap_committed_bytes", "JVM heap committed."),
            "heap_max": per_process("model_runner_jvm_heap_max_bytes", "JVM heap limit (-1: none)."),
            "metaspace_used": per_process("model_runner_jvm_metaspace_used_bytes", "JVM Metaspace in use."),
            "loaded_classes": per_process(
                "model_runner_jvm_classes_loaded", "Classes loaded in the JVM now."
            ),
            "unloaded_classes": per_process(
                "model_runner_jvm_classes_unloaded", "Classes the JVM unloaded since it started."
            ),
        }
        self.gc_collections = per_process(
            "model_runner_jvm_gc_collections", "Collections by each JVM garbage collector.", ("gc",)
        )
        self.gc_seconds = per_process(
            "model_runner_jvm_gc_time_seconds", "Time spent by each JVM garbage collector.", ("gc",)
        )
        self._proc = ProcessCollector(registry=None)


_built: _Metrics | None = None
_build_lock = threading.Lock()
_local_registry = CollectorRegistry(auto_describe=True)


def _metrics() -> _Metrics:
    """The metrics of this process, built at first use: in multiprocess mode when the variable is set
    (whatever imported prometheus_client before it was set)."""
    global _built
    if _built is None:
        with _build_lock:
            if _built is None:
                if multiprocess_dir() is not None and not getattr(values.ValueClass, "_multiprocess", False):
                    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
                _built = _Metrics(None if multiprocess_dir() else _local_registry)
    return _built


# ----------------------------------------------------------------------------------------- requests


class Tracking:
    """One prediction being answered: a context manager (:func:`track`) that counts it on exit, with
    its outcome (``ok``, or the kind of the error leaving it) and its duration, under the labels
    :func:`serving` gave. A tracking opened while another is open is the same request: the outer one
    counts (an edge may open one to count what it refuses before the data plane, which opens one too)."""

    __slots__ = ("_flying", "_labels", "_protocol", "_started", "_token")

    def __init__(self, protocol: str) -> None:
        self._protocol = protocol
        self._labels: tuple[str, str, str] = (UNKNOWN, UNKNOWN, UNKNOWN)
        self._flying = False
        self._started = 0.0
        self._token: Token[Tracking | None] | None = None

    def __enter__(self) -> Tracking:
        if _tracking.get() is None:
            self._token = _tracking.set(self)
            self._started = time.perf_counter()
        return self

    def serving(self, model: str, version: int, method: str | None = None) -> None:
        labels = (model, str(version), method if method is not None else UNKNOWN)
        if labels == self._labels:
            return
        self._labels = labels
        # the thread's slot of calls in flight (_Recorder), set here and cleared in __exit__
        if method is not None:
            self._flying = True
            _recorder._slots[get_ident()] = (*labels, self._protocol)
        elif self._flying:  # relabelled (routed again after a swap): no longer in flight there
            self._flying = False
            _recorder._slots[get_ident()] = None
        access = current_access()
        if access is not None:
            access.model, access.version = model, version

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._token is None:
            return  # nested: the outer tracking counts
        _tracking.reset(self._token)
        self._token = None
        if self._flying:
            self._flying = False
            _recorder._slots[get_ident()] = None
        now = time.perf_counter()
        outcome = OK if error is None else _outcome(error)
        _recorder.done((*self._labels, self._protocol, outcome), now - self._started, now)


def _outcome(error: BaseException | None) -> str:
    if error is None:
        return OK
    if isinstance(error, ModelRunnerError):
        return error.kind.value
    return Kind.INTERNAL.value


class _Recorder:
    """The predictions of this process, gathered in memory on the hot path and written into the metrics
    at most every FLUSH_INTERVAL: by the request that finds the last write that old (no thread of its
    own: one more thread waking up would take the GIL from the requests), by the registry's heartbeat
    every second when requests stop, and by the process answering a scrape, first. A few writes per
    label set and interval instead of five file writes per request. A process killed outright loses what
    it answered since its last write at most.

    Answered predictions are durations listed by label set (appended under an uncontended lock; a write
    sorts each list and counts its buckets by bisection: no Python loop over the requests). Calls in
    flight are one slot per thread (a thread answers one call at a time), set and cleared without a lock
    (by :class:`Tracking`, directly), and counted by label set at each write."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done: dict[tuple[str, ...], list[float]] = {}  # labels + outcome -> seconds of each
        self._slots: dict[int, tuple[str, ...] | None] = {}  # thread -> labels of its call in flight
        self._published: dict[tuple[str, ...], int] = {}  # in-flight counts last written
        self._write_lock = threading.Lock()  # one write at a time
        self._due = 0.0  # time.perf_counter() of the next write by a request
        self._children: dict[tuple[str, ...], tuple[Any, Any]] = {}
        self._gauges: dict[tuple[str, ...], Any] = {}
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        # a forked child starts empty: what is pending is its parent's to write
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._done, self._slots, self._published = {}, {}, {}
        self._due = 0.0

    def done(self, key: tuple[str, ...], seconds: float, now: float) -> None:
        """A prediction answered (``key``: its labels and outcome) at ``now`` (time.perf_counter(): the
        caller's end of the duration, one clock read less)."""
        with self._lock:
            durations = self._done.get(key)
            if durations is None:
                self._done[key] = [seconds]
            else:
                durations.append(seconds)
        if now >= self._due and self._write_lock.acquire(blocking=False):
            try:
                self._write()
            except Exception:  # counting must never fail a request
                log.exception("writing the request metrics failed")
            finally:
                self._write_lock.release()

    def flush(self) -> None:
        """Write what was gathered since the last write into the metrics."""
        with self._write_lock:
            self._write()

    def _write(self) -> None:
        self._due = time.perf_counter() + FLUSH_INTERVAL
        with self._lock:
            done, self._done = self._done, {}
        flying: dict[tuple[str, ...], int] = {}
        for labels in list(self._slots.values()):  # list(): one copy, made while holding the GIL
            if labels is not None:
                flying[labels] = flying.get(labels, 0) + 1
        if not done and flying == self._published:
            return
        m = _metrics()
        for key, durations in done.items():
            total = sum(durations)  # before sorting: the order they were answered in
            durations.sort()
            counts: list[float] = []  # per bucket (le each bound, then +Inf), each counted once
            below = 0
            for bound in REQUEST_BUCKETS:
                upto = bisect_right(durations, bound)
                counts.append(upto - below)
                below = upto
            counts.append(len(durations) - below)
            children = self._children.get(key)
            if children is None:
                children = self._children[key] = (m.requests.labels(*key), m.duration.labels(*key))
            counter, histogram = children
            # the histogram first: a scrape (another process reading the files meanwhile) that sees a
            # request counted also sees its duration
            _observe_many(histogram, total, counts)
            counter.inc(len(durations))
        for key in flying.keys() | self._published.keys():
            value = flying.get(key, 0)
            if self._published.get(key) != value:
                gauge = self._gauges.get(key)
                if gauge is None:
                    gauge = self._gauges[key] = m.in_flight.labels(*key)
                gauge.set(value)
        self._published = flying


def _observe_many(histogram: Any, total: float, counts: list[float]) -> None:
    """Observations into a histogram child at once: their sum, and how many fell in each bucket (the
    bucket counts prometheus_client keeps per bucket, each counted once: it adds them up when read)."""
    values = getattr(histogram, "_buckets", None)
    value_sum = getattr(histogram, "_sum", None)
    if values is None or value_sum is None or len(values) != len(counts):
        raise RuntimeError("prometheus_client's Histogram no longer has _buckets and _sum")
    value_sum.inc(total)
    for bucket, n in zip(values, counts, strict=True):
        if n:
            bucket.inc(n)


_tracking: ContextVar[Tracking | None] = ContextVar("model_runner_tracking", default=None)
_recorder = _Recorder()

FLUSH_INTERVAL: Final = 0.1
"""Seconds between two writes of a process's request counts into the metrics while it answers
requests (see _Recorder)."""


def flush() -> None:
    """Write what this process gathered so far now: its request counts into the metrics (a scrape does
    it for the process answering it), its access lines (runner.serving.access). A stopping process does
    it last (Registry.stop)."""
    _recorder.flush()
    flush_all()


class _Nested:
    """The tracking of a request already tracked: nothing to count (the outer one does)."""

    __slots__ = ()

    def __enter__(self) -> _Nested:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


_NESTED: Final = _Nested()


def track(protocol: str) -> Tracking | _Nested:
    """Count the prediction answered inside ``with track(protocol): ...`` (protocol: one of PROTOCOLS)."""
    return Tracking(protocol) if _tracking.get() is None else _NESTED


def tracked(protocol: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator: each call of the function is one prediction, tracked (:func:`track`) under ``protocol``
    (for an edge's handler that refuses some requests before the data plane)."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with track(protocol):
                return fn(*args, **kwargs)

        return wrapper

    return decorate


def refused(protocol: str, error: BaseException) -> None:
    """Count a prediction an edge refused before it could track it (e.g. a URL that is not UTF-8)."""
    _recorder.done((UNKNOWN, UNKNOWN, UNKNOWN, protocol, _outcome(error)), 0.0, time.perf_counter())


def serving(model: str, version: int, method: str | None = None) -> None:
    """The prediction being answered holds ``version`` of the served ``model`` (its labels from now on);
    ``method``: one of its methods, once the request is known to call one (None before, or when it named
    none of them), counted in flight from then on. Outside a tracking (:func:`track`): nothing."""
    tracking = _tracking.get()
    if tracking is not None:
        tracking.serving(model, version, method)


# ------------------------------------------------------------------------------------------- models


def model_loaded(model: str, outcome: str, seconds: float) -> None:
    """A serving process loaded (or failed to load: ``outcome`` is the error kind) a model version."""
    m = _metrics()
    m.loads.labels(model, outcome).inc()
    m.load_duration.labels(model, outcome).observe(seconds)


def model_served(model: str, version: int | None, previous: int | None, seconds: float, process: str) -> None:
    """This process serves ``version`` of ``model`` now (None: no longer serves it), after ``previous``
    (None: the first version it serves); ``seconds`` from the start of that version's load."""
    m = _metrics()
    m.version.labels(model, process).set(version or 0)
    if version is not None and previous is not None:
        m.swaps.labels(model).inc()
        m.swap_duration.labels(model).observe(seconds)


def batch_called(model: str, method: str, size: int, waits: list[float]) -> None:
    """Adaptive batching made one model call of ``size`` requests, which waited ``waits`` seconds."""
    m = _metrics()
    m.batch_size.labels(model, method).observe(size)
    wait = m.batch_wait.labels(model, method)
    for seconds in waits:
        wait.observe(seconds)


def admin_change(model: str, action: str) -> None:
    """An admin change (upload, proto, rollback, delete) answered by this process."""
    _metrics().admin.labels(model, action).inc()


def calls_abandoned(model: str, version: str, count: int) -> None:
    """``count`` calls of this process were abandoned at their deadline while the model still ran."""
    _metrics().abandoned.labels(model, version).inc(count)


_stuck_published: set[tuple[str, str]] = set()


def stuck_calls(counts: dict[tuple[str, str], int]) -> None:
    """The calls stuck in this process now, by (model, version) (those absent: none any more)."""
    global _stuck_published
    m = _metrics()
    for key in counts.keys() | _stuck_published:
        m.stuck.labels(*key).set(counts.get(key, 0))
    _stuck_published = {key for key, n in counts.items() if n}


# ---------------------------------------------------------------------------------------- processes


def sample_process(process: str) -> None:
    """Sample this serving process's own figures into its gauges: process (CPU, memory, descriptors,
    threads) and its JVM's, if it runs one. Never raises (a sample is best effort)."""
    try:
        m = _metrics()
        m.processes.labels(process).set(1)
        for family in m._proc.collect():
            for sample in family.samples:
                gauge = m.process.get(sample.name)
                if gauge is not None:
                    gauge.labels(process).set(sample.value)
        m.threads.labels(process).set(threading.active_count())
        stats = jvm_stats()
        if stats:
            for key, gauge in m.jvm.items():
                value = stats.get(key)
                if isinstance(value, (int, float)):
                    gauge.labels(process).set(value)
            for gc in stats.get("gc") or ():
                m.gc_collections.labels(process, str(gc["name"])).set(gc["collections"])
                m.gc_seconds.labels(process, str(gc["name"])).set(gc["time_ms"] / 1000.0)
    except Exception:  # a failed sample must never hurt serving
        log.debug("sampling the process metrics failed", exc_info=True)


def process_ended(pid: int) -> None:
    """A serving process has ended: its gauges go (its counters stay in the sums). For the parent of
    serving processes (gunicorn's master, `serve` for the gRPC processes)."""
    folder = multiprocess_dir()
    if folder is not None:
        try:
            mark_process_dead(pid, folder)  # type: ignore[no-untyped-call]
        except OSError:
            log.warning("cannot remove the gauges of ended process %d from %s", pid, folder, exc_info=True)


# ------------------------------------------------------------------------------ the shared folder


def prepare_multiprocess(base: Path | None = None) -> Path:
    """Make a fresh folder for the figures of every serving process this process will start, and set
    ``PROMETHEUS_MULTIPROC_DIR`` to it (before any serving process starts: they inherit it). One folder
    per `serve` process under ``base`` (default: ``<tmp>/model-runner-metrics-<uid>``); the folders of
    `serve` processes that are gone are removed."""
    if base is None:
        base = Path(tempfile.gettempdir()) / f"model-runner-metrics-{os.getuid()}"
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    for child in base.iterdir():
        if child.name.isdigit() and int(child.name) != os.getpid() and not pid_alive(int(child.name)):
            shutil.rmtree(child, ignore_errors=True)
    folder = base / str(os.getpid())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700)
    os.environ[MULTIPROC_ENV] = str(folder)
    return folder


def serve_port(host: str, port: int) -> int:
    """Serve the scrape of every serving process on ``host``:``port`` (0: a free one) from a daemon
    thread of this process; the port bound. Needs the shared folder (:func:`prepare_multiprocess`)."""
    folder = multiprocess_dir()
    if folder is None:
        raise RuntimeError(f"{MULTIPROC_ENV} is not set: no figures to serve")
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
    server, _thread = start_http_server(port, host, registry)
    return int(server.server_port)


# ------------------------------------------------------------------------------------------ scrape


def render(process: str | None = None) -> tuple[bytes, str]:
    """The Prometheus text of every serving process (multiprocess mode) or of this one; and its media
    type. ``process``: this process's kind, to sample its own figures first."""
    flush()
    if process is not None:
        sample_process(process)
    folder = multiprocess_dir()
    if folder is None:
        _metrics()
        return generate_latest(_local_registry), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST

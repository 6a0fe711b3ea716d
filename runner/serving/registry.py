"""The live models of one serving process.

The registry polls the repository's ``current`` pointers (tiny files: a listdir and a few reads every
``poll_interval``). When a pointer moves it loads the new version *beside* the old one, flips the entry
atomically, reports the flip in its serving record, and closes the old version once the calls in
flight on it have finished (reference counts taken by :meth:`Registry.acquire`). A load that fails
leaves the old version serving; the failure is logged, listed by :meth:`load_errors` and put in the
serving record so an admin waiting for the swap learns about it at once.

Each model loads on a thread of its own (``registry-load-<name>``, at most one per model), so a slow
load of one model never delays a swap of another: the watcher only starts loads and unloads. When the
pointer moves while a load runs, the loader loads the newest version next; a version that is no longer
current when its load ends (superseded, rolled back over, deleted) is closed, never served. Bounding a
load in time is the hooks' job (BundleLoader: ``load_timeout``, reported as a load failure).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Self

from runner.bundle import Metadata
from runner.contract import Contract, RequiredFields
from runner.errors import ModelRunnerError, NotFound, NotReady
from runner.runtimes import Model
from runner.serving import metrics
from runner.store import Repository

log = logging.getLogger(__name__)

_ids = itertools.count()


@dataclass(frozen=True)
class LoadedVersion:
    """One loaded version of a model: what a call holds while it runs."""

    name: str
    version: int
    metadata: Metadata
    contract: Contract
    model: Model
    required: RequiredFields = field(init=False, repr=False, compare=False)
    """The fields each rpc's requests must set (metadata ``required`` resolved against the contract;
    InvalidBundle here when they do not fit it), checked on every request path."""

    def __post_init__(self) -> None:
        spec = getattr(self.metadata, "required", None)
        object.__setattr__(self, "required", RequiredFields.build(self.contract, spec))


class RegistryHooks(Protocol):
    """What the registry calls to turn stored versions into live ones. The registry follows the
    repository's pointers, flips and drains; the hooks know the runtimes and the bundle's files
    (runner.serving.loading.BundleLoader is the one used for serving)."""

    def prepare(self, current: Mapping[str, Path]) -> None:
        """Once, before the first load, with the folder of every current version (e.g. start the JVM
        with the options all of them need). Must not raise for a broken bundle: its load reports it."""

    def load(self, name: str, version: int, version_dir: Path) -> LoadedVersion:
        """Load a stored version beside the one serving; any exception leaves the old one serving.
        Runs on the model's loader thread, concurrently with other models' loads; it should end within
        a bounded time (a load that never ends holds only its own model back)."""

    def unload(self, loaded: LoadedVersion) -> None:
        """Close a version nobody holds any more (its calls have drained)."""

    def facts(self) -> dict[str, object]:
        """Extra facts about this process for its serving record (e.g. the JVM's options)."""


@dataclass
class _Loading:
    """A model's loader thread: the version it loads now; ``done`` once the thread has ended."""

    version: int
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Slot:
    loaded: LoadedVersion
    refs: int = 0
    retired: bool = False
    closed: bool = False
    loaded_at: float = field(default_factory=time.time)


class _Hold:
    """One call's hold on a model's current version (:meth:`Registry.acquire`). A class, not a
    generator-based context manager: it is entered on every prediction, and contextlib's machinery
    costs several times the work it wraps."""

    __slots__ = ("_name", "_registry", "_slot")

    def __init__(self, registry: Registry, name: str) -> None:
        self._registry = registry
        self._name = name
        self._slot: _Slot | None = None

    def __enter__(self) -> LoadedVersion:
        registry = self._registry
        with registry._lock:
            slot = registry._live.get(self._name)
            if slot is None:
                raise registry._missing(self._name)
            slot.refs += 1
        self._slot = slot
        return slot.loaded

    def __exit__(self, *exc: object) -> None:
        slot, self._slot = self._slot, None
        if slot is None:
            return
        registry = self._registry
        with registry._lock:
            slot.refs -= 1
            close = slot.retired and slot.refs == 0 and not slot.closed
            if close:
                slot.closed = True
        if close:  # retired, and this was its last call
            registry._close(slot)


def _describe(err: BaseException) -> str:
    if isinstance(err, ModelRunnerError):
        return f"{err.kind.value}: {err.message}"
    return f"{type(err).__name__}: {err}"


class Registry:
    """Thread-safe set of live models, following the repository."""

    def __init__(
        self,
        repository: Repository,
        hooks: RegistryHooks,
        *,
        process_kind: str = "http",
        poll_interval: float = 0.1,
        heartbeat_interval: float = 1.0,
        process_id: str | None = None,
        listening: bool = True,
    ):
        """``hooks`` load and close versions (runner.serving.loading.BundleLoader for serving).

        ``listening=False``: the edge starts taking calls only after the first loads (a gRPC server
        starts after them), and says so with :meth:`mark_listening`; until then its record says it does
        not listen, so `serve` does not announce a port that refuses connections."""
        self.repository = repository
        self.hooks = hooks
        self.process_kind = process_kind
        self.poll_interval = poll_interval
        self.heartbeat_interval = heartbeat_interval
        n = next(_ids)
        host = repository.fleet.safe_host_id  # the host_id setting: told apart from other hosts' processes
        self.process_id = process_id or f"{host}-{os.getpid()}" + (f"-{n}" if n else "")
        self._lock = threading.Lock()  # guards _live, _wanted, _errors, _loading and slot ref counts
        self._sync_lock = threading.Lock()  # one synchronisation at a time
        self._live: dict[str, _Slot] = {}
        self._wanted: dict[str, int] = {}  # the pointers as last seen
        self._errors: dict[str, tuple[int, str]] = {}  # name -> (version that failed, why)
        self._loading: dict[str, _Loading] = {}  # name -> its loader thread, while it runs
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = False
        self._first_loads_done = False
        self._heartbeat_lock = threading.Lock()  # one record write at a time, never an older one last
        self._retiring = False
        self._listening = listening

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Load every current model (concurrently), then follow the repository from a background thread."""
        if self._started:
            return
        self._stop.clear()
        self._prepare()
        self._started = True
        # Heartbeats run on their own thread, from before the first load: a swap published while this
        # process loads must wait for it (its record says it serves nothing yet), and a slow load must
        # not make it look dead (a publisher would then stop waiting while it serves an old version).
        self._heartbeat()
        beat = threading.Thread(
            target=self._beat, name=f"registry-heartbeat-{self.process_kind}", daemon=True
        )
        self._threads = [beat]
        beat.start()
        self.poll_now()
        with self._lock:
            self._first_loads_done = True  # ready from now on when every current model is loaded
        self._heartbeat()
        watch = threading.Thread(target=self._run, name=f"registry-watch-{self.process_kind}", daemon=True)
        watch.start()
        self._threads.append(watch)

    def stop(self) -> None:
        """Stop following; close every version (those in use close when their last call ends)."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self._threads = []
        with self._lock:
            slots = list(self._live.values())
            self._live.clear()
            self._wanted.clear()
            self._loading.clear()  # a loader still running closes what it loads (see _load_and_flip)
            self._started = False
            self._first_loads_done = False
        for slot in slots:
            self._retire(slot)
        metrics.flush()  # what this process answered last: counted, and its access lines written
        with self._heartbeat_lock, contextlib.suppress(OSError):
            self.repository.fleet.remove_serving(self.process_id)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self._sync()  # starts loads without waiting; writes the serving record after every change
            except Exception:  # the watcher must survive anything
                log.exception("registry %s: poll failed", self.process_id)

    def _beat(self) -> None:
        metrics.sample_process(self.process_kind)
        while not self._stop.wait(self.heartbeat_interval):
            self._heartbeat()
            metrics.sample_process(self.process_kind)  # this process's own gauges (runner.serving.metrics)
            metrics.flush()  # what requests gathered since their last write (when they have stopped)

    def _prepare(self) -> None:
        current = {
            name: self.repository.version_dir(name, v) for name, v in self.repository.pointers().items()
        }
        try:
            self.hooks.prepare(current)
        except Exception as err:  # noqa: BLE001 - each load reports its own failure
            log.error("registry %s: preparing the runtimes failed: %s", self.process_id, _describe(err))

    # ------------------------------------------------------------------ following the repository

    def poll_now(self) -> bool:
        """Bring the live models in line with the repository's pointers now, and wait for the loads
        this starts or finds running to end (each model's on its own thread); True if anything changed."""
        changed, loads = self._sync()
        for load in loads:
            load.done.wait()
        return changed or bool(loads)

    def _sync(self) -> tuple[bool, list[_Loading]]:
        """Start a loader for each model whose pointer moved (none for one already loading: it loads the
        newest version next), unload deleted models; the loaders started or found running."""
        with self._sync_lock:
            pointers = self.repository.pointers()
            changed = False
            loads: list[_Loading] = []
            start: list[tuple[str, _Loading]] = []
            with self._lock:
                self._wanted = dict(pointers)
                for name, version in pointers.items():
                    slot = self._live.get(name)
                    if slot is not None and slot.loaded.version == version:
                        changed |= self._errors.pop(name, None) is not None
                        continue
                    running = self._loading.get(name)
                    if running is not None:
                        loads.append(running)
                    elif self._errors.get(name, (None, ""))[0] != version and not self._stop.is_set():
                        running = self._loading[name] = _Loading(version)
                        loads.append(running)
                        start.append((name, running))
                    # else: that version already failed here; retried when the pointer moves again
                for name in set(self._errors) - set(pointers):
                    del self._errors[name]
                    changed = True
                gone = sorted(set(self._live) - set(pointers))
            for name, load in start:
                thread = threading.Thread(
                    target=self._loader, args=(name, load), name=f"registry-load-{name}", daemon=True
                )
                thread.start()
            for name in gone:
                self._unload(name)
                changed = True
            if changed:
                self._heartbeat()
            return changed, loads

    def _loader(self, name: str, load: _Loading) -> None:
        """A model's loader thread: loads the version its pointer names until it serves it (or that
        version failed), then ends."""
        try:
            while True:
                with self._lock:
                    if self._loading.get(name) is not load:
                        return  # the registry stopped
                    version = self._wanted.get(name)
                    slot = self._live.get(name)
                    if (
                        self._stop.is_set()
                        or version is None
                        or (slot is not None and slot.loaded.version == version)
                        or self._errors.get(name, (None, ""))[0] == version
                    ):
                        del self._loading[name]
                        return
                    load.version = version
                self._load_and_flip(name, version, load)
        except Exception:  # never leave the model marked as loading for ever
            log.exception("registry %s: the loader of %s failed", self.process_id, name)
            with self._lock:
                if self._loading.get(name) is load:
                    del self._loading[name]
        finally:
            load.done.set()

    def _load_and_flip(self, name: str, version: int, load: _Loading) -> None:
        began = time.monotonic()
        try:
            loaded = self.hooks.load(name, version, self.repository.version_dir(name, version))
        except Exception as err:  # noqa: BLE001 - any failure leaves the old version serving
            why = _describe(err)
            log.error(
                "registry %s: model %s version %d failed to load, previous version keeps serving: %s",
                self.process_id,
                name,
                version,
                why,
            )
            with self._lock:
                if self._loading.get(name) is not load:
                    return  # stopped meanwhile
                self._errors[name] = (version, why)
            self._heartbeat()  # a publisher waiting for this version learns why at once
            return
        try:  # the pointer now, not as last polled: a load can take long, and a flip must not go back
            current = self.repository.current_version(name)
        except OSError:
            current = version  # cannot tell: the next poll decides
        close: _Slot | None = None
        flipped = False
        previous: int | None = None
        with self._lock:
            if self._loading.get(name) is load and current != version:
                # the pointer moved on (superseded, rolled back over, deleted): the loader loads `current` next
                if current is None:
                    self._wanted.pop(name, None)
                else:
                    self._wanted[name] = current
            if self._loading.get(name) is not load or self._wanted.get(name) != version:
                # stopped, or no longer the version wanted
                close = self._retire_locked(_Slot(loaded))
            else:
                old = self._live.get(name)
                previous = old.loaded.version if old is not None else None
                self._live[name] = _Slot(loaded)
                self._errors.pop(name, None)
                # Retired in the same critical section as the flip: the last call to release it closes it.
                close = self._retire_locked(old) if old is not None else None
                flipped = True
        if flipped:
            log.info("registry %s: model %s now serves version %d", self.process_id, name, version)
            metrics.model_served(name, version, previous, time.monotonic() - began, self.process_kind)
            self._heartbeat()  # tell waiting publishers first; closing the old one may take a while
        else:
            log.info(
                "registry %s: model %s version %d loaded but no longer wanted: closing it",
                self.process_id,
                name,
                version,
            )
        if close is not None:
            self._close(close)

    def _unload(self, name: str) -> None:
        with self._lock:
            old = self._live.pop(name, None)
            close = self._retire_locked(old) if old is not None else None
        log.info("registry %s: model %s deleted", self.process_id, name)
        if old is not None:
            metrics.model_served(name, None, old.loaded.version, 0.0, self.process_kind)
        self._heartbeat()
        if close is not None:
            self._close(close)

    @staticmethod
    def _retire_locked(slot: _Slot) -> _Slot | None:
        """Mark a version as no longer current (caller holds the lock); returns it when nobody holds it
        any more and the caller must close it (outside the lock)."""
        slot.retired = True
        if slot.refs == 0 and not slot.closed:
            slot.closed = True
            return slot
        return None

    def _retire(self, slot: _Slot) -> None:
        """Mark a version as no longer current; close it now if no call holds it."""
        with self._lock:
            close = self._retire_locked(slot)
        if close is not None:
            self._close(close)

    def _close(self, slot: _Slot) -> None:
        try:
            self.hooks.unload(slot.loaded)
        except Exception:
            log.exception(
                "registry %s: closing %s version %d failed",
                self.process_id,
                slot.loaded.name,
                slot.loaded.version,
            )
        else:
            log.info(
                "registry %s: closed %s version %d", self.process_id, slot.loaded.name, slot.loaded.version
            )

    def mark_retiring(self) -> None:
        """This process is retiring (runner.serving.stuck_calls): its serving record says so at once, so
        that its peers do not retire at the same time."""
        self._retiring = True
        self._heartbeat()

    def _heartbeat(self) -> None:
        """Write this process's serving record (what it serves now, load errors, readiness)."""
        with self._heartbeat_lock:
            if self._stop.is_set():
                return
            with self._lock:
                models = {name: slot.loaded.version for name, slot in self._live.items()}
                errors = {name: {"version": v, "error": why} for name, (v, why) in self._errors.items()}
                ready = self._ready_locked()
            try:
                self.repository.fleet.record_serving(
                    self.process_id,
                    {
                        "pid": os.getpid(),
                        "kind": self.process_kind,
                        "models": models,
                        "errors": errors,
                        "ready": ready,
                        "listening": self._listening,
                        **({"retiring": True} if self._retiring else {}),
                        **self.hooks.facts(),
                    },
                )
            except OSError:
                log.exception("registry %s: cannot write its serving record", self.process_id)

    # ------------------------------------------------------------------ serving

    def acquire(self, name: str) -> _Hold:
        """Hold the current version of ``name`` for one call (``with registry.acquire(name) as
        loaded:``); it is not closed before the call ends.

        NotFound for an unknown model; NotReady while it is not loaded (starting, or failing to load),
        both raised on entering the ``with``.
        """
        return _Hold(self, name)

    def _missing(self, name: str) -> ModelRunnerError:
        if not self._started:
            return NotReady("the model registry is not started yet", {"model": name})
        if name in self._wanted:
            version = self._wanted[name]
            error = self._errors.get(name)
            if error is not None:
                return NotReady(
                    f"model {name!r} version {error[0]} failed to load: {error[1]}",
                    {"model": name, "version": error[0], "error": error[1]},
                )
            return NotReady(
                f"model {name!r} version {version} is still loading", {"model": name, "version": version}
            )
        return NotFound(f"no model named {name!r}", {"model": name, "models": sorted(self._live)})

    def snapshot(self) -> dict[str, LoadedVersion]:
        """The live version of every loaded model."""
        with self._lock:
            return {name: slot.loaded for name, slot in sorted(self._live.items())}

    def mark_listening(self) -> None:
        """The edge now takes calls (see ``listening``)."""
        self._listening = True
        self._heartbeat()

    def _ready_locked(self) -> bool:
        return self._started and self._first_loads_done and all(name in self._live for name in self._wanted)

    def ready(self) -> bool:
        """True once the loads at start have ended (each loaded the version current at its end) and every
        model with a current version in the repository has a loaded version."""
        with self._lock:
            return self._ready_locked()

    def load_errors(self) -> dict[str, str]:
        """{name: why} for models whose current version failed to load in this process."""
        with self._lock:
            return {name: f"version {v}: {why}" for name, (v, why) in sorted(self._errors.items())}

    def in_flight(self) -> dict[str, int]:
        """Calls currently holding each live model (for metrics and tests)."""
        with self._lock:
            return {name: slot.refs for name, slot in self._live.items()}

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""The live models of one serving process.

The registry polls the repository's ``current`` pointers (tiny files: a listdir and a few reads every
``poll_interval``). When a pointer moves it loads the new version *beside* the old one, flips the entry
atomically, reports the flip in its serving record, and closes the old version once the calls in
flight on it have finished (reference counts taken by :meth:`Registry.acquire`). A load that fails
leaves the old version serving; the failure is logged, listed by :meth:`load_errors` and put in the
serving record so an admin waiting for the swap learns about it at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from runner.errors import ModelRunnerError, NotFound, NotReady
from runner.runtimes.java import running_jvm_options
from runner.store import HOST, Repository

log = logging.getLogger(__name__)

_ids = itertools.count()
_SAFE_HOST = re.sub(r"[^A-Za-z0-9_.-]", "_", HOST)[:100] or "host"


@dataclass
class LoadedVersion:
    """One loaded version of a model: what a call holds while it runs."""

    name: str
    version: int
    metadata: Any
    contract: Any
    model: Any
    bundle: Any = None


@dataclass
class _Slot:
    loaded: LoadedVersion
    refs: int = 0
    retired: bool = False
    closed: bool = False
    loaded_at: float = field(default_factory=time.time)


Loader = Callable[[str, int, Path], LoadedVersion]


def load_version(name: str, version: int, version_dir: Path, settings: Any = None) -> LoadedVersion:
    """Open a stored version: bundle, contract, model (the default loader). ``settings`` gives the
    JVM options and heap used if this load starts the JVM."""
    from runner.bundle import open_bundle
    from runner.contract import Contract
    from runner.runtimes import load_model

    bundle = open_bundle(version_dir)
    contract = Contract.compile(bundle.proto_text, include_dir=version_dir)
    model = load_model(version_dir, bundle.metadata, contract, settings)
    return LoadedVersion(name, version, bundle.metadata, contract, model, bundle)


def _describe(err: BaseException) -> str:
    if isinstance(err, ModelRunnerError):
        return f"{err.kind.value}: {err.message}"
    return f"{type(err).__name__}: {err}"


class Registry:
    """Thread-safe set of live models, following the repository."""

    def __init__(
        self,
        repository: Repository,
        *,
        process_kind: str = "http",
        poll_interval: float = 0.1,
        heartbeat_interval: float = 1.0,
        process_id: str | None = None,
        jvm_options: tuple[str, ...] | list[str] = (),
        jvm_max_heap: str | None = None,
        settings: Any = None,
        loader: Loader | None = None,
    ):
        """``settings`` (runner.settings.Settings, default: from the environment) and the explicit
        ``jvm_options``/``jvm_max_heap`` decide how the JVM starts; ``loader`` replaces load_version."""
        self.repository = repository
        self.process_kind = process_kind
        self.poll_interval = poll_interval
        self.heartbeat_interval = heartbeat_interval
        n = next(_ids)
        self.process_id = process_id or f"{_SAFE_HOST}-{os.getpid()}" + (f"-{n}" if n else "")
        self.settings = self._jvm_settings(settings, tuple(jvm_options), jvm_max_heap)
        self._loader = loader or (lambda n, v, d: load_version(n, v, d, self.settings))
        self._lock = threading.Lock()  # guards _live, _wanted, _errors and slot ref counts
        self._sync_lock = threading.Lock()  # one synchronisation at a time
        self._live: dict[str, _Slot] = {}
        self._wanted: dict[str, int] = {}  # the pointers as last seen
        self._errors: dict[str, tuple[int, str]] = {}  # name -> (version that failed, why)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = False
        self._heartbeat_lock = threading.Lock()  # one record write at a time, never an older one last

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Load every current model, then follow the repository from a background thread."""
        if self._started:
            return
        self._stop.clear()
        self._prepare_jvm()
        self._started = True
        self.poll_now()
        self._heartbeat()
        # Heartbeats run on their own thread: a slow model load must not make this process look dead
        # (a publisher would then stop waiting for it while it still serves the old version).
        self._threads = [
            threading.Thread(target=self._run, name=f"registry-watch-{self.process_kind}", daemon=True),
            threading.Thread(target=self._beat, name=f"registry-heartbeat-{self.process_kind}", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

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
            self._started = False
        for slot in slots:
            self._retire(slot)
        with self._heartbeat_lock, contextlib.suppress(OSError):
            self.repository.remove_serving(self.process_id)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self.poll_now()  # writes the serving record after every change
            except Exception:  # the watcher must survive anything
                log.exception("registry %s: poll failed", self.process_id)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_interval):
            self._heartbeat()

    @staticmethod
    def _jvm_settings(settings: Any, jvm_options: tuple[str, ...], jvm_max_heap: str | None) -> Any:
        from runner.settings import Settings

        settings = settings if settings is not None else Settings.from_env()
        options = tuple(dict.fromkeys([*settings.jvm_options, *jvm_options]))
        return dataclasses.replace(
            settings, jvm_options=options, jvm_max_heap=jvm_max_heap or settings.jvm_max_heap
        )

    def _prepare_jvm(self) -> None:
        """Start the JVM once, before the first Java load, with the union of the options every current
        Java bundle declares (options are fixed at JVM start)."""
        options: list[str] = []
        java = False
        for name, version in self.repository.pointers().items():
            try:
                meta = json.loads((self.repository.version_dir(name, version) / "metadata.json").read_text())
            except (OSError, ValueError):
                continue
            if isinstance(meta, dict) and meta.get("runtime") == "java":
                java = True
                for option in meta.get("jvm_options") or []:
                    if isinstance(option, str) and option not in options:
                        options.append(option)
        if not java:
            return  # no JVM until a Java model arrives (load_model starts it then)
        from runner.runtimes.java import ensure_jvm

        try:
            ensure_jvm(options, self.settings, name="registry")
        except ModelRunnerError as err:
            log.error("registry %s: cannot start the JVM: %s", self.process_id, _describe(err))

    # ------------------------------------------------------------------ following the repository

    def poll_now(self) -> bool:
        """Bring the live models in line with the repository's pointers now; True if anything flipped."""
        with self._sync_lock:
            pointers = self.repository.pointers()
            with self._lock:
                self._wanted = dict(pointers)
                live = {name: slot.loaded.version for name, slot in self._live.items()}
                errors = dict(self._errors)
            changed = False
            for name, version in pointers.items():
                if self._stop.is_set():
                    break
                if live.get(name) == version:
                    if name in errors:
                        with self._lock:
                            self._errors.pop(name, None)
                        changed = True
                    continue
                if errors.get(name, (None,))[0] == version:
                    continue  # already failed; retried when the pointer moves again
                changed |= self._load_and_flip(name, version)
            for name in set(live) - set(pointers):
                self._unload(name)
                changed = True
            for name in set(errors) - set(pointers):
                with self._lock:
                    self._errors.pop(name, None)
                changed = True
            if changed:
                self._heartbeat()
            return changed

    def _load_and_flip(self, name: str, version: int) -> bool:
        try:
            loaded = self._loader(name, version, self.repository.version_dir(name, version))
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
                self._errors[name] = (version, why)
            return True
        close: _Slot | None = None
        with self._lock:
            if self._stop.is_set():
                close = self._retire_locked(_Slot(loaded))  # stopped meanwhile: close what we just loaded
            else:
                old = self._live.get(name)
                self._live[name] = _Slot(loaded)
                self._errors.pop(name, None)
                # Retired in the same critical section as the flip: the last call to release it closes it.
                close = self._retire_locked(old) if old is not None else None
        log.info("registry %s: model %s now serves version %d", self.process_id, name, version)
        self._heartbeat()  # tell waiting publishers first; closing the old one may take a while
        if close is not None:
            self._close(close)
        return True

    def _unload(self, name: str) -> None:
        with self._lock:
            old = self._live.pop(name, None)
            close = self._retire_locked(old) if old is not None else None
        log.info("registry %s: model %s deleted", self.process_id, name)
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
            slot.loaded.model.close()
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
                self.repository.record_serving(
                    self.process_id,
                    {
                        "pid": os.getpid(),
                        "kind": self.process_kind,
                        "models": models,
                        "errors": errors,
                        "ready": ready,
                        # lets a publisher refuse a bundle whose JVM options this process lacks
                        "jvm_options": running_jvm_options(),
                    },
                )
            except OSError:
                log.exception("registry %s: cannot write its serving record", self.process_id)

    # ------------------------------------------------------------------ serving

    @contextlib.contextmanager
    def acquire(self, name: str) -> Iterator[LoadedVersion]:
        """Hold the current version of ``name`` for one call; it is not closed before the call ends.

        NotFound for an unknown model; NotReady while it is not loaded (starting, or failing to load).
        """
        with self._lock:
            slot = self._live.get(name)
            if slot is None:
                raise self._missing(name)
            slot.refs += 1
        try:
            yield slot.loaded
        finally:
            with self._lock:
                slot.refs -= 1
                close = slot.retired and slot.refs == 0 and not slot.closed
                if close:
                    slot.closed = True
            if close:
                self._close(slot)

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

    def _ready_locked(self) -> bool:
        return self._started and all(name in self._live for name in self._wanted)

    def ready(self) -> bool:
        """True when every model with a current version in the repository has a loaded version."""
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

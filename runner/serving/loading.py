"""The registry's hooks for serving: a stored version folder becomes a live model, within a time limit.

This is where the bundle's files and the runtimes meet the registry: open the bundle, compile its
contract, load its model in the runtime it names; close it when drained; start the JVM once with the
options every current Java bundle declares; report the JVM's options in the serving record.

Loads are bounded by ``Settings.load_timeout`` (:func:`run_within`). A thread cannot be stopped safely
in-process (a Python thread not at all; a Java constructor only by means that can corrupt the JVM), so
a load that overruns is *abandoned*: its caller gets :class:`Overran` at once, the load goes on on its
daemon thread, and whatever it returns late is closed. Abandoned loads still running are listed by
:func:`abandoned_loads` and in the serving record, since each still holds a thread (and, for a model
stuck for good, its memory) until the process ends. A runtime in a separate process (isolation per
model) is what can contain such a model fully; in-process, abandoning is the safe choice.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from runner.bundle import Metadata, open_bundle, read_metadata
from runner.contract import Contract
from runner.errors import DeadlineExceeded, Kind, ModelRunnerError
from runner.runtimes import load_model, prepare_runtimes, process_facts
from runner.serving import metrics
from runner.serving.registry import LoadedVersion
from runner.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")


class Overran(Exception):
    """A call run by :func:`run_within` did not end within its limit; it was abandoned. ``earlier``:
    the calls abandoned before this one began that still run (a Python load may have waited for them)."""

    def __init__(self, what: str, limit: float, entry: dict[str, object], earlier: list[dict[str, object]]):
        super().__init__(f"{what} did not end within {limit:g}s")
        self.what = what
        self.limit = limit
        self.entry = entry
        self.earlier = earlier

    def note(self) -> str:
        """'' or a sentence on the earlier abandoned calls still running, for an error message."""
        if not self.earlier:
            return ""
        whats = "; ".join(str(e["what"]) for e in self.earlier[:3]) + (
            "; ..." if len(self.earlier) > 3 else ""
        )
        return (
            f" (this process still runs {len(self.earlier)} load(s) abandoned earlier: {whats}; a Python load waits for "
            "one among them whose bundle shares a module name with it)"
        )


_abandoned: dict[int, dict[str, object]] = {}
_abandoned_lock = threading.Lock()
_abandoned_ids = itertools.count(1)


def abandoned_loads() -> list[dict[str, object]]:
    """The abandoned calls of this process still running: ``{"what", "model", "version", "since",
    "limit", "thread"}`` each (``since``: time.time() when it started), oldest first."""
    with _abandoned_lock:
        return [dict(entry) for entry in _abandoned.values()]


@dataclass
class _Outcome(Generic[T]):
    done: bool = False
    abandoned: bool = False
    result: T | None = None
    error: BaseException | None = None


def run_within(
    fn: Callable[[], T],
    limit: float,
    *,
    what: str,
    thread_name: str,
    close_late: Callable[[T], None] | None = None,
    facts: Mapping[str, object] | None = None,
) -> T:
    """``fn()`` run on a daemon thread: its result (or its exception, raised here) if it ends within
    ``limit`` seconds, else :class:`Overran` right at the limit. An overrun call keeps running, listed
    by :func:`abandoned_loads` (with ``facts``) until it ends; what it returns then goes to
    ``close_late``."""
    lock = threading.Lock()  # decides, once, between "ended in time" and "abandoned"
    finished = threading.Event()
    outcome: _Outcome[T] = _Outcome()
    key = next(_abandoned_ids)
    entry: dict[str, object] = {
        "what": what,
        **(facts or {}),
        "since": time.time(),
        "limit": limit,
        "thread": thread_name,
    }

    def run() -> None:
        result: T | None = None
        error: BaseException | None = None
        try:
            result = fn()
        except BaseException as err:  # noqa: BLE001 - raised by the waiting caller, or logged if it left
            error = err
        with lock:
            outcome.done = True
            late = outcome.abandoned
            if not late:
                outcome.result, outcome.error = result, error
        finished.set()
        if late:
            _end_late(key, entry, result, error, close_late)

    thread = threading.Thread(target=run, name=thread_name, daemon=True)
    thread.start()
    finished.wait(limit)
    with lock:
        if not outcome.done:
            outcome.abandoned = True
            with _abandoned_lock:
                _abandoned[key] = entry
    if outcome.abandoned:
        log.error(
            "%s did not end within %gs: abandoned, still running on thread %s", what, limit, thread_name
        )
        with _abandoned_lock:
            earlier = [dict(e) for k, e in _abandoned.items() if k < key]
        raise Overran(what, limit, dict(entry), earlier)
    error = outcome.error
    if error is not None:
        outcome.error = None  # no reference cycle through the traceback
        raise error
    return outcome.result  # type: ignore[return-value]  # fn returned: result is a T


def _end_late(
    key: int,
    entry: dict[str, object],
    result: T | None,
    error: BaseException | None,
    close_late: Callable[[T], None] | None,
) -> None:
    """An abandoned call has ended: close what it returned, then drop it from the abandoned list."""
    took = time.time() - float(entry["since"])  # type: ignore[arg-type]  # a float, set above
    try:
        if error is None and close_late is not None:
            close_late(result)  # type: ignore[arg-type]  # fn returned: result is a T
    except Exception:
        log.exception("%s: closing what it returned after it was abandoned failed", entry["what"])
    finally:
        with _abandoned_lock:
            _abandoned.pop(key, None)
    outcome = "returned (closed now)" if error is None else f"raised {type(error).__name__}: {error}"
    log.warning(
        "%s ended %.1fs after it began (abandoned at %gs): it %s",
        entry["what"],
        took,
        entry["limit"],
        outcome,
    )


class BundleLoader:
    """RegistryHooks over the repository's bundle folders (settings: JVM options and heap, load_timeout)."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def prepare(self, current: Mapping[str, Path]) -> None:
        metadata: list[Metadata] = []
        for name, folder in current.items():
            try:
                metadata.append(read_metadata(folder))
            except ModelRunnerError as err:
                log.debug("%s: unreadable metadata, left to its load to report: %s", name, err.message)
        prepare_runtimes(metadata, self.settings)

    def load(self, name: str, version: int, version_dir: Path) -> LoadedVersion:
        """Load within ``settings.load_timeout``; beyond it DeadlineExceeded (the load is abandoned).
        Counted in the metrics (runner.serving.metrics.model_loaded) with its outcome and duration."""
        began = time.monotonic()
        outcome = Kind.INTERNAL.value
        try:
            loaded = self._load_within(name, version, version_dir)
            outcome = "ok"
            return loaded
        except ModelRunnerError as err:
            outcome = err.kind.value
            raise
        finally:
            metrics.model_loaded(name, outcome, time.monotonic() - began)

    def _load_within(self, name: str, version: int, version_dir: Path) -> LoadedVersion:
        limit = self.settings.load_timeout
        try:
            return run_within(
                lambda: self._load(name, version, version_dir),
                limit,
                what=f"the load of model {name!r} version {version}",
                thread_name=f"registry-load-{name}-v{version}",
                close_late=self.unload,
                facts={"model": name, "version": version},
            )
        except Overran as err:
            raise DeadlineExceeded(
                f"version {version} did not load within load_timeout={limit:g}s; the load was abandoned "
                "(its thread is left to end, and what it loads then is closed) and the previous version "
                f"keeps serving{err.note()}",
                {
                    "model": name,
                    "version": version,
                    "load_timeout": limit,
                    "abandoned": True,
                    "earlier_abandoned_loads": err.earlier,
                },
            ) from None

    def _load(self, name: str, version: int, version_dir: Path) -> LoadedVersion:
        bundle = open_bundle(version_dir)
        contract = Contract.compile(bundle.proto_text, include_dir=version_dir)
        model = load_model(version_dir, bundle.metadata, contract, self.settings)
        try:
            return LoadedVersion(name, version, bundle.metadata, contract, model)
        except BaseException:
            model.close()  # e.g. metadata that does not fit the contract: nothing else would close it
            raise

    def unload(self, loaded: LoadedVersion) -> None:
        loaded.model.close()

    def facts(self) -> dict[str, object]:
        """The JVM's options, and the loads of this process abandoned at their limit but still running."""
        return {**process_facts(), "abandoned_loads": abandoned_loads()}

"""The serving records of a repository: what each serving process (of this host, or of a fleet sharing
the volume) serves, with a heartbeat.

Layout: ``<root>/serving/<id>.json``, one record per process, rewritten atomically by its process
about every second. Readers tell live records from stale ones (see :meth:`Fleet.live_processes`) and
wait for a swap to reach every live process (:meth:`Fleet.wait_until_served`).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypedDict, cast

from runner.errors import BadInput
from runner.store.files import HOST, atomic_write, pid_alive

HEARTBEAT_STALE_SECONDS = 3.0
"""A serving record whose heartbeat is older than this is not live."""


class LoadError(TypedDict):
    """A version a process failed to load, and why."""

    version: int
    error: str


class ServingRecord(TypedDict, total=False):
    """What one serving process serves, as read back. Every key may be missing from a record on disk
    (another writer's, or an older one's): readers use ``.get``. A record may hold more keys."""

    pid: int
    host: str
    heartbeat: float
    """time.time() of the last write."""
    kind: str
    """"http" or "grpc"."""
    models: dict[str, int]
    """name -> version served."""
    errors: dict[str, LoadError]
    """name -> the version that failed to load there."""
    ready: bool
    retiring: bool
    """Present (true) once the process is retiring: it finishes its requests and exits (stuck calls)."""
    jvm_options: list[str] | None
    """The options its JVM runs with; None when it has no JVM (yet)."""
    abandoned_loads: list[dict[str, object]]
    """Loads (and validations) it gave up at their load_timeout that are still running on their thread:
    {"what", "model", "version", "since", "limit", "thread"} each."""


class Fleet:
    """The serving records under ``<root>/serving``; safe for concurrent threads and processes."""

    def __init__(self, root: Path | str):
        self.serving_root = Path(root) / "serving"
        self.serving_root.mkdir(parents=True, exist_ok=True)

    def _serving_path(self, process_id: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,200}", process_id):
            raise BadInput(f"invalid serving process id {process_id!r}")
        return self.serving_root / f"{process_id}.json"

    def record_serving(self, process_id: str, info: Mapping[str, object]) -> None:
        """Atomically write what process ``process_id`` serves: {"pid","kind","heartbeat","models"}.

        ``info`` has the keys of :class:`ServingRecord`, and may carry more JSON-serialisable facts
        (a registry adds its runtimes'). Missing pid/host/heartbeat are filled in from this process and
        the current time.
        """
        record = {"pid": os.getpid(), "host": HOST, "heartbeat": time.time(), **info}
        atomic_write(self._serving_path(process_id), json.dumps(record, sort_keys=True).encode())

    def remove_serving(self, process_id: str) -> None:
        """Forget a serving process (it stops serving)."""
        self._serving_path(process_id).unlink(missing_ok=True)

    def live_processes(self, stale_after: float = HEARTBEAT_STALE_SECONDS) -> dict[str, ServingRecord]:
        """Serving records of processes that are alive: on this host, those whose pid exists (until their
        heartbeat is 20 times staler than ``stale_after``); elsewhere, those with a fresh heartbeat.

        Records of dead local processes, and very old ones, are removed.
        """
        now = time.time()
        live: dict[str, ServingRecord] = {}
        for entry in os.listdir(self.serving_root):
            if not entry.endswith(".json"):
                continue
            path = self.serving_root / entry
            try:
                data: object = json.loads(path.read_text())
            except FileNotFoundError:
                continue
            except ValueError:
                continue
            if not isinstance(data, dict):
                continue
            info = cast(ServingRecord, data)  # as record_serving wrote it; its values are checked below
            try:
                age = now - float(info.get("heartbeat") or 0)
                pid = int(info.get("pid") or 0)
            except (TypeError, ValueError):
                continue
            local = info.get("host") == HOST
            dead = local and (pid <= 0 or not pid_alive(pid))
            if dead or age > 20 * stale_after:
                # Only clearly dead records: a live process rewrites its file every second.
                path.unlink(missing_ok=True)
                continue
            # A local process that is alive but late with its heartbeat (GIL pressure, a long load)
            # still counts: a swap must wait for it rather than answer while it serves the old version.
            if age <= stale_after or local:
                live[entry[: -len(".json")]] = info
        return live

    def served_versions(self, name: str) -> set[int]:
        """Versions of ``name`` some live serving process still serves."""
        out = set()
        for info in self.live_processes().values():
            version = (info.get("models") or {}).get(name)
            if isinstance(version, int):
                out.add(version)
        return out

    def wait_until_served(
        self,
        name: str,
        version: int | None,
        timeout: float,
        poll: float = 0.02,
        *,
        cancelled: Callable[[], bool] | None = None,
    ) -> list[str]:
        """Wait until every live serving process serves ``version`` of ``name`` (None: serves it no
        more). Returns the laggards ([] = done). Stops early when every laggard has reported that it
        failed to load that version, or when ``cancelled()`` says there is no point waiting any more
        (e.g. the version is no longer current: the processes will never serve it)."""
        deadline = time.monotonic() + timeout
        while True:
            laggards = []
            failed = []
            for process_id, info in self.live_processes().items():
                served = (info.get("models") or {}).get(name)
                ok = served is None if version is None else served == version
                if not ok:
                    laggards.append(process_id)
                    error = (info.get("errors") or {}).get(name)
                    if version is not None and error and error.get("version") == version:
                        failed.append(process_id)
            if not laggards or time.monotonic() >= deadline:
                return sorted(laggards)
            if len(failed) == len(laggards) or (cancelled is not None and cancelled()):
                return sorted(laggards)
            time.sleep(poll)


__all__ = ["HEARTBEAT_STALE_SECONDS", "Fleet", "LoadError", "ServingRecord"]

"""The serving records of a repository: what each serving process (of this host, or of a fleet sharing
the volume) serves, with a heartbeat.

Layout: ``<root>/serving/<id>.json``, one record per process, rewritten atomically by its process
about every second. Readers tell live records from stale ones (see :meth:`Fleet.live_processes`) and
wait for a swap to reach every live process (:meth:`Fleet.wait_until_served`).

Hosts: each record names its writer's host (``host_id``: MODEL_RUNNER_HOST_ID, else HOSTNAME, else the
machine's name) and kernel (``boot``: processes of one boot share one wall clock). A pid only says
something about a process of this host and boot; any other record lives by its heartbeat alone, judged
with this reader's own clocks: every write bumps the record's ``seq``, and a record whose content has not
changed for ``heartbeat_expiry`` seconds *as this reader saw it* is not live. The writer's wall clock is
trusted only when it is this reader's (same boot), so a host whose clock is hours ahead or behind is
neither live for ever nor dead at once. A record first seen is as old as the volume's own clock says
(its mtime against a probe file's, both stamped by the file server): a long-dead host's record is not
live for a new reader, a fresh one is.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypedDict, cast

from runner.errors import BadInput
from runner.store.files import BOOT_ID, HOST, atomic_write, pid_alive

HEARTBEAT_STALE_SECONDS = 5.0
"""The default ``heartbeat_expiry``: a record of another host unchanged for this long is not live."""

FORGET_AFTER = 20
"""A record not live for this many heartbeat expiries (or of a dead local pid) is removed."""


class LoadError(TypedDict):
    """A version a process failed to load, and why."""

    version: int
    error: str


class ServingRecord(TypedDict, total=False):
    """What one serving process serves, as read back. Every key may be missing from a record on disk
    (another writer's, or an older one's): readers use ``.get``. A record may hold more keys."""

    pid: int
    host: str
    """The writer's host id (the ``host_id`` setting)."""
    boot: str
    """The writer's kernel boot id: records of one boot share a wall clock."""
    seq: int
    """Bumped by every write: readers judge another host's heartbeat by when they saw it change."""
    heartbeat: float
    """time.time() of the last write (the writer's clock)."""
    kind: str
    """"http" or "grpc"."""
    models: dict[str, int]
    """name -> version served."""
    errors: dict[str, LoadError]
    """name -> the version that failed to load there."""
    ready: bool
    listening: bool
    """False while its edge does not take connections yet (a gRPC process between its loads and its
    server's start)."""
    retiring: bool
    """Present (true) once the process is retiring: it finishes its requests and exits (stuck calls)."""
    jvm_options: list[str] | None
    """The options its JVM runs with; None when it has no JVM (yet)."""
    abandoned_loads: list[dict[str, object]]
    """Loads (and validations) it gave up at their load_timeout that are still running on their thread:
    {"what", "model", "version", "since", "limit", "thread"} each."""


def describe(process_id: str, record: Mapping[str, object]) -> str:
    """A serving process as an operator finds it: its id, kind and host ("web-0-7 (http on web-0)")."""
    return f"{process_id} ({record.get('kind') or '?'} on {record.get('host') or '?'})"


class Fleet:
    """The serving records under ``<root>/serving``; safe for concurrent threads, processes and hosts."""

    def __init__(
        self, root: Path | str, *, host_id: str | None = None, heartbeat_expiry: float | None = None
    ):
        """``host_id``: this host's id in the records it writes (default: runner.store.files.HOST);
        ``heartbeat_expiry``: how long another host's record may stay unchanged and still be live."""
        self.serving_root = Path(root) / "serving"
        self.serving_root.mkdir(parents=True, exist_ok=True)
        self.host_id = host_id or HOST
        self.safe_host_id = re.sub(r"[^A-Za-z0-9_.-]", "_", self.host_id)[:100] or "host"
        """The host id as it may appear in a file name (process ids, staging folders)."""
        self.heartbeat_expiry = HEARTBEAT_STALE_SECONDS if heartbeat_expiry is None else heartbeat_expiry
        self._seq = itertools.count(1)
        self._seen_lock = threading.Lock()
        # process id -> (the record's content key as last read, time.monotonic() when it last changed)
        self._seen: dict[str, tuple[tuple[object, ...], float]] = {}

    def _serving_path(self, process_id: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,200}", process_id):
            raise BadInput(f"invalid serving process id {process_id!r}")
        return self.serving_root / f"{process_id}.json"

    def record_serving(self, process_id: str, info: Mapping[str, object]) -> None:
        """Atomically write what process ``process_id`` serves: {"pid","kind","heartbeat","models"}.

        ``info`` has the keys of :class:`ServingRecord`, and may carry more JSON-serialisable facts
        (a registry adds its runtimes'). Missing pid/host/boot/heartbeat/seq are filled in from this
        process, the current time and a counter.
        """
        record = {
            "pid": os.getpid(),
            "host": self.host_id,
            "boot": BOOT_ID,
            "heartbeat": time.time(),
            "seq": next(self._seq),
            **info,
        }
        # Atomic but not fsynced: a record is rewritten every second, and worthless after a machine crash
        # (two fsyncs a second per process were most of a heartbeat's cost on a busy disk).
        path = self._serving_path(process_id)
        atomic_write(path, json.dumps(record, sort_keys=True).encode(), durable=False)

    def remove_serving(self, process_id: str) -> None:
        """Forget a serving process (it stops serving)."""
        self._serving_path(process_id).unlink(missing_ok=True)
        with self._seen_lock:
            self._seen.pop(process_id, None)

    def live_processes(self, stale_after: float | None = None) -> dict[str, ServingRecord]:
        """Serving records of processes that are alive. Those of this host and boot: whose pid exists
        (however late their heartbeat, until it is FORGET_AFTER expiries old). Any other: whose record
        changed within ``stale_after`` (default ``heartbeat_expiry``) seconds, as this reader saw it.

        Records of dead local processes, and ones not live for FORGET_AFTER expiries, are removed.
        """
        expiry = self.heartbeat_expiry if stale_after is None else stale_after
        now, now_mono = time.time(), time.monotonic()
        live: dict[str, ServingRecord] = {}
        listed: set[str] = set()
        for entry in os.listdir(self.serving_root):
            if not entry.endswith(".json") or entry.startswith("."):
                continue
            process_id = entry[: -len(".json")]
            listed.add(process_id)
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
                heartbeat = float(info.get("heartbeat") or 0)
                pid = int(info.get("pid") or 0)
            except (TypeError, ValueError):
                continue
            same_clock = info.get("boot", BOOT_ID) == BOOT_ID  # an older record without one: as before
            local = same_clock and info.get("host") == self.host_id
            if local:
                # This host's own process: its pid tells. One alive but late with its heartbeat (GIL
                # pressure, a long load) still counts: a swap must wait for it rather than answer while
                # it serves the old version.
                silent = now - heartbeat
                alive = pid > 0 and pid_alive(pid)
            else:
                # Another host's (a pid there means nothing here): its heartbeat alone.
                silent = self._silence(process_id, path, info, heartbeat, same_clock, now, now_mono)
                alive = silent <= expiry
            if (local and not alive) or silent > FORGET_AFTER * expiry:
                # Only clearly dead records: a live process rewrites its file every second.
                path.unlink(missing_ok=True)
                with self._seen_lock:
                    self._seen.pop(process_id, None)
                continue
            if alive:
                live[process_id] = info
        with self._seen_lock:
            for gone in set(self._seen) - listed:
                del self._seen[gone]
        return live

    def _silence(
        self,
        process_id: str,
        path: Path,
        info: ServingRecord,
        heartbeat: float,
        same_clock: bool,
        now: float,
        now_mono: float,
    ) -> float:
        """Seconds since another host's record last changed, by this reader's clocks."""
        key = (info.get("seq"), heartbeat, info.get("pid"), info.get("boot"), info.get("host"))
        with self._seen_lock:
            seen = self._seen.get(process_id)
        if seen is not None and seen[0] == key:
            return now_mono - seen[1]
        if same_clock:  # its heartbeat's age is true on this boot's clock (a future one: clamped to now)
            age = max(0.0, now - heartbeat)
        elif seen is None:  # first seen: how long ago it was written, by the file system's clock
            age = self._file_age(path)
        else:  # changed since last seen: it beat just now
            age = 0.0
        with self._seen_lock:
            self._seen[process_id] = (key, now_mono - age)
        return age

    def _file_age(self, path: Path) -> float:
        """How long ago ``path`` was last written, on the clock that stamps the volume's files (the file
        server's, on NFS) rather than the reader's or the writer's: the record's mtime against that of a
        probe file touched now. 0 when unknown (a record seen for the first time then counts as fresh)."""
        probe = self.serving_root / ".clock-probe"
        try:
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT, 0o644))
            os.utime(probe)  # "now" as the file system stamps it (NFS: the server's time)
            return max(0.0, os.stat(probe).st_mtime - os.stat(path).st_mtime)
        except OSError:
            return 0.0

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
        lost: dict[str, ServingRecord] | None = None,
    ) -> list[str]:
        """Wait until every live serving process serves ``version`` of ``name`` (None: serves it no
        more). Returns the laggards ([] = done). Stops early when every laggard has reported that it
        failed to load that version, or when ``cancelled()`` says there is no point waiting any more
        (e.g. the version is no longer current: the processes will never serve it).

        A process that dies while it lags stops being waited for once its heartbeat expires (at once on
        this host); ``lost`` (when given) receives the last record of each process that lagged and then
        stopped being live (died, or stopped) before the wait ended."""
        deadline = time.monotonic() + timeout
        lagging: dict[str, ServingRecord] = {}  # the last record of each process lagging when last seen
        while True:
            laggards = []
            failed = []
            scan_began = time.monotonic()
            live = self.live_processes()
            scanned = time.monotonic() - scan_began
            for process_id, info in live.items():
                served = (info.get("models") or {}).get(name)
                ok = served is None if version is None else served == version
                if ok:
                    lagging.pop(process_id, None)
                    continue
                laggards.append(process_id)
                lagging[process_id] = info
                error = (info.get("errors") or {}).get(name)
                if version is not None and error and error.get("version") == version:
                    failed.append(process_id)
            done = not laggards or time.monotonic() >= deadline
            if not done and (len(failed) == len(laggards) or (cancelled is not None and cancelled())):
                done = True
            if done:
                if lost is not None:
                    lost.update({pid: info for pid, info in lagging.items() if pid not in live})
                return sorted(laggards)
            # A large fleet's scan (a read per process) takes at most half of the publisher's time.
            time.sleep(max(poll, scanned))


__all__ = ["FORGET_AFTER", "HEARTBEAT_STALE_SECONDS", "Fleet", "LoadError", "ServingRecord", "describe"]

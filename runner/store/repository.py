"""The versioned model store (the embedded default: a folder; a shared volume serves a fleet).

Layout (see docs/internals.md)::

    <root>/models/<name>/versions/<N>/   immutable bundle folders
    <root>/models/<name>/current         "N\\n", replaced atomically (tmp, fsync, rename, fsync dir)
    <root>/models/<name>/history.jsonl   append-only, one JSON object per line
    <root>/models/<name>/.lock           fcntl lock: one writer per model (threads and processes)
    <root>/staging/<random>/             staged uploads (each guarded by <random>.lock while in use)
    <root>/serving/<id>.json             what each serving process serves, with a heartbeat

Invariants: a version folder appears under ``versions/`` only complete (copied, fsynced, then renamed
in); ``current`` only ever names such a folder; history is appended last. A crash between any two
steps therefore leaves either the old or the new version current. Leftovers of a crash (half-copied
incoming folders, pointer temp files, a version folder never made current, a pointer without its
history line) are repaired under the model lock when the repository is opened.

History entries: ``{"time", "action", "version", "previous_version", "sha256", "caller", ...extra}``
where ``version`` is the version current *after* the action (``None`` after a delete).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runner.bundle import NAME_RE  # model names: usable as a folder name, URL segment, gRPC metadata
from runner.errors import BadInput, NotFound, PreconditionFailed

log = logging.getLogger(__name__)

HEARTBEAT_STALE_SECONDS = 3.0
"""A serving record whose heartbeat is older than this is not live."""

CRASH_ENV = "MODEL_RUNNER_CRASH_AT"
"""Fault injection for the crash-safety test: the publish SIGKILLs its own process at this step."""

PUBLISH_STEPS = ("staging_copy", "version_move", "pointer_tmp", "pointer_rename", "history_append")

HOST = socket.gethostname()


def validate_name(name: object) -> str:
    """Return ``name`` if it is a valid model name, else raise BadInput saying why."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise BadInput(
            f"invalid model name {name!r}: use 1-63 characters from a-z, 0-9, '_', '.', '-', "
            "starting with a letter or digit",
            {"name": str(name), "pattern": NAME_RE.pattern},
        )
    return name


def folder_sha256(folder: Path) -> str:
    """The bundle content digest of a stored folder (runner.bundle.content_sha256)."""
    from runner.bundle import content_sha256

    return content_sha256(folder)


def _crash_point(step: str) -> None:
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(root):
        for filename in filenames:
            fd = os.open(os.path.join(dirpath, filename), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _atomic_write(path: Path, data: bytes, *, crash_steps: bool = False) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if crash_steps:
        _crash_point("pointer_tmp")
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _remove_tree(path: Path) -> None:
    """Remove a folder so that no half-removed folder is ever visible under its name."""
    if not path.exists():
        return
    doomed = path.with_name(f".deleting-{path.name}-{uuid.uuid4().hex[:8]}")
    os.rename(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _try_lock(path: Path) -> int | None:
    """Open and lock ``path`` without blocking; the fd, or None when someone else holds it."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        if err.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return None
        raise
    return fd


class Repository:
    """A folder of versioned models; safe for concurrent threads and processes on one filesystem."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.models_root = self.root / "models"
        self.staging_root = self.root / "staging"
        self.serving_root = self.root / "serving"
        for folder in (self.models_root, self.staging_root, self.serving_root):
            folder.mkdir(parents=True, exist_ok=True)
        self._wipe_staging()
        for name in self._model_dirs():
            self._repair(name)

    # ------------------------------------------------------------------ reading

    def _model_dirs(self) -> list[str]:
        try:
            entries = os.listdir(self.models_root)
        except FileNotFoundError:
            return []
        return sorted(e for e in entries if NAME_RE.fullmatch(e) and (self.models_root / e).is_dir())

    def _model_dir(self, name: str) -> Path:
        return self.models_root / validate_name(name)

    def models(self) -> list[str]:
        """Names of the models that have a current version (deleted ones are not listed)."""
        return sorted(self.pointers())

    def pointers(self) -> dict[str, int]:
        """{name: current version} of every model that has one (what serving processes poll)."""
        out = {}
        for name in self._model_dirs():
            version = self.current_version(name)
            if version is not None:
                out[name] = version
        return out

    def current_version(self, name: str) -> int | None:
        """The version the ``current`` pointer names, or None (unknown or deleted model)."""
        try:
            text = (self._model_dir(name) / "current").read_text()
        except FileNotFoundError:
            return None
        try:
            return int(text.strip())
        except ValueError:
            # Cannot happen with atomic replacement; treat as absent rather than serve garbage.
            log.error("model %s: unreadable current pointer %r", name, text)
            return None

    def version_dir(self, name: str, version: int) -> Path:
        """Folder of one version (it may not exist; see versions())."""
        return self._model_dir(name) / "versions" / str(int(version))

    def versions(self, name: str) -> list[int]:
        """Stored version numbers of a model, ascending."""
        try:
            entries = os.listdir(self._model_dir(name) / "versions")
        except FileNotFoundError:
            return []
        return sorted(int(e) for e in entries if e.isdigit())

    def history(self, name: str) -> list[dict[str, Any]]:
        """Every recorded action on a model, oldest first."""
        try:
            raw = (self._model_dir(name) / "history.jsonl").read_text()
        except FileNotFoundError:
            return []
        out = []
        for line in raw.splitlines():
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                log.warning("model %s: skipping a torn history line", name)
        return out

    # ------------------------------------------------------------------ staging

    def _wipe_staging(self) -> None:
        """Remove staging entries no live process holds (a crashed upload's leftovers)."""
        for entry in sorted(os.listdir(self.staging_root)):
            path = self.staging_root / entry
            if entry.endswith(".lock"):
                continue
            lock_path = self.staging_root / f"{entry}.lock"
            fd = _try_lock(lock_path) if lock_path.exists() else -1
            if fd is None:
                continue  # in use by a live process
            try:
                shutil.rmtree(path, ignore_errors=True)
                if path.exists() and not path.is_dir():
                    path.unlink()
                if fd >= 0:
                    lock_path.unlink(missing_ok=True)
            finally:
                if fd >= 0:
                    os.close(fd)
        for entry in os.listdir(self.staging_root):
            if entry.endswith(".lock") and not (self.staging_root / entry[: -len(".lock")]).exists():
                fd = _try_lock(self.staging_root / entry)
                if fd is not None:
                    (self.staging_root / entry).unlink(missing_ok=True)
                    os.close(fd)

    @contextlib.contextmanager
    def staging_dir(self) -> Iterator[Path]:
        """A fresh empty folder inside the repository, removed on exit whatever happens.

        It is locked while in use, so another process opening the repository does not wipe it.
        """
        while True:
            token = f"{HOST}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
            lock_path = self.staging_root / f"{token}.lock"
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            # A concurrent wipe may have unlinked the file between open and flock: start over.
            try:
                same = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        path = self.staging_root / token
        try:
            path.mkdir()
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
            lock_path.unlink(missing_ok=True)
            os.close(fd)

    # ------------------------------------------------------------------ locking and repair

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Exclusive per-model lock (flock on a per-call fd: excludes other threads and processes)."""
        model_dir = self._model_dir(name)
        model_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(model_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _repair(self, name: str) -> None:
        """Undo the leftovers of a crashed writer; runs under the model lock."""
        model_dir = self._model_dir(name)
        with self.lock(name):
            for entry in os.listdir(model_dir):
                if entry.startswith((".incoming-", ".current.tmp-", ".deleting-")):
                    path = model_dir / entry
                    shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
            versions_dir = model_dir / "versions"
            if versions_dir.is_dir():
                for entry in os.listdir(versions_dir):
                    if entry.startswith(".deleting-"):
                        shutil.rmtree(versions_dir / entry, ignore_errors=True)
            history_path = model_dir / "history.jsonl"
            if history_path.exists():
                data = history_path.read_bytes()
                if data and not data.endswith(b"\n"):
                    with open(history_path, "ab") as fh:  # a torn last line: terminate it
                        fh.write(b"\n")
                        os.fsync(fh.fileno())
            history = self.history(name)
            current = self.current_version(name)
            recorded = {e.get("version") for e in history} | {e.get("previous_version") for e in history}
            # A version folder that was never made current nor recorded: a publish died before its rename.
            for version in self.versions(name):
                if version != current and version not in recorded:
                    log.warning("model %s: removing version %d of an interrupted publish", name, version)
                    _remove_tree(self.version_dir(name, version))
            # The pointer moved but the history line was not written: record what happened.
            state = history[-1].get("version") if history else None
            if current is not None and current != state:
                self._append_history(
                    name,
                    {
                        "action": "recovered",
                        "version": current,
                        "previous_version": state,
                        "sha256": folder_sha256(self.version_dir(name, current)),
                        "caller": "repository",
                    },
                )

    def _append_history(self, name: str, entry: dict[str, Any]) -> dict[str, Any]:
        entry = {"time": time.time(), **entry}
        line = (json.dumps(entry, sort_keys=True) + "\n").encode()
        fd = os.open(self._model_dir(name) / "history.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one write: never interleaves with another append
            os.fsync(fd)
        finally:
            os.close(fd)
        return entry

    def _write_pointer(self, name: str, version: int | None, *, crash_steps: bool = False) -> None:
        pointer = self._model_dir(name) / "current"
        if version is None:
            pointer.unlink(missing_ok=True)
            _fsync_dir(pointer.parent)
            return
        _atomic_write(pointer, f"{version}\n".encode(), crash_steps=crash_steps)

    @staticmethod
    def _check_expected(name: str, current: int | None, expected_version: int | None) -> None:
        """``expected_version``: None = no check; 0 = the model must have no current version."""
        if expected_version is None:
            return
        if (current or 0) != expected_version:
            raise PreconditionFailed(
                f"model {name!r} is at version {current if current is not None else 'none'}, "
                f"not {expected_version}: someone else changed it; reload and retry",
                {"name": name, "current_version": current, "expected_version": expected_version},
            )

    def check_expected(self, name: str, expected_version: int | None) -> None:
        """Raise PreconditionFailed now if the current version is not the expected one (a cheap
        early check; publish/rollback check again under the lock)."""
        self._check_expected(name, self.current_version(name), expected_version)

    # ------------------------------------------------------------------ writing

    def publish(
        self,
        name: str,
        staged: Path,
        *,
        expected_version: int | None,
        caller: str,
        action: str = "publish",
        sha256: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> int:
        """Store the folder ``staged`` as the next version and make it current; returns its number.

        ``staged`` is copied (the caller keeps it). ``expected_version`` is checked under the lock.
        """
        validate_name(name)
        staged = Path(staged)
        if not staged.is_dir():
            raise NotFound(f"staged folder {staged} does not exist")
        model_dir = self._model_dir(name)
        with self.lock(name):
            current = self.current_version(name)
            self._check_expected(name, current, expected_version)
            history = self.history(name)
            numbers = [*self.versions(name), *(e.get("version") or 0 for e in history), 0]
            version = max(numbers) + 1
            if sha256 is None:
                sha256 = folder_sha256(staged)
            incoming = model_dir / f".incoming-{uuid.uuid4().hex}"
            target = self.version_dir(name, version)
            try:
                # Links are copied as their content: a version folder must not depend on anything outside.
                shutil.copytree(staged, incoming, ignore=shutil.ignore_patterns("__pycache__"))
                _fsync_tree(incoming)
                _crash_point("staging_copy")
                (model_dir / "versions").mkdir(exist_ok=True)
                os.rename(incoming, target)
            except BaseException:
                shutil.rmtree(incoming, ignore_errors=True)  # e.g. disk full: leave nothing behind
                raise
            _fsync_dir(target.parent)
            _crash_point("version_move")
            self._write_pointer(name, version, crash_steps=True)
            _crash_point("pointer_rename")
            self._append_history(
                name,
                {
                    "action": action,
                    "version": version,
                    "previous_version": current,
                    "sha256": sha256,
                    "caller": caller,
                    **(extra or {}),
                },
            )
            _crash_point("history_append")
        log.info("model %s: published version %d (%s by %s)", name, version, action, caller)
        return version

    def _undo_stack(self, name: str) -> list[int | None]:
        """Replay history as a stack of current versions: rollback-to-previous pops, all else pushes."""
        stack: list[int | None] = []
        for entry in self.history(name):
            version = entry.get("version")
            if entry.get("action") == "rollback" and entry.get("mode") == "previous":
                while stack and stack[-1] != version:
                    stack.pop()
                if not stack:
                    stack.append(version)
            else:
                stack.append(version)
        return stack

    def previous_version(self, name: str) -> int | None:
        """The version a rollback without a version would go to (None when there is none).

        That is the version that was current before the current one became current, following
        earlier rollbacks back (two rollbacks from 3 go to 2 then 1, not back to 3), skipping
        versions removed by cleanup.
        """
        current = self.current_version(name)
        stack = self._undo_stack(name)
        while stack and stack[-1] == current:
            stack.pop()
        existing = set(self.versions(name))
        for version in reversed(stack):
            if version is not None and version != current and version in existing:
                return version
        return None

    def rollback(
        self, name: str, *, version: int | None = None, expected_version: int | None = None, caller: str
    ) -> int:
        """Point ``current`` back at an existing version: the previous one, or ``version``.

        The pointer moves to the old immutable folder, so the served version number goes back.
        """
        validate_name(name)
        with self.lock(name):
            current = self.current_version(name)
            self._check_expected(name, current, expected_version)
            if version is None:
                target = self.previous_version(name)
                if target is None:
                    raise NotFound(
                        f"model {name!r} has no earlier version to roll back to",
                        {"name": name, "current_version": current, "versions": self.versions(name)},
                    )
                mode = "previous"
            else:
                target = int(version)
                if not self.version_dir(name, target).is_dir():
                    raise NotFound(
                        f"model {name!r} has no version {target}",
                        {"name": name, "versions": self.versions(name)},
                    )
                mode = "named"
            self._write_pointer(name, target)
            self._append_history(
                name,
                {
                    "action": "rollback",
                    "mode": mode,
                    "version": target,
                    "previous_version": current,
                    "sha256": folder_sha256(self.version_dir(name, target)),
                    "caller": caller,
                },
            )
        log.info("model %s: rolled back from %s to %d by %s", name, current, target, caller)
        return target

    def delete(self, name: str, *, caller: str, expected_version: int | None = None) -> int:
        """Stop serving a model (removes its pointer; versions stay until cleanup). Returns the
        version that was current. NotFound when it has no current version."""
        validate_name(name)
        if not self._model_dir(name).is_dir():
            raise NotFound(f"no model named {name!r}", {"name": name, "models": self.models()})
        with self.lock(name):
            current = self.current_version(name)
            if current is None:
                raise NotFound(f"no model named {name!r}", {"name": name, "models": self.models()})
            self._check_expected(name, current, expected_version)
            self._write_pointer(name, None)
            self._append_history(
                name,
                {
                    "action": "delete",
                    "version": None,
                    "previous_version": current,
                    "sha256": None,
                    "caller": caller,
                },
            )
        log.info("model %s: deleted (was version %d) by %s", name, current, caller)
        return current

    def served_versions(self, name: str) -> set[int]:
        """Versions of ``name`` some live serving process still serves."""
        out = set()
        for info in self.live_processes().values():
            version = (info.get("models") or {}).get(name)
            if isinstance(version, int):
                out.add(version)
        return out

    def cleanup(self, keep_last: int, names: list[str] | None = None) -> dict[str, list[int]]:
        """Remove old versions (of ``names``, default all), keeping the newest ``keep_last``, the
        current one, any still served and the one a rollback would go to. Returns {name: removed}."""
        removed: dict[str, list[int]] = {}
        for name in self._model_dirs() if names is None else [validate_name(n) for n in names]:
            with self.lock(name):
                versions = self.versions(name)
                keep = set(versions[-keep_last:]) if keep_last > 0 else set()
                keep |= self.served_versions(name)
                previous = self.previous_version(name)
                if previous is not None:
                    keep.add(previous)
                current = self.current_version(name)
                if current is not None:
                    keep.add(current)
                gone = [v for v in versions if v not in keep]
                for version in gone:
                    _remove_tree(self.version_dir(name, version))
                if gone:
                    removed[name] = gone
                    self._append_history(
                        name,
                        {
                            "action": "cleanup",
                            "version": current,
                            "previous_version": current,
                            "sha256": None,
                            "caller": "cleanup",
                            "removed": gone,
                        },
                    )
        return removed

    # ------------------------------------------------------------------ serving records

    def _serving_path(self, process_id: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,200}", process_id):
            raise BadInput(f"invalid serving process id {process_id!r}")
        return self.serving_root / f"{process_id}.json"

    def record_serving(self, process_id: str, info: dict[str, Any]) -> None:
        """Atomically write what process ``process_id`` serves: {"pid","kind","heartbeat","models"}.

        Missing pid/host/heartbeat are filled in from this process and the current time.
        """
        record = {"pid": os.getpid(), "host": HOST, "heartbeat": time.time(), **info}
        _atomic_write(self._serving_path(process_id), json.dumps(record, sort_keys=True).encode())

    def remove_serving(self, process_id: str) -> None:
        """Forget a serving process (it stops serving)."""
        self._serving_path(process_id).unlink(missing_ok=True)

    def live_processes(self, stale_after: float = HEARTBEAT_STALE_SECONDS) -> dict[str, dict[str, Any]]:
        """Serving records of processes that are alive: on this host, those whose pid exists (until their
        heartbeat is 20 times staler than ``stale_after``); elsewhere, those with a fresh heartbeat.

        Records of dead local processes, and very old ones, are removed.
        """
        now = time.time()
        live: dict[str, dict[str, Any]] = {}
        for entry in os.listdir(self.serving_root):
            if not entry.endswith(".json"):
                continue
            path = self.serving_root / entry
            try:
                info = json.loads(path.read_text())
            except FileNotFoundError:
                continue
            except ValueError:
                continue
            try:
                age = now - float(info.get("heartbeat") or 0)
                pid = int(info.get("pid") or 0)
            except (TypeError, ValueError, AttributeError):
                continue
            local = info.get("host") == HOST
            dead = local and (pid <= 0 or not _pid_alive(pid))
            if dead or age > 20 * stale_after:
                # Only clearly dead records: a live process rewrites its file every second.
                path.unlink(missing_ok=True)
                continue
            # A local process that is alive but late with its heartbeat (GIL pressure, a long load)
            # still counts: a swap must wait for it rather than answer while it serves the old version.
            if age <= stale_after or local:
                live[entry[: -len(".json")]] = info
        return live

    def wait_until_served(
        self, name: str, version: int | None, timeout: float, poll: float = 0.02
    ) -> list[str]:
        """Wait until every live serving process serves ``version`` of ``name`` (None: serves it no
        more). Returns the laggards ([] = done). Stops early when every laggard has reported that it
        failed to load that version."""
        deadline = time.monotonic() + timeout
        while True:
            laggards = []
            failed = []
            for process_id, info in self.live_processes().items():
                served = (info.get("models") or {}).get(name)
                ok = served is None if version is None else served == version
                if not ok:
                    laggards.append(process_id)
                    error = (info.get("errors") or {}).get(name) or {}
                    if version is not None and error.get("version") == version:
                        failed.append(process_id)
            if not laggards or time.monotonic() >= deadline:
                return sorted(laggards)
            if len(failed) == len(laggards):
                return sorted(laggards)
            time.sleep(poll)


__all__ = [
    "CRASH_ENV",
    "NAME_RE",
    "PUBLISH_STEPS",
    "Repository",
    "folder_sha256",
    "validate_name",
]

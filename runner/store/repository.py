"""The versioned model store (the embedded default: a folder; a shared volume serves a fleet).

Layout (see docs/internals.md)::

    <root>/models/<name>/versions/<N>/   immutable bundle folders
    <root>/models/<name>/current         "N\\n", replaced atomically (tmp, fsync, rename, fsync dir)
    <root>/models/<name>/history.jsonl   append-only, one JSON object per line
    <root>/models/<name>/.lock           fcntl lock: one writer per model (threads, processes, hosts)
    <root>/staging/<random>/             staged uploads (each guarded by <random>.lock while in use)
    <root>/serving/<id>.json             what each serving process serves (runner.store.fleet)

Invariants: a version folder appears under ``versions/`` only complete (copied, fsynced, then renamed
in); ``current`` only ever names such a folder; history is appended last. A crash between any two
steps therefore leaves either the old or the new version current. Leftovers of a crash (half-copied
incoming folders, pointer temp files, a version folder never made current, a pointer without its
history line) are repaired under the model lock when the repository is opened.

History entries: ``{"time", "action", "version", "previous_version", "sha256", "caller", ...extra}``
where ``version`` is the version current *after* the action (``None`` after a delete).

File-system helpers are in runner.store.files; the serving records in runner.store.fleet (a
repository's :attr:`Repository.fleet`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

from runner.bundle import NAME_RE, content_sha256  # NAME_RE: model names (folder, URL segment, gRPC metadata)
from runner.errors import BadInput, NotFound, PreconditionFailed
from runner.locks import acquire, locked
from runner.settings import Settings
from runner.store.files import (
    atomic_write,
    crash_point,
    fsync_dir,
    fsync_tree,
    remove_tree,
    try_lock,
)
from runner.store.fleet import Fleet

log = logging.getLogger(__name__)

PUBLISH_STEPS = ("staging_copy", "version_move", "pointer_tmp", "pointer_rename", "history_append")
"""The crash points of a publish, in order (see runner.store.files.CRASH_ENV)."""

HistoryEntry = dict[str, object]
"""One line of history.jsonl (see the module docstring); its ``extra`` keys vary by action."""


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
    return content_sha256(folder)


def _version_of(entry: HistoryEntry, key: str = "version") -> int | None:
    """A version number a history entry records under ``key`` (None: none)."""
    value = entry.get(key)
    return value if isinstance(value, int) else None


class Repository:
    """A folder of versioned models; safe for concurrent threads, processes and hosts sharing it (a local
    disk or an NFS volume: its locks are fcntl locks)."""

    def __init__(
        self, root: Path | str, *, host_id: str | None = None, heartbeat_expiry: float | None = None
    ):
        """``host_id`` and ``heartbeat_expiry``: this host's serving records (runner.store.fleet.Fleet)."""
        self.root = Path(root)
        self.models_root = self.root / "models"
        self.staging_root = self.root / "staging"
        for folder in (self.models_root, self.staging_root):
            folder.mkdir(parents=True, exist_ok=True)
        self.fleet = Fleet(self.root, host_id=host_id, heartbeat_expiry=heartbeat_expiry)
        """The serving records of the processes that serve from this repository."""
        self._wipe_staging()
        for name in self._model_dirs():
            self._repair(name)

    @classmethod
    def from_settings(cls, settings: Settings) -> Repository:
        """The repository ``settings.repo``, this host known as ``settings.host_id`` in its fleet."""
        return cls(settings.repo, host_id=settings.host_id, heartbeat_expiry=settings.heartbeat_expiry)

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

    def history(self, name: str) -> list[HistoryEntry]:
        """Every recorded action on a model, oldest first."""
        try:
            raw = (self._model_dir(name) / "history.jsonl").read_text()
        except FileNotFoundError:
            return []
        out: list[HistoryEntry] = []
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
            has_lock = lock_path.exists()
            held = try_lock(lock_path) if has_lock else None
            if has_lock and held is None:
                continue  # in use by a live process
            try:
                shutil.rmtree(path, ignore_errors=True)
                if path.exists() and not path.is_dir():
                    path.unlink()
                if held is not None:
                    lock_path.unlink(missing_ok=True)
            finally:
                if held is not None:
                    held.release()
        for entry in os.listdir(self.staging_root):
            if entry.endswith(".lock") and not (self.staging_root / entry[: -len(".lock")]).exists():
                held = try_lock(self.staging_root / entry)
                if held is not None:
                    (self.staging_root / entry).unlink(missing_ok=True)
                    held.release()

    @contextlib.contextmanager
    def staging_dir(self) -> Iterator[Path]:
        """A fresh empty folder inside the repository, removed on exit whatever happens.

        It is locked while in use, so another process opening the repository does not wipe it.
        """
        while True:
            token = f"{self.fleet.safe_host_id}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
            lock_path = self.staging_root / f"{token}.lock"
            held = acquire(lock_path, exclusive_create=True)
            assert held is not None  # blocking
            # A concurrent wipe may have unlinked the file between open and lock: start over.
            try:
                same = os.stat(lock_path).st_ino == os.fstat(held.fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            held.release()
        path = self.staging_root / token
        try:
            path.mkdir()
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)
            lock_path.unlink(missing_ok=True)
            held.release()

    # ------------------------------------------------------------------ locking and repair

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Exclusive per-model lock (runner.locks: an fcntl lock on a per-call open of ``.lock``; excludes
        other threads, processes and hosts, not reentrant)."""
        model_dir = self._model_dir(name)
        model_dir.mkdir(parents=True, exist_ok=True)
        with locked(model_dir / ".lock"):
            yield

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
                    remove_tree(self.version_dir(name, version))
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

    def _append_history(self, name: str, entry: HistoryEntry) -> HistoryEntry:
        entry = {"time": time.time(), **entry}
        line = (json.dumps(entry, sort_keys=True) + "\n").encode()
        fd = os.open(self._model_dir(name) / "history.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one write: never interleaves with another append
            os.fsync(fd)
        finally:
            os.close(fd)
        return entry

    def _write_pointer(self, name: str, version: int | None, *, crash_step: str | None = None) -> None:
        pointer = self._model_dir(name) / "current"
        if version is None:
            pointer.unlink(missing_ok=True)
            fsync_dir(pointer.parent)
            return
        atomic_write(pointer, f"{version}\n".encode(), crash_step=crash_step)

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
        extra: Mapping[str, object] | None = None,
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
            numbers = [*self.versions(name), *(_version_of(e) or 0 for e in history), 0]
            version = max(numbers) + 1
            if sha256 is None:
                sha256 = folder_sha256(staged)
            incoming = model_dir / f".incoming-{uuid.uuid4().hex}"
            target = self.version_dir(name, version)
            try:
                # Links are copied as their content: a version folder must not depend on anything outside.
                shutil.copytree(staged, incoming, ignore=shutil.ignore_patterns("__pycache__"))
                fsync_tree(incoming)
                crash_point("staging_copy")
                (model_dir / "versions").mkdir(exist_ok=True)
                os.rename(incoming, target)
            except BaseException:
                shutil.rmtree(incoming, ignore_errors=True)  # e.g. disk full: leave nothing behind
                raise
            fsync_dir(target.parent)
            crash_point("version_move")
            self._write_pointer(name, version, crash_step="pointer_tmp")
            crash_point("pointer_rename")
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
            crash_point("history_append")
        log.info("model %s: published version %d (%s by %s)", name, version, action, caller)
        return version

    def _undo_stack(self, name: str) -> list[int | None]:
        """Replay history as a stack of current versions: rollback-to-previous pops, all else pushes."""
        stack: list[int | None] = []
        for entry in self.history(name):
            version = _version_of(entry)
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

    def cleanup(self, keep_last: int, names: list[str] | None = None) -> dict[str, list[int]]:
        """Remove old versions (of ``names``, default all), keeping the newest ``keep_last``, the
        current one, any still served and the one a rollback would go to. Returns {name: removed}."""
        removed: dict[str, list[int]] = {}
        for name in self._model_dirs() if names is None else [validate_name(n) for n in names]:
            with self.lock(name):
                versions = self.versions(name)
                keep = set(versions[-keep_last:]) if keep_last > 0 else set()
                keep |= self.fleet.served_versions(name)
                previous = self.previous_version(name)
                if previous is not None:
                    keep.add(previous)
                current = self.current_version(name)
                if current is not None:
                    keep.add(current)
                gone = [v for v in versions if v not in keep]
                for version in gone:
                    remove_tree(self.version_dir(name, version))
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


__all__ = [
    "NAME_RE",
    "PUBLISH_STEPS",
    "HistoryEntry",
    "Repository",
    "folder_sha256",
    "validate_name",
]

"""File-system helpers of the store: durable atomic writes, fsync of folders, tree removal that never
shows a half-removed folder, non-blocking locks (runner.locks: fcntl locks, which NFS arbitrates),
host identity and process liveness, and the crash points of the crash-safety test."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import uuid
from pathlib import Path

from runner.locks import FileLock, acquire


def default_host_id() -> str:
    """This host's name among the hosts sharing a repository when the ``host_id`` setting is unset
    (Repository.from_settings passes it): HOSTNAME (a Kubernetes pod's name), else the machine's name."""
    return os.environ.get("HOSTNAME") or socket.gethostname()


HOST = default_host_id()
"""This host's default id (see :func:`default_host_id`): with a pid it names a process of the fleet."""


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return f"unknown-{uuid.uuid4().hex}"  # unknown: no other process shares this clock as far as we know


BOOT_ID = _boot_id()
"""This kernel's boot id: processes with the same one read the same wall clock (no skew between them)."""

CRASH_ENV = "MODEL_RUNNER_CRASH_AT"
"""Fault injection for the crash-safety test: the publish SIGKILLs its own process at this step."""


def crash_point(step: str) -> None:
    """SIGKILL this process if the crash-safety test asked to die at ``step``."""
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def fsync_dir(path: Path) -> None:
    """Make the entries of folder ``path`` (creations, renames, removals) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file and folder under ``root``."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for filename in filenames:
            fd = os.open(os.path.join(dirpath, filename), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def atomic_write(path: Path, data: bytes, *, crash_step: str | None = None, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` durably: a temp file is written and fsynced, renamed over
    ``path``, then the folder is fsynced. ``crash_step``: the crash point between write and rename.
    ``durable=False``: atomic for readers but not fsynced (what a machine crash may lose or leave empty:
    a serving record, rewritten every second and meaningless after a crash anyway)."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    if crash_step is not None:
        crash_point(crash_step)
    os.replace(tmp, path)
    if durable:
        fsync_dir(path.parent)


def remove_tree(path: Path) -> None:
    """Remove a folder so that no half-removed folder is ever visible under its name."""
    if not path.exists():
        return
    doomed = path.with_name(f".deleting-{path.name}-{uuid.uuid4().hex[:8]}")
    os.rename(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def try_lock(path: Path) -> FileLock | None:
    """Lock an existing ``path`` without blocking; the lock, or None when someone else holds it (or the
    file is gone)."""
    return acquire(path, blocking=False, create=False)

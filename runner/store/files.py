"""File-system helpers of the store: durable atomic writes, fsync of folders, tree removal that never
shows a half-removed folder, non-blocking locks, process liveness, and the crash points of the
crash-safety test."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import signal
import socket
import uuid
from pathlib import Path

HOST = socket.gethostname()
"""This machine's name: with a pid it names a process among the hosts sharing a repository."""

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


def atomic_write(path: Path, data: bytes, *, crash_step: str | None = None) -> None:
    """Replace ``path`` with ``data`` durably: a temp file is written and fsynced, renamed over
    ``path``, then the folder is fsynced. ``crash_step``: the crash point between write and rename."""
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if crash_step is not None:
        crash_point(crash_step)
    os.replace(tmp, path)
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


def try_lock(path: Path) -> int | None:
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

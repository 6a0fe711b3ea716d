"""Exclusive file locks that work on a shared volume (NFS) as on a local disk.

flock() is not what NFS servers arbitrate; fcntl byte-range locks are. On Linux we take
open-file-description locks (``F_OFD_SETLKW``): like flock they belong to the open file (two opens in one
process exclude each other, closing another descriptor of the file keeps them, a fork shares them), and
the kernel maps them onto NFS byte-range locks. Where OFD locks are missing, classic POSIX record locks
(``lockf``) stand in; those neither exclude threads of one process nor survive the process closing *any*
descriptor of the file, so each path is then also guarded by an in-process lock, taken before the file is
opened and released after it is closed.

Import-light (the standard library only) so that every layer may use it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

_OFD_SETLK: int | None = getattr(fcntl, "F_OFD_SETLK", None)
_OFD_SETLKW: int | None = getattr(fcntl, "F_OFD_SETLKW", None)
# struct flock on 64-bit Linux: l_type, l_whence, (pad), l_start, l_len, l_pid, (pad): 32 bytes.
_FLOCK = "hhqqi4x"
_BUSY = (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)

use_ofd = _OFD_SETLKW is not None and struct.calcsize(_FLOCK) == 32
"""OFD locks (True on 64-bit Linux) or POSIX record locks plus in-process locks (tests set it False)."""


class _PathLocks:
    """In-process locks by path for the POSIX fallback, dropped when nobody uses them."""

    def __init__(self) -> None:
        self.guard = threading.Lock()
        self.locks: dict[str, tuple[threading.Lock, int]] = {}

    def reset(self) -> None:
        # A forked child holds none of its parent's thread locks (they may have been held at fork).
        self.guard = threading.Lock()
        self.locks = {}

    def acquire(self, key: str, blocking: bool) -> bool:
        with self.guard:
            lock, users = self.locks.get(key) or (threading.Lock(), 0)
            self.locks[key] = (lock, users + 1)
        if lock.acquire(blocking):
            return True
        self._drop(key)
        return False

    def release(self, key: str) -> None:
        self.locks[key][0].release()
        self._drop(key)

    def _drop(self, key: str) -> None:
        with self.guard:
            lock, users = self.locks[key]
            if users <= 1:
                del self.locks[key]
            else:
                self.locks[key] = (lock, users - 1)


_path_locks = _PathLocks()
os.register_at_fork(after_in_child=_path_locks.reset)


def _key(path: Path) -> str:
    return os.path.join(os.path.realpath(path.parent), path.name)


def _fcntl_lock(fd: int, blocking: bool) -> bool:
    """Lock the whole file open on ``fd`` for writing; False when busy and not ``blocking``."""
    try:
        if use_ofd:
            command = _OFD_SETLKW if blocking else _OFD_SETLK
            assert command is not None
            fcntl.fcntl(fd, command, struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
        else:
            fcntl.lockf(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if not blocking and err.errno in _BUSY:
            return False
        raise
    return True


class FileLock:
    """An exclusive lock on one file, held until :meth:`release` (closing its descriptor)."""

    def __init__(self, path: Path, fd: int, key: str | None):
        self.path = path
        self.fd = fd
        self._key = key

    def release(self) -> None:
        """Unlock: close the descriptor (which drops the lock), then let this process's threads in."""
        fd, self.fd = self.fd, -1
        if fd < 0:
            return
        os.close(fd)
        if self._key is not None:
            _path_locks.release(self._key)


def acquire(
    path: Path | str, *, blocking: bool = True, create: bool = True, exclusive_create: bool = False
) -> FileLock | None:
    """Open ``path`` and lock it exclusively against other processes, hosts and threads.

    ``blocking=False``: None when someone holds it. ``create=False``: None when the file does not exist.
    ``exclusive_create``: the file must not exist yet (FileExistsError otherwise).
    """
    path = Path(path)
    key = None if use_ofd else _key(path)
    if key is not None and not _path_locks.acquire(key, blocking):
        return None
    flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if exclusive_create else os.O_CREAT if create else 0)
    fd = -1
    handed_over = False
    try:
        try:
            fd = os.open(path, flags, 0o644)
        except FileNotFoundError:
            if create or exclusive_create:
                raise
            return None
        if not _fcntl_lock(fd, blocking):
            return None
        handed_over = True
        return FileLock(path, fd, key)
    finally:
        if not handed_over:
            if fd >= 0:
                os.close(fd)
            if key is not None:
                _path_locks.release(key)


@contextlib.contextmanager
def locked(path: Path | str) -> Iterator[FileLock]:
    """Hold an exclusive lock on ``path`` (created if missing) for the ``with`` block."""
    lock = acquire(path)
    assert lock is not None  # blocking
    try:
        yield lock
    finally:
        lock.release()


__all__ = ["FileLock", "acquire", "locked", "use_ofd"]

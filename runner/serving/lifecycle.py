"""How a serving process (an HTTP worker, a gRPC process) ends: with its parent, and within a bound.

- :func:`die_with_parent`: the Linux parent-death signal (``prctl(PR_SET_PDEATHSIG)``), so that a
  `serve` killed with SIGKILL leaves no serving process, and no JVM, behind. The signal is SIGTERM: the
  process stops as on any SIGTERM (drains, closes its models, removes its serving record), within the
  bound below. The parent is checked after the call, which closes the race of a parent that died first.
- :class:`ProcessEnd`: once a process has stopped serving (its calls drained), it closes its models and
  exits within ``CLOSE_GRACE`` seconds. Threads a model left running would keep it alive for ever
  (Python waits for every non-daemon thread at exit, and the JVM for every non-daemon Java thread): they
  are awaited until then, logged with the model they belong to, and the process exits anyway. The exit
  handlers (atexit: JPype destroys the JVM, which runs Java shutdown hooks) run only once no such thread
  is left, under the same bound.

A stop therefore takes at most ``stop_timeout`` (the drain) plus ``CLOSE_GRACE`` seconds.
"""

from __future__ import annotations

import atexit
import ctypes
import faulthandler
import logging
import os
import signal
import sys
import threading
import time
from typing import NoReturn

from runner.runtimes.threads import LingeringThread, lingering_threads

log = logging.getLogger(__name__)

CLOSE_GRACE = 5.0
"""Seconds a serving process has, once its calls are drained, to close its models and exit."""

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int, sig: int = signal.SIGTERM) -> None:
    """Have this process receive ``sig`` when its parent (expected: pid ``parent``) dies (Linux).

    Call it in the child; the signal comes when the parent's *thread* that created this process ends,
    so create serving processes from the parent's main thread."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
                log.warning("prctl(PR_SET_PDEATHSIG) failed: %s", os.strerror(ctypes.get_errno()))
        except (OSError, AttributeError) as err:
            log.warning("no parent-death signal: %s", err)
    if os.getppid() != parent:  # the parent died before the call: the signal it would have sent
        log.warning("parent process %d is gone: stopping", parent)
        os.kill(os.getpid(), sig)


class ProcessEnd:
    """The bounded end of a serving process.

    :meth:`begin` when it has stopped serving (before closing its models: a close that hangs is bounded
    too); :meth:`exit` when it has nothing left to do. ``what`` names the process in the log."""

    def __init__(self, what: str, grace: float = CLOSE_GRACE, *, since: str = "it stopped serving") -> None:
        self.what = what
        self.grace = grace
        self.since = since  # what happened `grace` seconds before the end, for the log
        self.deadline = 0.0
        self._code = 0
        self._exiting = threading.Event()  # exit handlers running: the JVM may be going away
        self._ended = threading.Lock()

    def begin(self) -> None:
        """Start the clock: whatever happens, the process is gone ``grace`` seconds from now."""
        if self.deadline:
            return
        self.deadline = time.monotonic() + self.grace
        threading.Thread(target=self._watch, name="process-end-watchdog", daemon=True).start()
        # Last resort, without the GIL: if even the watchdog cannot run (a C call holding the GIL),
        # dump the Python stacks and _exit(1) a little later.
        faulthandler.dump_traceback_later(self.grace + 3, exit=True)

    def exit(self, code: int) -> NoReturn:
        """Wait (until the deadline) for the threads models left running, run the exit handlers, exit."""
        self.begin()
        self._code = code
        lingering = lingering_threads()
        while lingering and time.monotonic() < self.deadline:
            time.sleep(0.05)
            lingering = lingering_threads()
        if lingering:
            self._force(lingering)
        self._exiting.set()
        try:
            atexit._run_exitfuncs()
        except Exception:
            log.exception("%s: exit handlers failed", self.what)
        self._end(code)

    def _watch(self) -> None:
        time.sleep(max(0.0, self.deadline - time.monotonic()) + 0.25)
        if self._exiting.is_set():
            log.error(
                "%s: exit handlers still running %.0f s after %s; exiting anyway. Python threads: %s",
                self.what,
                self.grace,
                self.since,
                "; ".join(_python_stacks()),
            )
            self._end(self._code)
        try:
            lingering = lingering_threads()
        except Exception as err:  # noqa: BLE001 - the JVM may be half-way down: still exit
            log.error("%s: cannot list its threads (%s)", self.what, err)
            lingering = []
        if lingering:
            self._force(lingering)
        log.error(
            "%s: still stopping %.0f s after %s; exiting anyway. Python threads: %s",
            self.what,
            self.grace,
            self.since,
            "; ".join(_python_stacks()),
        )
        self._end(self._code)

    def _force(self, lingering: list[LingeringThread]) -> NoReturn:
        log.warning(
            "%s: %d thread%s still running %.0f s after %s, which would keep the process alive; "
            "exiting anyway: %s",
            self.what,
            len(lingering),
            "" if len(lingering) == 1 else "s",
            self.grace,
            self.since,
            "; ".join(t.describe() for t in lingering),
        )
        self._end(self._code)

    def _end(self, code: int) -> NoReturn:
        with self._ended:  # one ending (the main thread or the watchdog)
            for handler in logging.getLogger().handlers:
                try:
                    handler.flush()
                except Exception:  # noqa: BLE001 - exiting anyway
                    pass
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            os._exit(code)


def _python_stacks() -> list[str]:
    frames = sys._current_frames()
    out = []
    for thread in threading.enumerate():
        frame = frames.get(thread.ident or -1)
        where = f"{frame.f_code.co_name} at {frame.f_code.co_filename}:{frame.f_lineno}" if frame else "?"
        out.append(f"{thread.name}{' (daemon)' if thread.daemon else ''} in {where}")
    return out

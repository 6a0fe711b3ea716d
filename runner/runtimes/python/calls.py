"""Calls with a deadline: a small pool of daemon threads.

A Python thread cannot be killed, so a call that overruns its deadline is abandoned (the caller gets
:class:`WaitTimeout`) and keeps its thread until it returns. A call submitted with its ``owner`` is then
recorded as abandoned (runner.runtimes.stuck) until it returns, so a call that never stops is seen.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from runner.runtimes import stuck

T = TypeVar("T")

_QUEUED, _RUNNING, _CANCELLED, _DONE = 0, 1, 2, 3


class WaitTimeout(Exception):
    """The pool call did not end in time (never anything the model raised)."""


class Call(Generic[T]):
    """One call handed to a pool thread. ``done`` is held from the start and released by the thread
    once ``result`` or ``error`` is set: the caller waits on it with its deadline (a bare lock is
    the cheapest hand-off; a Future's condition variable costs several times more)."""

    __slots__ = ("fn", "args", "done", "result", "error", "state", "owner", "thread", "abandoned")

    result: T
    """Set by the pool thread when ``fn`` returns (read it only after ``done`` is released)."""

    def __init__(self, fn: Callable[..., T], args: tuple[object, ...], owner: stuck.CallOwner | None = None):
        self.fn = fn
        self.args = args
        self.done = threading.Lock()
        self.done.acquire()
        self.error: BaseException | None = None
        self.state = _QUEUED
        self.owner = owner  # what it runs for (named if it is abandoned while running)
        self.thread: threading.Thread | None = None  # the pool thread running it
        self.abandoned: int | None = None  # its runner.runtimes.stuck token once abandoned running


class DaemonPool:
    """A small thread pool of daemon threads: an abandoned (overrunning) call must not keep the
    process from exiting, which concurrent.futures' joined workers would."""

    def __init__(self, name: str, max_workers: int):
        self._name = name
        self._max = max_workers
        # one queue for calls of any result type; each caller gets its own Call[T] back
        self._queue: queue.SimpleQueue[Call[Any] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards _count, _idle and every call's state
        self._count = 0
        self._idle = 0

    def submit(self, fn: Callable[..., T], *args: object, owner: stuck.CallOwner | None = None) -> Call[T]:
        call = Call(fn, args, owner)
        with self._lock:
            if self._idle > 0:
                self._idle -= 1
                spawn = False
            elif self._count < self._max:
                self._count += 1
                spawn = True
            else:
                spawn = False  # every thread is busy: the call waits for one
        self._queue.put(call)
        if spawn:
            threading.Thread(target=self._work, name=f"{self._name}-{self._count}", daemon=True).start()
        return call

    def wait(self, call: Call[T], timeout: float) -> T:
        """The call's result (or its exception raised) if it ends within ``timeout`` seconds; else
        WaitTimeout, and a call that has not started yet never will (one running on is recorded as
        abandoned, runner.runtimes.stuck, when it has an owner)."""
        if call.done.acquire(True, timeout) if timeout > 0 else call.done.acquire(False):
            if call.error is not None:
                try:
                    raise call.error
                finally:
                    del call  # no reference cycle through the traceback
            return call.result
        with self._lock:
            if call.state == _QUEUED:
                call.state = _CANCELLED
            elif call.state == _RUNNING and call.owner is not None and call.abandoned is None:
                call.abandoned = stuck.abandoned(call.owner, call.thread)
        raise WaitTimeout

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            call = self._queue.get()
            if call is None:
                return
            with self._lock:
                run = call.state != _CANCELLED
                call.state = _RUNNING
                call.thread = me
            if run:
                try:
                    call.result = call.fn(*call.args)
                except BaseException as err:  # noqa: BLE001 (handed to the caller, who raises it)
                    call.error = err
                call.done.release()
            with self._lock:
                call.state = _DONE
                token = call.abandoned
                self._idle += 1
            if token is not None:
                stuck.returned(token)  # an abandoned call that finally returned
            del call

    def shutdown(self) -> None:
        with self._lock:
            for _ in range(self._count):
                self._queue.put(None)


__all__ = ["Call", "DaemonPool", "WaitTimeout"]

"""Python models cannot end the serving process.

A Python model runs inside the serving process (an HTTP worker, a gRPC process), beside every other call in
flight. ``sys.exit()``, ``exit()`` and ``quit()`` raise SystemExit, which the call turns into a ModelError
(:func:`describe_exit`). ``os._exit``, ``os.abort`` and a fatal signal sent to the process itself
(``os.kill(os.getpid(), ...)``, ``os.kill(0, ...)``, ``os.killpg``, ``signal.raise_signal``,
``signal.pthread_kill``) would end it at once: :func:`install` (when a Python model loads) replaces them,
process-wide, with guards that raise :class:`ModelExit` instead when model code calls them, i.e. when

- the calling thread is running a model call (a function marked :func:`runs_model_code` is on its stack), or
- a frame on the calling stack belongs to a model version's modules (a thread the model started itself, a
  module body or a constructor while the version loads).

Every other caller (the server's own bounded exit, gunicorn, tests) passes through unchanged, and so does a
process forked from model code (a multiprocessing child ends with ``os._exit``). ModelExit is a SystemExit,
so a model's ``except Exception`` does not swallow it.

What cannot be guarded in-process: a segfault or an abort in native code, an out-of-memory kill, a C library
calling ``exit()``; ``isolation = "process"`` (a model in its own process) is for those. A Python signal
handler runs on the main thread, between its bytecodes: if that thread were running a model call, an
``os._exit`` from the handler would be refused too; serving processes never run calls on their main thread.
"""

from __future__ import annotations

import logging
import os
import posix
import signal
import sys
import threading
from collections.abc import Callable
from types import CodeType, FrameType, ModuleType
from typing import Any, NoReturn, TypeVar

from runner.runtimes.python.isolation import ROOT_PACKAGE

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

_MODEL_MODULES = ROOT_PACKAGE + "."
_model_calls: set[CodeType] = set()  # the code of the functions that run model calls
_lock = threading.Lock()
_guard_pid: int | None = None  # the process guarded (None: a process forked from model code)
_real: dict[tuple[ModuleType, str], Callable[..., Any]] = {}  # (module, name) -> the original function

# Fatal even when the process handles them: the server stops (or is stopped) on these.
_STOPS = frozenset(
    {
        signal.SIGKILL,
        signal.SIGSTOP,
        signal.SIGTERM,
        signal.SIGINT,
        signal.SIGQUIT,
        signal.SIGHUP,
        signal.SIGABRT,
    }
)
# Ignored by default: never fatal.
_HARMLESS = frozenset({0, signal.SIGCHLD, signal.SIGURG, signal.SIGWINCH, signal.SIGCONT})


class ModelExit(SystemExit):
    """Model code tried to end the process (``call``: what it called); nothing ended."""

    def __init__(self, call: str, status: int | None = None, sig: int | None = None):
        super().__init__(f"the model called {call}; blocked, the process keeps serving")
        self.code = status
        self.call = call
        self.status = status
        self.signal = sig


def runs_model_code(fn: F) -> F:
    """Mark ``fn`` as running model calls: while it is on a thread's stack, that thread runs model code
    (found by the guard on the stack: nothing on the call path)."""
    _model_calls.add(fn.__code__)
    return fn


def describe_exit(err: SystemExit) -> tuple[str, dict[str, Any]]:
    """What a model's SystemExit (a ModelExit included) was: ``("sys.exit(3)", {"exit": True, "status": 3})``."""
    if isinstance(err, ModelExit):
        detail: dict[str, Any] = {"exit": True, "exit_call": err.call, "status": err.status}
        if err.signal is not None:
            detail["signal"] = _signal_name(err.signal)
        return err.call, detail
    code = err.code
    name = "sys.exit"
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is not None and tb.tb_frame.f_globals.get("__name__") == "_sitebuiltins":
        name = str(getattr(tb.tb_frame.f_locals.get("self"), "name", "exit"))  # exit() or quit()
    call = f"{name}({code!r})" if code is not None else f"{name}()"
    return call, {"exit": True, "exit_call": call, "status": code}


def install() -> None:
    """Guard this process against model code ending it (idempotent; cheap on later calls)."""
    global _guard_pid
    with _lock:
        _guard_pid = os.getpid()
        if _real:
            return
        guards: list[tuple[ModuleType, str, Callable[..., Any]]] = [
            *((m, "_exit", _exit) for m in (os, posix)),
            *((m, "abort", _abort) for m in (os, posix)),
            *((m, "kill", _kill) for m in (os, posix)),
            *((m, "killpg", _killpg) for m in (os, posix)),
            (signal, "raise_signal", _raise_signal),
            (signal, "pthread_kill", _pthread_kill),
        ]
        for module, name, guard in guards:
            _real[(module, name)] = getattr(module, name)  # os's are posix's own functions
            setattr(module, name, guard)
        os.register_at_fork(after_in_child=_after_fork_in_child)


def _after_fork_in_child() -> None:
    # a child forked by model code (multiprocessing, os.fork) ends as it likes; a worker forked by the
    # server stays guarded
    global _guard_pid
    _guard_pid = None if _model_code(sys._getframe()) is not None else os.getpid()


def _model_code(frame: FrameType | None) -> str | None:
    """The model behind the running code (the module of the innermost model frame, or "a model call"),
    or None."""
    f = frame
    while f is not None:
        name = f.f_globals.get("__name__")
        if isinstance(name, str) and name.startswith(_MODEL_MODULES):
            return name
        if f.f_code in _model_calls:
            return "a model call"
        f = f.f_back
    return None


def _check(call: str, *, status: int | None = None, sig: int | None = None) -> None:
    """Raise ModelExit if model code made this call (two frames up: past the guard)."""
    if _guard_pid != os.getpid():
        return
    where = _model_code(sys._getframe(2))
    if where is None:
        return
    log.warning(
        "%s (thread %r) called %s; blocked, the process keeps serving",
        where,
        threading.current_thread().name,
        call,
    )
    raise ModelExit(call, status, sig)


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)


def _fatal(sig: int) -> bool:
    if sig in _STOPS:
        return True
    if sig in _HARMLESS:
        return False
    try:
        handler = signal.getsignal(sig)
    except (ValueError, OSError):
        return False  # not a signal: the real call says so
    return handler in (signal.SIG_DFL, None)  # None: a handler installed by C (the JVM's crash handler)


def _exit(status: int) -> NoReturn:
    _check(f"os._exit({status!r})", status=status)
    _real[(posix, "_exit")](status)
    raise AssertionError("unreachable")


def _abort() -> NoReturn:
    _check("os.abort()", sig=signal.SIGABRT)
    _real[(posix, "abort")]()
    raise AssertionError("unreachable")


def _kill(pid: int, sig: int) -> None:
    if sig != 0 and pid in (os.getpid(), 0, -1, -os.getpgrp()) and _fatal(sig):
        _check(f"os.kill({pid}, {_signal_name(sig)})", sig=sig)
    _real[(posix, "kill")](pid, sig)


def _killpg(pgid: int, sig: int) -> None:
    if pgid in (0, os.getpgrp()) and _fatal(sig):
        _check(f"os.killpg({pgid}, {_signal_name(sig)})", sig=sig)
    _real[(posix, "killpg")](pgid, sig)


def _raise_signal(sig: int) -> None:
    if _fatal(sig):
        _check(f"signal.raise_signal({_signal_name(sig)})", sig=sig)
    _real[(signal, "raise_signal")](sig)


def _pthread_kill(thread_id: int, sig: int) -> None:
    if _fatal(sig):  # a fatal signal to any of this process's threads ends the process
        _check(f"signal.pthread_kill({thread_id}, {_signal_name(sig)})", sig=sig)
    _real[(signal, "pthread_kill")](thread_id, sig)


__all__ = ["ModelExit", "describe_exit", "install", "runs_model_code"]

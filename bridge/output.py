"""What Java models print, in this process's log.

The host library (org.modelrunner.host.ModelOutput) replaces the JVM's ``System.out``, ``System.err`` and
root ``java.util.logging`` handlers with ones that tag each complete line of a model version
``[model=iris version=3 pid=1234]`` and queue it (bounded: a model thread never waits for the log; lines
that do not fit are dropped and counted). One daemon thread per process drains the queue into Python
logging: logger ``model.<name>``, level INFO for ``System.out``, WARNING for ``System.err``, and a JUL
record's own level (SEVERE: ERROR, WARNING, INFO, finer: DEBUG). Output of code that belongs to no model
passes through to the process's stdout/stderr unchanged.

In a process that has configured no logging (a CLI command), the lines go to stderr as they are.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from typing import Any

import jpype

_lock = threading.Lock()
_done = threading.Condition(_lock)
_started_pid: int | None = None
_logged = 0  # the sequence number of the last line logged (ModelOutput.sequence())
_drainer: threading.Thread | None = None
_closing = threading.Event()

DRAIN_WAIT_MS = 500  # the drainer's wait in the JVM per round (it wakes at once when a line comes)
BATCH = 1000  # lines taken per round

THREAD_NAME = "model-runner-model-output"


def tag(name: str, version: object | None) -> str:
    """The tag of a version's lines and errors: ``model=iris version=3 pid=1234``."""
    shown = "" if version is None or version == "" else f" version={version}"
    return f"model={name}{shown} pid={os.getpid()}"


def install() -> None:
    """Tag model output in this process's JVM and start the thread that logs it (once per process)."""
    global _started_pid, _drainer
    with _lock:
        if _started_pid == os.getpid():
            return
        _started_pid = os.getpid()
    jpype.JClass("org.modelrunner.host.Host").installModelOutput()
    _closing.clear()
    _drainer = threading.Thread(target=_run, name=THREAD_NAME, daemon=True)
    _drainer.start()
    # registered after jpype's own exit handler, so it runs before the JVM is destroyed
    atexit.register(_close, 1.0)


def _close(timeout: float) -> None:
    """At exit: log what models wrote, then take the drainer out of the JVM. A Python thread that is in a
    JVM call (or enters one) while JPype destroys the JVM aborts the process ("Fatal error in exception
    handling")."""
    if _started_pid != os.getpid() or _drainer is None:
        return
    flush(timeout)
    _closing.set()
    try:
        _output_class().close()
    except Exception:  # noqa: BLE001 - no JVM any more: the drainer is not in it
        return
    _drainer.join(timeout)


def flush(timeout: float = 5.0) -> bool:
    """Wait until every line models wrote before this call is logged (at most ``timeout`` seconds);
    False when some are still waiting."""
    if _started_pid != os.getpid():
        return True
    target = int(_output_class().sequence())
    deadline = time.monotonic() + timeout
    with _done:
        while _logged < target:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            _done.wait(left)
    return True


def _output_class() -> Any:
    return jpype.JClass("org.modelrunner.host.ModelOutput")


def _run() -> None:
    global _logged
    try:
        # attached as a daemon: the JVM does not wait for this thread when it is destroyed at exit
        jpype.java.lang.Thread.attachAsDaemon()
        jpype.java.lang.Thread.currentThread().setName(THREAD_NAME)
        output = _output_class()
    except Exception:  # noqa: BLE001 - no JVM (any more): nothing to drain
        return
    while not _closing.is_set():
        try:
            fields = str(output.drain(DRAIN_WAIT_MS, BATCH)).split("\0")
        except Exception as err:  # noqa: BLE001 - the JVM is going away at exit
            if not jpype.isJVMStarted():
                return
            logging.getLogger(__name__).warning("model output: cannot drain (%s)", err)
            time.sleep(1.0)
            continue
        # fields: seq, then (logger, level, text) per line, each followed by NUL (so a last empty field)
        loggers: dict[str, logging.Logger | None] = {}
        for i in range(1, len(fields) - 3, 3):
            name = fields[i]
            if name not in loggers:
                logger = logging.getLogger(name)
                loggers[name] = logger if logger.hasHandlers() else None
            _log(loggers[name], int(fields[i + 1]), fields[i + 2])
        with _done:
            _logged = int(fields[0])
            _done.notify_all()


def _log(logger: logging.Logger | None, level: int, text: str) -> None:
    if logger is not None:
        if logger.isEnabledFor(level):
            logger.log(level, text)
        return
    # nothing configured (a CLI command, not a server): what the model printed, as it printed it
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass

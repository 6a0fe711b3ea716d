"""Threads that would keep a stopping serving process alive, and the model each one belongs to.

Python waits for every non-daemon thread at interpreter exit, and a JVM for every non-daemon Java thread
when it is destroyed: a model that starts such a thread and never stops it would hold its process for
ever. A stopping process lists them here (runner.serving.lifecycle), waits a little, logs them and exits
anyway. A thread is attributed to a model version by where it runs: a Python thread by the files of its
stack (a version folder ``<repo>/models/<name>/versions/<N>/``), a Java thread by its context class
loader (the version's model.jar).
"""

from __future__ import annotations

import os
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

_VERSION_PATH = re.compile(r"[/\\]models[/\\]([^/\\]+)[/\\]versions[/\\]([0-9]+)[/\\]")
_IDLE_POOL_FILE = os.path.join("concurrent", "futures", "thread.py")


@dataclass(frozen=True)
class LingeringThread:
    """A thread that keeps its process from exiting."""

    runtime: str  # "python" or "java"
    name: str
    model: str | None  # "toy version 3", when it runs a model version's code
    where: str  # what it is doing: its innermost frame(s)

    def describe(self) -> str:
        owner = f" of model {self.model}" if self.model else ""
        return f"{self.runtime.capitalize()} thread {self.name!r}{owner} ({self.where})"


def lingering_threads() -> list[LingeringThread]:
    """The non-daemon threads of this process other than the calling one and the main thread (idle
    threads of a concurrent.futures pool are left out: they end at exit), then the non-daemon Java
    threads of its JVM if it runs one."""
    return [*_python_threads(), *_java_threads()]


def _python_threads() -> list[LingeringThread]:
    frames = sys._current_frames()
    me = threading.current_thread()
    out: list[LingeringThread] = []
    for thread in threading.enumerate():
        if thread.daemon or thread is me or thread is threading.main_thread() or not thread.is_alive():
            continue
        frame = frames.get(thread.ident or -1)
        if frame is not None and _idle_pool_thread(frame):
            continue
        out.append(LingeringThread("python", thread.name, _model_of_frames(frame), _where_python(frame)))
    return out


def _idle_pool_thread(frame: FrameType) -> bool:
    # an idle concurrent.futures worker waits in C (SimpleQueue.get): its innermost Python frame is _worker
    return frame.f_code.co_name == "_worker" and frame.f_code.co_filename.endswith(_IDLE_POOL_FILE)


def _model_of_frames(frame: FrameType | None) -> str | None:
    while frame is not None:
        model = _model_of_path(frame.f_code.co_filename)
        if model:
            return model
        frame = frame.f_back
    return None


def _model_of_path(path: str) -> str | None:
    match = _VERSION_PATH.search(path)
    return f"{match.group(1)} version {match.group(2)}" if match else None


def _where_python(frame: FrameType | None) -> str:
    if frame is None:
        return "no frame"
    return f"in {frame.f_code.co_name} at {Path(frame.f_code.co_filename).name}:{frame.f_lineno}"


def _java_threads() -> list[LingeringThread]:
    if "bridge.jvm" not in sys.modules:
        return []  # this process never used the bridge: no JVM (and none is started to find out)
    from bridge.threads import java_threads  # noqa: PLC0415 (only in a process that runs a JVM)

    out: list[LingeringThread] = []
    for info in java_threads():
        model = next((m for url in info["loader_urls"] if (m := _model_of_path(url))), None)
        frames = info["frames"]
        where = f"{info['state']}, at {frames[0]}" if frames else str(info["state"])
        out.append(LingeringThread("java", info["name"], model, where))
    return out

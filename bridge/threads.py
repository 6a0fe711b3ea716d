"""The Java threads of this process's JVM, for a serving process that stops and must say what keeps it.

A JVM waits for its non-daemon threads when it is destroyed (JPype destroys it at interpreter exit), so a
thread a model started and never stopped would keep the process alive. ``java_threads`` names them and
the model whose class loader they run under (their context class loader: a model thread inherits the
version's loader, which the host makes the context loader while model code runs).

Called only when a process stops: wrapping a model's Thread subclass here would pin its class loader
(see bridge/__init__.py), which no longer matters then.
"""

from __future__ import annotations

from typing import Any

import jpype

from bridge.jvm import jvm_started

# threads of the JVM and of JPype itself: never a model's
_SYSTEM = {"main", "DestroyJavaVM", "Python Reference Queue", "model-runner-watchdog"}


def java_threads(*, non_daemon_only: bool = True) -> list[dict[str, Any]]:
    """The live Java threads (by default only the non-daemon ones, other than the JVM's own): each a dict
    ``{"name", "daemon", "state", "loader_urls", "loader", "frames"}`` (loader_urls: the file paths of
    its context class loader, e.g. a version's model.jar; frames: its top stack frames as text). Empty
    when this process runs no JVM."""
    if not jvm_started():
        return []
    thread_class = jpype.JClass("java.lang.Thread")
    url_loader = jpype.JClass("java.net.URLClassLoader")
    current = thread_class.currentThread()
    out: list[dict[str, Any]] = []
    for entry in thread_class.getAllStackTraces().entrySet():
        thread, frames = entry.getKey(), entry.getValue()
        name = str(thread.getName())
        daemon = bool(thread.isDaemon())
        if thread.equals(current) or name in _SYSTEM or (non_daemon_only and daemon):
            continue
        loader = thread.getContextClassLoader()
        urls: list[str] = []
        if loader is not None and isinstance(loader, url_loader):
            urls = [str(url.getPath()) for url in loader.getURLs()]
        out.append(
            {
                "name": name,
                "daemon": daemon,
                "state": str(thread.getState().toString()),
                "loader": str(loader.getName()) if loader is not None and loader.getName() else None,
                "loader_urls": urls,
                "frames": [str(frame.toString()) for frame in list(frames)[:3]],
            }
        )
    return out

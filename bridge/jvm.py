"""The JVM of this process: found, started once (after any fork), with the host library on its classpath."""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jpype

from bridge import output
from bridge.build import host_classes
from bridge.errors import BridgeError, JvmNotFoundError, JvmOptionsError

# Options every JVM gets: the exit guard is a SecurityManager, which JDK 18+ only allows with this flag
# (JDK 17 allows it anyway but this keeps behaviour the same across JDKs).
# -Xrs: the JVM must not take over SIGTERM/SIGINT/SIGHUP, or gunicorn's graceful shutdown and worker
# rolling stop working once a worker has started its JVM.
# -XX:ErrorFile: a JVM crash (a native library's segfault, ...) writes its report (hs_err) into the
# system temp dir, not into the process's working directory (the repository, wherever `serve` started).
ERROR_FILE = os.path.join(tempfile.gettempdir(), "model-runner-hs_err_pid%p.log")
BASE_OPTIONS = ("-Xrs", f"-XX:ErrorFile={ERROR_FILE}")
# The exit guard is a SecurityManager, which JDK 24 removed.
EXIT_GUARD_OPTIONS = ("-Djava.security.manager=allow",)

_lock = threading.RLock()
_started_pid: int | None = None
_options: tuple[str, ...] = ()
_input_arguments: set[str] | None = None


def _jvm_candidates() -> list[Path]:
    libs = ("lib/server/libjvm.so", "jre/lib/server/libjvm.so", "lib/server/libjvm.dylib", "lib/libjli.dylib")
    homes: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        homes.append(Path(os.environ["JAVA_HOME"]))
    java = shutil.which("java")
    if java:
        homes.append(Path(os.path.realpath(java)).parent.parent)
    homes += [Path(p) for p in sorted(glob.glob("/usr/lib/jvm/*"), reverse=True)]
    out: list[Path] = []
    for home in homes:
        for lib in libs:
            p = home / lib
            if p not in out:
                out.append(p)
    return out


def find_jvm() -> tuple[Path, Path]:
    """(libjvm path, JDK home); JvmNotFoundError listing the paths tried."""
    tried = _jvm_candidates()
    for p in tried:
        if p.is_file():
            home = p.parent.parent.parent if p.parent.name == "server" else p.parent.parent
            if home.name == "jre":
                home = home.parent
            return p, home
    raise JvmNotFoundError(
        "no JVM found. Set JAVA_HOME to a JDK 17+ (e.g. export JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64) "
        "or install one (apt-get install openjdk-17-jdk-headless). Tried: " + ", ".join(map(str, tried)),
        {"tried": [str(p) for p in tried]},
    )


def java_major(home: Path) -> int | None:
    """The JDK's major version from its ``release`` file (None when unknown)."""
    try:
        for line in (home / "release").read_text().splitlines():
            if line.startswith("JAVA_VERSION="):
                v = line.split("=", 1)[1].strip().strip('"')
                return int(v.split(".")[0]) if not v.startswith("1.") else int(v.split(".")[1])
    except (OSError, ValueError):
        pass
    return None


def _javac(home: Path) -> str | None:
    p = home / "bin" / "javac"
    return str(p) if p.is_file() else shutil.which("javac")


def start_jvm(options: Sequence[str] = (), max_heap: str | None = None) -> None:
    """Start this process's JVM (idempotent). Never call before a fork: a JVM does not survive one.

    When already running, checks that it has ``options`` (JvmOptionsError otherwise)."""
    global _started_pid, _options
    with _lock:
        if jpype.isJVMStarted():
            if _started_pid is not None and _started_pid != os.getpid():
                raise BridgeError(
                    "the JVM was started in a parent process before fork(); a JVM does not survive a fork. "
                    "Start it in each worker after forking (lazily or in gunicorn's post_fork)"
                )
            if _started_pid is None:
                _adopt_running_jvm()
                output.install()
            require_jvm_options(options)
            return
        libjvm, home = find_jvm()
        classes = host_classes(_javac(home))
        major = java_major(home)
        # JDK 24 removed the SecurityManager: there the exit guard is off (jvm_stats()["exit_guard"]).
        exit_guard = major is None or major < 24
        args = [o for o in BASE_OPTIONS if not _overridden(o, options)]
        args += list(EXIT_GUARD_OPTIONS) if exit_guard else []
        if max_heap:
            args.append(f"-Xmx{max_heap}")
        args += [o for o in options if o not in args]
        jpype.startJVM(str(libjvm), *args, classpath=[str(classes)], convertStrings=False)
        _started_pid = os.getpid()
        _options = tuple(args)
        if exit_guard:
            _install_exit_guard_quietly()
        output.install()  # model output tagged and logged (bridge/output.py)


def _overridden(option: str, options: Sequence[str]) -> bool:
    """A -XX:Name=value base option the caller's ``options`` set too (theirs applies)."""
    name, eq, _ = option.partition("=")
    return bool(eq) and name.startswith("-XX:") and any(o.startswith(name + "=") for o in options)


def error_file(pid: int) -> Path:
    """Where the JVM of process ``pid`` writes its crash report (hs_err) if it crashes (with the
    default -XX:ErrorFile; the file exists only after a crash)."""
    return Path(ERROR_FILE.replace("%p", str(pid)))


def _install_exit_guard_quietly() -> None:
    """JDK 17 prints a four-line deprecation warning straight to the process's stderr (System's initial
    error stream, not System.err) when a SecurityManager is installed. The guard is deliberate, so keep
    the warning out of every worker's log and every CLI's output: silence fd 2 for this one call."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        jpype.JClass("org.modelrunner.host.Host").installExitGuard()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _adopt_running_jvm() -> None:
    """A JVM started by someone else in this process: usable only if the host library is on its classpath."""
    global _started_pid
    try:
        jpype.JClass("org.modelrunner.host.Host")
    except Exception as e:
        raise BridgeError(
            "a JVM is already running in this process without the model-runner host library; "
            "start it with bridge.jvm.start_jvm()"
        ) from e
    _started_pid = os.getpid()


def jvm_started() -> bool:
    """True when this process (not a parent before fork) runs a JVM."""
    return jpype.isJVMStarted() and _started_pid == os.getpid()


def running_options() -> set[str]:
    """The options the running JVM was started with (RuntimeMXBean input arguments)."""
    global _input_arguments
    if _input_arguments is None:
        mx = jpype.JClass("java.lang.management.ManagementFactory").getRuntimeMXBean()
        _input_arguments = {str(a) for a in mx.getInputArguments()} | set(_options)
    return _input_arguments


def require_jvm_options(options: Sequence[str]) -> None:
    """Raise JvmOptionsError if the running JVM lacks any of ``options`` (fixed at JVM start)."""
    if not options:
        return
    have = running_options()
    missing = [o for o in options if o not in have]
    if missing:
        raise JvmOptionsError(
            f"the running JVM lacks options {missing} (JVM options are fixed at start): restart the serving "
            "processes with them (MODEL_RUNNER_JVM_OPTIONS) or roll the workers",
            {"missing": missing, "running": sorted(have)},
        )


def host() -> Any:
    """The host facade class (org.modelrunner.host.Host); starts the JVM if needed."""
    if not jvm_started():
        start_jvm()
    return jpype.JClass("org.modelrunner.host.Host")


def jvm_stats() -> dict[str, Any]:
    """Class-loading, memory and garbage-collection figures of this process's JVM (java.lang.management):
    also ``heap_committed``, ``heap_max`` (-1: no limit) and ``gc``, a list of ``{"name", "collections",
    "time_ms"}`` per collector (counts since the JVM started)."""
    management = jpype.JClass("java.lang.management.ManagementFactory")
    heap = management.getMemoryMXBean().getHeapMemoryUsage()
    gcs = [
        {
            "name": str(gc.getName()),
            "collections": int(gc.getCollectionCount()),
            "time_ms": int(gc.getCollectionTime()),
        }
        for gc in management.getGarbageCollectorMXBeans()
    ]
    # class counts last: the management beans' own classes load on the first call, before the count
    s = [int(x) for x in host().stats()]
    return {
        "loaded_classes": s[0],
        "unloaded_classes": s[1],
        "total_loaded_classes": s[2],
        "metaspace_used": s[3],
        "heap_used": s[4],
        "exit_guard": bool(s[5]),
        "heap_committed": int(heap.getCommitted()),
        "heap_max": int(heap.getMax()),
        "gc": gcs,
    }


def full_gc() -> None:
    """System.gc() (twice): lets closed models' class loaders and classes be unloaded."""
    host().gc()


def stuck_calls() -> list[dict[str, Any]]:
    """The Java calls still running past their deadline + the stuck grace (``-Dmodelrunner.stuckGraceMillis``,
    2000 ms): each ``{"model", "version", "rpc", "java_method", "thread", "overdue_seconds", "deadline_at",
    "stack"}`` (java_method: ``Class.method``; deadline_at: epoch seconds; stack: the thread's current
    frames as text). A call leaves the list when its thread leaves the model code. Empty when this process
    runs no JVM (never starts one)."""
    if not jvm_started():
        return []
    calls: list[dict[str, Any]] = json.loads(str(jpype.JClass("org.modelrunner.host.Host").stuckCalls()))
    return calls


def call_counts() -> dict[str, int]:
    """Java calls since the JVM started: ``abandoned`` (answered with a deadline error while the model still
    ran) and ``stuck`` (declared stuck). Zeros when this process runs no JVM (never starts one)."""
    if not jvm_started():
        return {"abandoned": 0, "stuck": 0}
    abandoned, stuck = (int(x) for x in jpype.JClass("org.modelrunner.host.Host").callCounts())
    return {"abandoned": abandoned, "stuck": stuck}

"""``isolation = "process"``: a model version served by a child process of the serving process.

:class:`ProcessModel` is a Model like any other (the registry, swaps, drains and metrics see no
difference); its calls cross to a child process (runner.runtimes.child) as the contract's bytes over
AF_UNIX socket pairs: one connection per concurrent caller, pooled; the child serves each on its own
thread. The child runs its own interpreter (runner.runtimes.environments.child_interpreter) and, for a
Java bundle, its own JVM.

What the process boundary buys, and the rules:

- a call past its deadline is answered DeadlineExceeded at the deadline. If the child is still running
  it ``stuck_grace`` seconds later, the child is *replaced*: a new one is started, new calls go to it
  once it is ready, and the old one is killed once its other calls have ended (at the latest at the
  deadline of the longest).
- a child that dies (os._exit, a segfault, SIGKILL, the out-of-memory killer, a Java exit past the
  exit guard) fails only the calls it was running, with a ModelError naming the exit code or signal;
  it is restarted at once (after a back-off when restarts keep failing to load), and calls arriving
  meanwhile wait for it within their deadline.
- a load error in the child is raised here as the same core error (InvalidBundle, ...).
- close() tells the child to stop, waits briefly, then kills it. A child dies with its parent
  (PR_SET_PDEATHSIG and the control socket's end of file): no orphans.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner import errors as core_errors
from runner.errors import DeadlineExceeded, ModelError, ModelRunnerError, NotReady, current_request_id
from runner.runtimes.child import ANSWER, CONNECT, CONTROL, OK, STOP, Channel, request_frame
from runner.runtimes.deadline import call_timeout
from runner.runtimes.java import version_label
from runner.settings import CONFIG_ENV, ENV_PREFIX

if TYPE_CHECKING:
    from runner.bundle import Metadata
    from runner.contract import Contract
    from runner.settings import Settings

CHILD_SETTINGS = {CONFIG_ENV, ENV_PREFIX + "JVM_OPTIONS", ENV_PREFIX + "JVM_MAX_HEAP"}
"""The settings a child receives (runner.runtimes.child builds its JVM from them); no others."""

log = logging.getLogger(__name__)

STOP_WAIT = 2.0
"""Seconds a child has to exit once told to stop, before it is killed."""
RESTART_BACKOFF = (0.5, 30.0)
"""First and longest pause between restarts that keep failing (doubling)."""
SHORT_LIFE = 5.0
"""A child that dies within this many seconds of its start counts as a failed start (restarts back off)."""


def _core_error(data: Any) -> ModelRunnerError:
    """A core error sent by the child as JSON, as the same class."""
    data = data if isinstance(data, dict) else {}
    cls = getattr(core_errors, str(data.get("class")), None)
    if not (isinstance(cls, type) and issubclass(cls, ModelRunnerError)):
        cls = ModelRunnerError
    detail = data.get("detail")
    return cls(
        str(data.get("message") or "the model process failed"), detail if isinstance(detail, dict) else {}
    )


def _exit_facts(returncode: int | None, pid: int) -> tuple[str, dict[str, Any]]:
    """('exited with signal SIGSEGV', detail) for a child's exit status."""
    detail: dict[str, Any] = {"pid": pid}
    if returncode is None:
        return "closed its channel", detail
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        detail.update(signal=name, signal_number=-returncode)
        if -returncode == signal.SIGKILL:
            detail["hint"] = "killed with SIGKILL: from outside, often by the kernel's out-of-memory killer"
        return f"exited with signal {name}", detail
    detail["exit_code"] = returncode
    return f"exited with code {returncode}", detail


# ------------------------------------------------------------------------------------------- spawning
# PR_SET_PDEATHSIG fires when the parent *thread* that created the child ends, not the process: every
# child is created by one long-lived thread of this process.

_spawn_lock = threading.Lock()
_spawn_queue: queue.SimpleQueue[tuple[list[str], dict[str, str], int, list[Any], threading.Event]] | None = (
    None
)
_spawn_pid = 0


def _spawner(
    jobs: queue.SimpleQueue[tuple[list[str], dict[str, str], int, list[Any], threading.Event]],
) -> None:
    while True:
        argv, env, fd, box, done = jobs.get()
        try:
            box.append(subprocess.Popen(argv, env=env, pass_fds=(fd,), stdin=subprocess.DEVNULL))
        except BaseException as err:  # noqa: BLE001 (handed to the caller)
            box.append(err)
        done.set()


def _spawn(argv: list[str], env: dict[str, str], fd: int) -> subprocess.Popen[bytes]:
    global _spawn_queue, _spawn_pid
    with _spawn_lock:
        if _spawn_queue is None or _spawn_pid != os.getpid():
            _spawn_queue, _spawn_pid = queue.SimpleQueue(), os.getpid()
            threading.Thread(
                target=_spawner, args=(_spawn_queue,), name="model-process-spawner", daemon=True
            ).start()
        jobs = _spawn_queue
    box: list[Any] = []
    done = threading.Event()
    jobs.put((argv, env, fd, box, done))
    done.wait()
    if isinstance(box[0], BaseException):
        raise box[0]
    proc: subprocess.Popen[bytes] = box[0]
    return proc


# ---------------------------------------------------------------------------------------------- child


class _Child:
    """One child process: its control socket, its idle connections, the calls it runs."""

    def __init__(
        self, proc: subprocess.Popen[bytes], control: socket.socket, bindings: dict[str, dict[str, Any]]
    ):
        self.proc = proc
        self.pid = proc.pid
        self.control = control
        self.bindings = bindings
        self.exited = threading.Event()
        self.ready_at = time.monotonic()
        self.replacing = False
        self.in_flight = 0
        self.latest_deadline: float | None = 0.0  # None: a call without a deadline started
        self._idle: list[Channel] = []
        self._lock = threading.Lock()
        self._calls_ended = threading.Condition(self._lock)
        self._control_lock = threading.Lock()

    def begin(self, deadline: float | None) -> None:
        with self._lock:
            self.in_flight += 1
            if deadline is None:
                self.latest_deadline = None
            elif self.latest_deadline is not None and deadline > self.latest_deadline:
                self.latest_deadline = deadline

    def end(self) -> None:
        with self._lock:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._calls_ended.notify_all()

    def take(self) -> Channel:
        """An idle connection, or a new one handed to the child (OSError: the child is gone)."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
        ours, theirs = socket.socketpair()
        try:
            with self._control_lock:
                socket.send_fds(self.control, [CONNECT], [theirs.fileno()])
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        return Channel(ours)

    def give_back(self, conn: Channel) -> None:
        with self._lock:
            if not self.exited.is_set():
                self._idle.append(conn)
                return
        conn.close()

    def wait_calls(self, limit: float) -> None:
        """Until no call runs here, or the deadline of the longest one (at most ``limit`` seconds)."""
        end = time.monotonic() + limit
        with self._lock:
            while self.in_flight > 0:
                until = end if self.latest_deadline is None else min(end, self.latest_deadline)
                left = until - time.monotonic()
                if left <= 0:
                    return
                self._calls_ended.wait(left)

    def exit_facts(self, wait: float) -> tuple[str, dict[str, Any]]:
        self.exited.wait(wait)
        return _exit_facts(self.proc.returncode, self.pid)

    def stop(self, wait: float = STOP_WAIT) -> None:
        """Tell the child to stop, wait up to ``wait`` seconds, then kill it."""
        if self.proc.poll() is None:
            try:
                with self._control_lock:
                    self.control.sendall(STOP)
            except OSError:
                pass
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                self.kill()
        self.drop_connections()

    def kill(self) -> None:
        try:
            self.proc.kill()
        except OSError:
            pass
        self.proc.wait()
        self.drop_connections()

    def drop_connections(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        self.control.close()


# ---------------------------------------------------------------------------------------------- model


class ProcessModel:
    """A model version served by a child process (implements runner.runtimes.Model)."""

    def __init__(self, version_dir: Path, metadata: Metadata, contract: Contract, settings: Settings):
        self.version_dir = Path(version_dir)
        self.metadata = metadata
        self.contract = contract
        self.settings = settings
        self.name = metadata.name
        self.version = version_label(self.version_dir)
        self.what = f"the model process of {self.name} version {self.version}"
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # a child became ready, or the model closed
        self._closed = False
        self._closing = threading.Event()
        self._restarting = False
        self._short_lives = 0  # children in a row that died within SHORT_LIFE of their start
        self._restart_failure: ModelRunnerError | None = None
        self._starting: set[subprocess.Popen[bytes]] = set()
        self._retiring: set[_Child] = set()
        self._child: _Child | None = self._start_child()
        self.bindings: dict[str, dict[str, Any]] = dict(self._child.bindings)

    # ---- calls -----------------------------------------------------------------------------------------

    def invoke(self, method: str, request: bytes, timeout: float | None = None) -> bytes:
        self.contract.method(method)  # MethodNotFound for an rpc the contract lacks
        limit = call_timeout(timeout, bundle=self.metadata.timeout_seconds)
        deadline = None if limit is None else time.monotonic() + limit
        frame = request_frame(method, current_request_id(), bytes(request))
        for attempt in (1, 2):
            child = self._child
            if child is None or child.exited.is_set() or self._closed:
                child = self._wait_for_child(deadline, method, limit)
            child.begin(deadline)
            try:
                try:
                    conn = child.take()
                except OSError:
                    if attempt == 1 and child.exited.wait(0.5):
                        continue  # it was gone before it got the call: the next child takes it
                    raise self._crashed(child, method) from None
                try:
                    conn.send(frame, deadline)
                    got = conn.read(ANSWER, deadline)
                except TimeoutError:
                    self._watch_overrun(child, conn, method)
                    raise DeadlineExceeded(
                        f"{self.name}.{method} did not answer within {limit:g}s",
                        {"rpc": method, "timeout": limit, "isolation": "process"},
                    ) from None
                except OSError:
                    got = None
                if got is None:
                    conn.close()
                    raise self._crashed(child, method)
                (_, status), payload = got
                child.give_back(conn)
                if status == OK:
                    return payload
                raise _core_error(json.loads(payload))
            finally:
                child.end()
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _wait_for_child(self, deadline: float | None, method: str, limit: float | None) -> _Child:
        """The serving child once it is (back) up; NotReady if it cannot be, DeadlineExceeded if the
        call's deadline passes first."""
        end = deadline if deadline is not None else time.monotonic() + self.settings.load_timeout
        with self._changed:
            while True:
                if self._closed:
                    raise NotReady(f"{self.name} version {self.version} is closed", {"rpc": method})
                child = self._child
                if child is not None and not child.exited.is_set():
                    return child
                failure = self._restart_failure
                if failure is not None:
                    raise NotReady(
                        f"{self.what} is being restarted; its last start failed: {failure.message}",
                        {"rpc": method, "restart_error": failure.to_dict()["error"]},
                    )
                left = end - time.monotonic()
                if left <= 0:
                    if deadline is None:
                        raise NotReady(f"{self.what} is being restarted", {"rpc": method})
                    raise DeadlineExceeded(
                        f"{self.name}.{method} did not answer within {limit:g}s: {self.what} is being restarted",
                        {"rpc": method, "timeout": limit, "isolation": "process"},
                    )
                self._changed.wait(left)

    def _crashed(self, child: _Child, method: str) -> ModelError:
        how, detail = child.exit_facts(5.0)
        if not child.exited.is_set():  # alive but it dropped the connection: do not trust it further
            self._replace(child, f"it closed its connection while running {method}")
        restarting = not self._closed
        detail.update(rpc=method, restarting=restarting)
        if self.metadata.runtime == "java" and child.exited.is_set():
            from runner.runtimes.java import jvm_crash_report  # noqa: PLC0415 (imports the bridge)

            report = jvm_crash_report(child.pid)
            if report is not None:
                detail["jvm_crash_report"] = str(report)
        return ModelError(
            f"{self.what} {how} while running {method}" + ("; it is being restarted" if restarting else ""),
            detail,
        )

    def _watch_overrun(self, child: _Child, conn: Channel, method: str) -> None:
        """A call past its deadline: if the child still runs it ``stuck_grace`` seconds later, replace
        the child; if it answers by then, the connection serves again."""
        grace = self.settings.stuck_grace

        def watch() -> None:
            try:
                got = conn.read(ANSWER, time.monotonic() + grace)
            except TimeoutError:
                conn.close()
                log.warning(
                    "%s (pid %d) still runs %s %gs past its deadline: replacing the process",
                    self.what,
                    child.pid,
                    method,
                    grace,
                )
                self._replace(child, f"{method} still running {grace:g}s past its deadline")
                return
            except OSError:
                got = None
            if got is None:
                conn.close()  # the child died: its watcher restarts it
            else:
                child.give_back(conn)

        threading.Thread(target=watch, name=f"overrun-{self.name}-v{self.version}", daemon=True).start()

    # ---- children --------------------------------------------------------------------------------------

    def _start_child(self) -> _Child:
        """Start a child and wait until it reports ready (within load_timeout); its load error raised
        as the same core error."""
        from runner.runtimes.environments import child_interpreter  # noqa: PLC0415 (task D's module)

        prefix, extra_env = child_interpreter(self.version_dir, self.metadata, self.settings)
        ours, theirs = socket.socketpair()
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
        argv = [
            *prefix,
            "-m",
            "runner.runtimes.child",
            "--version-dir",
            str(self.version_dir),
            "--control-fd",
            str(theirs.fileno()),
            "--parent",
            str(os.getpid()),
            "--tag",
            f"model={self.name} version={self.version}",
            "--log-level",
            str(level),
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}  # no admin token
        env.update({k: v for k, v in self.settings.to_env().items() if k in CHILD_SETTINGS})
        env.update(extra_env)
        try:
            proc = _spawn(argv, env, theirs.fileno())
        except OSError as err:
            ours.close()
            raise NotReady(f"cannot start {self.what}: {err}", {"argv": argv}) from err
        finally:
            theirs.close()
        with self._lock:
            self._starting.add(proc)
        try:
            self._send_contract(ours)
            return self._await_ready(proc, ours)
        except BaseException:
            ours.close()
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            raise
        finally:
            with self._lock:
                self._starting.discard(proc)

    def _send_contract(self, control: socket.socket) -> None:
        """The compiled contract, for the child (a model's own environment has no protoc)."""
        source = json.dumps(
            {"proto_text": self.contract.proto_text, "filename": self.contract.filename}
        ).encode()
        fds = self.contract.file_descriptor_set
        control.settimeout(self.settings.load_timeout)
        try:
            control.sendall(CONTROL.pack(len(source)) + source + CONTROL.pack(len(fds)) + fds)
        except OSError:
            pass  # the child is gone already: _await_ready says how it ended

    def _await_ready(self, proc: subprocess.Popen[bytes], control: socket.socket) -> _Child:
        limit = self.settings.load_timeout
        try:
            got = Channel(control).read(CONTROL, time.monotonic() + limit)
        except TimeoutError:
            raise DeadlineExceeded(
                f"{self.what} did not load within load_timeout={limit:g}s; it was killed",
                {"model": self.name, "version": self.version, "load_timeout": limit, "pid": proc.pid},
            ) from None
        except OSError:
            got = None
        if got is None:
            try:
                proc.wait(5.0)
            except subprocess.TimeoutExpired:
                pass
            how, detail = _exit_facts(proc.poll(), proc.pid)
            raise core_errors.InvalidBundle(f"{self.what} {how} while loading", detail)
        message = json.loads(got[1])
        if "error" in message:
            raise _core_error(message["error"])
        control.settimeout(None)
        child = _Child(proc, control, dict(message.get("bindings") or {}))
        threading.Thread(
            target=self._watch_exit,
            args=(child,),
            name=f"model-process-{self.name}-v{self.version}",
            daemon=True,
        ).start()
        log.info("%s serves from pid %d", self.what, proc.pid)
        return child

    def _watch_exit(self, child: _Child) -> None:
        """Wait for the child to end; restart it if it was serving and nobody asked it to stop."""
        returncode = child.proc.wait()
        child.exited.set()
        with self._changed:
            current = self._child is child
            if current:
                self._child = None
            restart = current and not self._closed
            self._retiring.discard(child)
            if current:
                short = time.monotonic() - child.ready_at < SHORT_LIFE
                self._short_lives = self._short_lives + 1 if short else 0
        child.drop_connections()
        if restart:
            how, _detail = _exit_facts(returncode, child.pid)
            log.error("%s (pid %d) %s: restarting it", self.what, child.pid, how)
            self._restart()

    def _restart(self) -> None:
        with self._lock:
            if self._restarting or self._closed:
                return
            self._restarting = True
        threading.Thread(
            target=self._restart_loop, name=f"restart-{self.name}-v{self.version}", daemon=True
        ).start()

    def _restart_loop(self) -> None:
        failures = self._short_lives  # a child crashing right after each start backs off too
        try:
            while not self._closing.is_set():
                if failures:
                    pause = min(RESTART_BACKOFF[0] * 2 ** (failures - 1), RESTART_BACKOFF[1])
                    if self._closing.wait(pause):
                        return
                try:
                    child = self._start_child()
                except ModelRunnerError as err:
                    failures += 1
                    if self._closing.is_set():
                        return
                    with self._changed:
                        self._restart_failure = err
                        self._changed.notify_all()
                    log.error("%s could not be restarted (attempt %d): %s", self.what, failures, err.message)
                    continue
                with self._changed:
                    if not self._closed:
                        self._child, self._restart_failure = child, None
                        self._changed.notify_all()
                        return
                child.stop()
                return
        finally:
            with self._lock:
                self._restarting = False

    def _replace(self, old: _Child, why: str) -> None:
        """Start a new child, send new calls to it once it is ready, then kill ``old`` once its other
        calls have ended (at the latest at the deadline of the longest)."""
        with self._lock:
            if self._closed or self._child is not old or old.replacing:
                return
            old.replacing = True

        def run() -> None:
            try:
                new = self._start_child()
            except ModelRunnerError as err:
                log.error(
                    "%s: its replacement did not start (%s); the stuck one keeps serving",
                    self.what,
                    err.message,
                )
                old.replacing = False
                return
            with self._changed:
                swap = not self._closed and self._child is old
                if swap:
                    self._child = new
                    self._retiring.add(old)
                    self._changed.notify_all()
            if not swap:
                new.stop()
                return
            log.warning("%s: pid %d replaced pid %d (%s)", self.what, new.pid, old.pid, why)
            old.wait_calls(self.settings.predict_timeout)
            old.kill()
            with self._lock:
                self._retiring.discard(old)

        threading.Thread(target=run, name=f"replace-{self.name}-v{self.version}", daemon=True).start()

    # ---- end ------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every child of this version (told to stop, then killed after STOP_WAIT seconds)."""
        with self._changed:
            if self._closed:
                return
            self._closed = True
            self._closing.set()
            children = [c for c in (self._child, *self._retiring) if c is not None]
            starting = list(self._starting)
            self._changed.notify_all()
        for proc in starting:
            proc.kill()
        for child in children:
            child.stop()

    def __repr__(self) -> str:
        child = self._child
        return f"<ProcessModel {self.name} {self.metadata.entry_point} pid {child.pid if child else None}>"

"""The child process of a model version run with ``isolation = "process"`` (parent side:
runner.runtimes.process), and the frames both sides exchange.

``python -m runner.runtimes.child --version-dir DIR --control-fd N --parent PID`` loads the bundle in
DIR in this process (a PythonModel, or a JavaModelAdapter over this process's own JVM), reports on the
control socket either ``{"ready": true, "bindings": ...}`` or ``{"error": {"class", "message",
"detail"}}``, then serves calls until the parent says stop or goes away.

Channels (all AF_UNIX socket pairs made by the parent, so nothing else can connect):

- control (fd N, inherited): parent -> child first the contract, compiled (two length-prefixed frames:
  JSON ``{"proto_text", "filename"}``, then the FileDescriptorSet); child -> parent one length-prefixed
  JSON message (ready or error); then parent -> child one byte per message: ``C`` with a data socket attached (SCM_RIGHTS: a new connection,
  served on its own thread), ``S`` (stop: close the model and exit). End of file: the parent died.
- data, one per concurrent caller of the parent (pooled there), strictly request then answer:
  request ``REQUEST`` header (payload length, method length, request-id length), then
  method, request id and the request message's bytes; answer ``ANSWER`` header (payload length,
  status), then the answer message's bytes (``OK``) or a core error as JSON (``FAILED``).

The child dies with its parent: PR_SET_PDEATHSIG (SIGKILL) and the control socket's end of file. It
ignores SIGINT and SIGTERM (a Ctrl-C or a service stop reaches the whole process group): the parent
stops it once its calls have drained.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import json
import logging
import os
import signal
import socket
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any, NoReturn, TextIO

REQUEST = struct.Struct("<IHB")
"""payload length (method + request id + message), method length, request-id length. No deadline:
the parent keeps each call's deadline (and replaces a child that overruns one for good)."""
ANSWER = struct.Struct("<IB")
"""payload length, status (OK: the answer message; FAILED: a core error as JSON)."""
CONTROL = struct.Struct("<I")
"""length of the JSON message that follows (child -> parent)."""
OK, FAILED = 0, 1
SPIN_SECONDS = float(os.environ.get("MODEL_RUNNER_CHANNEL_SPIN_US", "25")) * 1e-6
"""How long a read polls before it blocks: an answer (or the next request of a busy caller) usually comes
within it, and a blocked thread's wake-up costs more than the poll (bench/isolation_bench.py)."""
CONNECT, STOP = b"C", b"S"


class Channel:
    """One end of a socket pair read frame by frame (a header struct whose first field is the
    payload's length). Bytes of a frame not yet complete stay buffered: a read that timed out may be
    resumed."""

    __slots__ = ("sock", "_buf")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = bytearray()

    def _fill(self, need: int, deadline: float | None) -> bool:
        while len(self._buf) < need:
            chunk = self._spin(max(need - len(self._buf), 65536))
            if chunk is not None:
                if not chunk:
                    return False
                self._buf += chunk
                continue
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                self.sock.settimeout(left)
            chunk = self.sock.recv(max(need - len(self._buf), 65536))
            if not chunk:
                return False
            self._buf += chunk
        return True

    def _spin(self, size: int) -> bytes | None:
        """What arrives within SPIN_SECONDS, polled without sleeping; None if nothing did. A thread woken
        from a blocking read costs tens of microseconds here, more than the call it waits for (a model
        slower than the poll pays the poll in vain: SPIN_SECONDS of one core per call)."""
        if SPIN_SECONDS <= 0:
            return None
        if self.sock.gettimeout() is not None:
            self.sock.settimeout(None)  # MSG_DONTWAIT returns at once only on a blocking socket
        end = time.perf_counter() + SPIN_SECONDS
        while True:
            try:
                return self.sock.recv(size, socket.MSG_DONTWAIT)
            except BlockingIOError:
                if time.perf_counter() >= end:
                    return None

    def read(
        self, header: struct.Struct, deadline: float | None = None
    ) -> tuple[tuple[Any, ...], bytes] | None:
        """The next frame's header fields and payload; None at end of file; TimeoutError past
        ``deadline`` (time.monotonic(); None: wait as long as it takes)."""
        if deadline is None and self.sock.gettimeout() is not None:
            self.sock.settimeout(None)
        if not self._fill(header.size, deadline):
            return None
        fields = header.unpack_from(self._buf)
        end = header.size + fields[0]
        if not self._fill(end, deadline):
            return None
        payload = bytes(self._buf[header.size : end])
        del self._buf[:end]
        return fields, payload

    def send(self, data: bytes, deadline: float | None = None) -> None:
        self.sock.settimeout(None if deadline is None else max(deadline - time.monotonic(), 0.001))
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()


def request_frame(method: str, request_id: str | None, body: bytes) -> bytes:
    m = method.encode()
    rid = (request_id or "").encode()[:255]
    return REQUEST.pack(len(m) + len(rid) + len(body), len(m), len(rid)) + m + rid + body


def error_json(err: BaseException, *, default: str = "ModelError") -> bytes:
    """A failure as the JSON the parent turns back into the same core error."""
    from runner.errors import ModelRunnerError  # noqa: PLC0415 (this module's top stays import-light)

    if isinstance(err, ModelRunnerError):
        data = {"class": type(err).__name__, "message": err.message, "detail": err.detail}
    else:
        data = {
            "class": default,
            "message": f"{type(err).__name__}: {err}",
            "detail": {"exception_class": type(err).__name__, "exception_message": str(err)},
        }
    return json.dumps(data, default=str).encode()


# ---------------------------------------------------------------------------------------------- child


class _TaggedLines:
    """``print`` of a model: each line written gets the model's tag (sys.stdout / sys.stderr)."""

    def __init__(self, stream: TextIO, tag: str) -> None:
        self._stream = stream
        self._prefix = f"[{tag}] "
        self._partial = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            lines = (self._partial + text).split("\n")
            self._partial = lines.pop()
            if lines:
                self._stream.write("".join(f"{self._prefix}{line}\n" for line in lines))
                self._stream.flush()
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._partial:
                self._stream.write(f"{self._prefix}{self._partial}\n")
                self._partial = ""
            self._stream.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:
        return self._stream.encoding


def _die_with_parent(parent: int) -> None:
    """SIGKILL when the parent dies (Linux), and at once if it is gone already."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass  # the control socket's end of file still ends this process
    if os.getppid() != parent:
        os._exit(1)


def _no_core_files() -> None:
    """A crashing model leaves no core file in the service's working directory."""
    try:
        import resource  # noqa: PLC0415 (POSIX only)

        resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    except (ImportError, ValueError, OSError):
        pass


def _send_control(control: socket.socket, message: dict[str, Any]) -> None:
    data = json.dumps(message, default=str).encode()
    control.sendall(CONTROL.pack(len(data)) + data)


def _read_exact(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))  # never more: what follows on the control socket carries fds
        if not chunk:
            raise EOFError("the parent closed the control socket")
        data += chunk
    return bytes(data)


def _read_control(control: socket.socket) -> bytes:
    (size,) = CONTROL.unpack(_read_exact(control, CONTROL.size))
    return _read_exact(control, size)


def _load(version_dir: Path, control: socket.socket) -> tuple[Any, bool]:
    """The model of the bundle in ``version_dir``, loaded in this process; (model, is_java). The
    contract is the parent's, compiled there (a model's own environment has no protoc)."""
    from runner.bundle import read_metadata  # noqa: PLC0415 (after the process is set up)
    from runner.contract import Contract  # noqa: PLC0415
    from runner.settings import Settings  # noqa: PLC0415

    source = json.loads(_read_control(control))
    contract = Contract(source["proto_text"], source["filename"], _read_control(control))
    metadata = read_metadata(version_dir)
    settings = Settings.from_env(only=("jvm_options", "jvm_max_heap"))  # the parent's (Settings.to_env)
    # no deadline in here: the parent keeps each call's (a JVM timer per call costs more than the whole
    # process boundary; a Python call would be abandoned on a pool thread, out of the parent's sight)
    untimed = dataclasses.replace(metadata, timeout_seconds=None)
    if metadata.runtime == "java":
        from runner.runtimes.java import JavaModelAdapter  # noqa: PLC0415

        # its own JVM: the settings' options and heap plus the bundle's (a crash report goes to the
        # temp dir: bridge.jvm's -XX:ErrorFile)
        return JavaModelAdapter(version_dir, untimed, contract, settings=settings), True
    if metadata.acumos_dump:
        from runner.runtimes.python.acumos import AcumosModel  # noqa: PLC0415

        return AcumosModel(version_dir, untimed, contract), False
    from runner.runtimes.python.model import PythonModel  # noqa: PLC0415

    return PythonModel(version_dir, untimed, contract), False


def _serve_connection(conn: Channel, model: Any) -> None:
    from runner.errors import enter_request, leave_request  # noqa: PLC0415

    while True:
        try:
            got = conn.read(REQUEST)
        except OSError:
            got = None
        if got is None:
            conn.close()
            return
        (_, method_len, rid_len), payload = got
        method = payload[:method_len].decode()
        rid = payload[method_len : method_len + rid_len].decode()
        token = enter_request(rid) if rid else None
        try:
            answer = model.invoke(method, payload[method_len + rid_len :], None)
            status = OK
        except BaseException as err:  # noqa: BLE001 (every failure goes back to the caller)
            answer, status = error_json(err), FAILED
        finally:
            if token is not None:
                leave_request(token)
        try:
            conn.send(ANSWER.pack(len(answer), status) + answer)
        except OSError:
            conn.close()
            return


def _exit(model: Any, code: int) -> NoReturn:
    """Close the model (on a stop), flush what it printed, and end without waiting for its threads."""
    try:
        if model is not None:
            model.close()
    except Exception:
        logging.getLogger(__name__).exception("closing the model failed")
    output = sys.modules.get("bridge.output")
    if output is not None:
        output.flush(1.0)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m runner.runtimes.child")
    parser.add_argument("--version-dir", required=True, type=Path)
    parser.add_argument("--control-fd", required=True, type=int)
    parser.add_argument("--parent", required=True, type=int)
    parser.add_argument("--tag", default="")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    _die_with_parent(args.parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _no_core_files()
    tag = f"{args.tag} pid={os.getpid()}".strip()
    logging.basicConfig(
        level=args.log_level if isinstance(logging.getLevelName(args.log_level), int) else "INFO",
        stream=sys.stderr,
        format=f"%(asctime)s model-process[{tag}] %(levelname)s %(name)s: %(message)s",
    )
    plain_stderr = sys.stderr
    sys.stdout = _TaggedLines(sys.stdout, tag)
    sys.stderr = _TaggedLines(plain_stderr, tag)
    control = socket.socket(fileno=args.control_fd)
    try:
        model, java = _load(args.version_dir.resolve(), control)
    except BaseException as err:  # noqa: BLE001 (reported to the parent, which raises it)
        _send_control(control, {"error": json.loads(error_json(err, default="InvalidBundle"))})
        _exit(None, 0)
    if not java:
        import faulthandler  # noqa: PLC0415 (not with a JVM: it handles SIGSEGV itself)

        faulthandler.enable(file=plain_stderr)  # a crash prints the Python stacks to the log
    _send_control(control, {"ready": True, "bindings": model.bindings, "pid": os.getpid()})
    while True:
        try:
            message, fds, _flags, _addr = socket.recv_fds(control, 1, 8)
        except OSError:
            message, fds = b"", []
        if message == CONNECT:
            for fd in fds:
                conn = Channel(socket.socket(fileno=fd))
                threading.Thread(
                    target=_serve_connection, args=(conn, model), name=f"conn-{fd}", daemon=True
                ).start()
            continue
        for fd in fds:
            os.close(fd)
        if message == STOP:
            _exit(model, 0)
        # end of file: the parent is gone; nobody is left to answer
        _exit(None, 0)


if __name__ == "__main__":
    main()

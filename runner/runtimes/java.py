"""Java models: the core's Model over bridge.model.JavaModel.

This is the one place where bridge errors become core errors (runner/errors.py):

=====================================  ==========================================================
bridge                                 core
=====================================  ==========================================================
JavaModelError, JavaExitError          ModelError (detail: java_class, java_message, java_stack)
JavaModelError with detail input=True  BadInput (the request bytes are not the rpc's input message)
JavaDeadlineError                      DeadlineExceeded
JavaLoadError, BindError               InvalidBundle (detail: problems for a BindError)
JvmOptionsError                        InvalidBundle (detail: missing options, hint to restart)
JvmNotFoundError                       NotReady (detail: tried paths, hint)
=====================================  ==========================================================

A call that fails in the model (ModelError, DeadlineExceeded) is logged here, once, with the Java stack
trace, under the request's id (runner.errors.current_request_id: the one the client gave or the edge
generated; a fresh one outside a request) put in the error's detail (``request_id``): the edges answer with that id and
leave the stack out of the answer unless the ``error_traces`` setting is on. The log record goes to logger
``model.<name>`` tagged ``[model=<name> version=<N> pid=<pid>]``, as the model's own output is
(bridge/output.py).
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from runner.errors import (
    BadInput,
    DeadlineExceeded,
    InvalidBundle,
    InvalidContract,
    ModelError,
    ModelRunnerError,
    NotReady,
    current_request_id,
)
from runner.runtimes.deadline import call_timeout

if TYPE_CHECKING:
    from runner.bundle import Metadata
    from runner.contract import Contract
    from runner.settings import Settings

T = TypeVar("T")
_start_lock = threading.Lock()
_STUCK_GRACE_OPTION = "-Dmodelrunner.stuckGraceMillis="
_VERSIONS_DIR = "versions"  # <repo>/models/<name>/versions/<N>: the repository's layout (runner.store)


def map_bridge_error(
    err: Exception, *, name: str, rpc: str | None = None, loading: bool = False
) -> Exception:
    """A bridge error as a core error (anything else is returned unchanged)."""
    from bridge import errors as be  # noqa: PLC0415

    if isinstance(err, ModelRunnerError) or not isinstance(err, be.BridgeError):
        return err
    detail: dict[str, Any] = dict(getattr(err, "detail", None) or {})
    message = getattr(err, "message", None) or str(err)
    where = f"{name}.{rpc}" if rpc else name
    if rpc:
        detail.setdefault("rpc", rpc)
    if isinstance(err, be.JavaDeadlineError):
        return DeadlineExceeded(f"{where}: {message}", detail)
    if isinstance(err, be.JavaModelError) and detail.get("input"):
        # the request bytes did not parse as the rpc's input message: the caller's fault, not the model's
        clean = {k: v for k, v in detail.items() if v not in ("", None) and k != "input"}
        return BadInput(f"{where}: {message}", clean)
    if isinstance(err, be.JavaModelError):  # JavaExitError included
        detail.setdefault("exception_class", detail.get("java_class"))
        detail.setdefault("exception_message", detail.get("java_message"))
        if isinstance(err, be.JavaExitError):
            detail["exit"] = True
        return ModelError(f"{where}: {message}", detail)
    if isinstance(err, be.BindError):
        # the bridge's message already lists every problem (rpc, message, field and reason)
        return InvalidBundle(f"{name}: the Java class does not serve the contract: {message}", detail)
    if isinstance(err, be.JvmOptionsError):
        missing = list(detail.get("missing") or [])
        detail.setdefault(
            "hint",
            "the running JVM was started without "
            + " ".join(missing)
            + "; restart the service with them (MODEL_RUNNER_JVM_OPTIONS or `serve --jvm-option`), "
            "e.g. a rolling restart of the workers",
        )
        return InvalidBundle(f"{name} needs JVM options the running JVM lacks: {' '.join(missing)}", detail)
    if isinstance(err, be.JavaLoadError):
        return InvalidBundle(f"{name}: {message}", detail)
    if isinstance(err, be.JvmNotFoundError):
        detail.setdefault("hint", "install a JDK 17+ or set JAVA_HOME")
        return NotReady(f"no Java runtime to run {name}: {message}", detail)
    return (
        ModelError(f"{where}: {message}", detail)
        if not loading
        else InvalidBundle(f"{name}: {message}", detail)
    )


def ensure_jvm(jvm_options: Sequence[str], settings: Settings, *, name: str = "model") -> None:
    """Start this process's JVM (with the settings' options and heap plus ``jvm_options``) or, if it
    runs already, check it has ``jvm_options`` (InvalidBundle naming the missing ones)."""
    from bridge import jvm  # noqa: PLC0415 (the bridge, only when needed)

    try:
        with _start_lock:
            if not jvm.jvm_started():
                options = list(dict.fromkeys([*settings.jvm_options, *jvm_options]))
                if not any(o.startswith(_STUCK_GRACE_OPTION) for o in options):
                    # the host declares a call stuck itself: with the same grace as Python calls
                    options.append(f"{_STUCK_GRACE_OPTION}{round(settings.stuck_grace * 1000)}")
                jvm.start_jvm(options, max_heap=settings.jvm_max_heap)
                return
        jvm.require_jvm_options(list(jvm_options))
    except Exception as err:  # mapped to a core error
        raise map_bridge_error(err, name=name, loading=True) from err


def running_jvm_options() -> list[str] | None:
    """The options this process's JVM runs with, or None when it has no JVM (yet). Cheap, and never
    imports the bridge itself: a process that has not imported it cannot have started a JVM."""
    jvm = sys.modules.get("bridge.jvm")
    if jvm is None or not jvm.jvm_started():
        return None
    return sorted(jvm.running_options())


def jvm_stats() -> dict[str, Any] | None:
    """This process's JVM figures (bridge.jvm.jvm_stats: heap, Metaspace, classes, garbage collections),
    or None when it has no JVM; never starts one."""
    jvm = sys.modules.get("bridge.jvm")
    if jvm is None or not jvm.jvm_started():
        return None
    stats: dict[str, Any] = jvm.jvm_stats()
    return stats


def jvm_crash_report(pid: int, *, max_age: float = 60.0) -> Path | None:
    """The crash report (hs_err, bridge.jvm.error_file) the JVM of the process ``pid`` that just ended left,
    or None; written within the last ``max_age`` seconds (an older one is of an earlier process with that
    pid). For the parent of serving processes: imports the bridge (never starts a JVM)."""
    try:
        from bridge.jvm import error_file  # noqa: PLC0415 (the bridge, only when needed)
    except ImportError:
        return None
    report = error_file(pid)
    try:
        fresh = time.time() - report.stat().st_mtime < max_age
    except OSError:
        return None
    return report if fresh else None


def java_stuck_calls() -> list[dict[str, Any]]:
    """The Java calls of this process still running well past their deadline (bridge.jvm.stuck_calls:
    model, version, rpc, java_method, thread, overdue_seconds, stack); [] when it has no JVM. Cheap; never
    starts a JVM nor imports the bridge."""
    jvm = sys.modules.get("bridge.jvm")
    if jvm is None or not jvm.jvm_started():
        return []
    calls: list[dict[str, Any]] = jvm.stuck_calls()
    return calls


def java_call_counts() -> dict[str, int]:
    """Java calls of this process ever ``abandoned`` at their deadline (answered while the model still ran)
    and ever declared ``stuck`` (bridge.jvm.call_counts); zeros when it has no JVM. Cheap; never starts a
    JVM nor imports the bridge."""
    jvm = sys.modules.get("bridge.jvm")
    if jvm is None or not jvm.jvm_started():
        return {"abandoned": 0, "stuck": 0}
    counts: dict[str, int] = jvm.call_counts()
    return counts


class JavaModelAdapter:
    """A Java bundle loaded in a fresh class loader of this process's JVM (implements Model)."""

    def __init__(self, version_dir: Path, metadata: Metadata, contract: Contract, *, settings: Settings):
        from bridge.model import JavaModel  # noqa: PLC0415

        self.version_dir = Path(version_dir)
        self.metadata = metadata
        self.contract = contract
        self.name = metadata.name
        self.version = version_label(self.version_dir)
        self._log = logging.getLogger(f"model.{self.name}")
        ensure_jvm(metadata.jvm_options, settings, name=metadata.name)
        self._java = self._mapped(
            lambda: JavaModel.load(
                artifact_dir=self.version_dir,
                class_name=metadata.entry_point,
                service=contract.service,
                overrides=metadata.methods or None,
                jvm_options=list(metadata.jvm_options),
                name=self.name,
                version=self.version,
            ),
            loading=True,
        )
        self.bindings: dict[str, dict[str, Any]] = dict(getattr(self._java, "bindings", {}) or {})
        self.json_methods: frozenset[str] = frozenset(getattr(self._java, "json_rpcs", ()) or ())
        """The rpcs :meth:`invoke_json` serves: the host maps their JSON itself."""
        self.tag = str(getattr(self._java, "tag", "") or f"model={self.name} version={self.version}")
        from runner.runtimes import calls_of  # noqa: PLC0415 (the package imports this module lazily)

        if calls_of(metadata, settings) == "inline":
            self._java.set_inline_calls(True)

    def _mapped(self, fn: Callable[[], T], *, rpc: str | None = None, loading: bool = False) -> T:
        try:
            return fn()
        except Exception as err:  # mapped once, here
            mapped = map_bridge_error(err, name=self.name, rpc=rpc, loading=loading)
            if mapped is err:
                raise
            raise mapped from err

    def invoke(self, method: str, request: bytes, timeout: float | None = None) -> bytes:
        return self._call(method, timeout, lambda deadline: self._java.call(method, bytes(request), deadline))

    def invoke_json(
        self,
        method: str,
        request: bytes,
        *,
        json_in: bool,
        json_out: bool,
        timeout: float | None = None,
        max_json_depth: int = 64,
    ) -> bytes:
        """:meth:`invoke` with the request in proto3 JSON (``json_in``) and/or the answer in proto3 JSON
        (``json_out``), mapped by the host library (one crossing, no message in Python) as
        runner.contract.codec maps it; for the rpcs of :attr:`json_methods`. A refused request is BadInput
        naming the field (detail ``path``)."""
        return self._call(
            method,
            timeout,
            lambda deadline: self._java.call_json(
                method,
                request,
                json_in=json_in,
                json_out=json_out,
                timeout=deadline,
                max_json_depth=max_json_depth,
            ),
        )

    def _call(self, method: str, timeout: float | None, call: Callable[[float | None], bytes]) -> bytes:
        """Run one call of ``method`` within its deadline (runtimes.deadline), its failures mapped once."""
        if method not in self.bindings:  # (every bound rpc is in the contract: no descriptor lookup per call)
            self.contract.method(method)  # MethodNotFound for an rpc the contract lacks
        deadline = call_timeout(timeout, bundle=self.metadata.timeout_seconds)
        try:
            return call(deadline)
        except Exception as err:  # mapped once, here; the model's failures logged with their stack
            mapped = map_bridge_error(err, name=self.name, rpc=method)
            if mapped is err:
                raise
            if isinstance(mapped, (ModelError, DeadlineExceeded)):
                self._log_failure(mapped)
            raise mapped from err

    def _log_failure(self, err: ModelRunnerError) -> None:
        """Log a failed call with the Java stack, under the request id its answer will carry."""
        request_id = err.detail.get("request_id")
        if not isinstance(request_id, str) or not request_id:
            request_id = err.detail["request_id"] = current_request_id() or uuid.uuid4().hex[:16]
        stack = str(err.detail.get("java_stack") or "").rstrip()
        self._log.log(
            logging.ERROR if isinstance(err, ModelError) else logging.WARNING,
            "[%s] request %s: %s%s",
            self.tag,
            request_id,
            err.message,
            f"\n{stack}" if stack else "",
        )

    def close(self) -> None:
        self._mapped(self._java.close)

    def __repr__(self) -> str:
        return f"<JavaModelAdapter {self.name} {self.metadata.entry_point} from {self.version_dir}>"


def version_label(version_dir: Path) -> str:
    """The version number of a repository's version folder (``.../versions/3`` -> ``"3"``); ``"staged"``
    for a bundle that is not (yet) a version: one being validated before a publish, or onboarded."""
    if version_dir.parent.name == _VERSIONS_DIR and version_dir.name.isdigit():
        return version_dir.name
    return "staged"


def java_candidates(jar: Path, libs: Sequence[Path], *, settings: Settings) -> list[dict[str, Any]]:
    """Classes in ``jar`` that could be a model, with their public methods and the convention each binds
    with; classes that cannot load with the error and the missing class (bridge.inspect.list_candidates;
    core errors with a hint)."""
    from bridge import inspect as bridge_inspect  # noqa: PLC0415 (the bridge, only when needed)

    ensure_jvm((), settings, name=jar.name)
    try:
        return list(bridge_inspect.list_candidates(jar, list(libs)))
    except Exception as exc:  # noqa: BLE001 (bridge errors are mapped to core errors here)
        raise _inspect_error(exc, jar=jar, class_name=None) from None


def generate_java_contract(
    jar: Path, class_name: str, libs: Sequence[Path], *, methods: Sequence[str] | None, settings: Settings
) -> str:
    """A .proto generated from the signatures of ``class_name``'s methods (core errors with a hint)."""
    from bridge import inspect as bridge_inspect  # noqa: PLC0415 (the bridge, only when needed)

    ensure_jvm((), settings, name=jar.name)
    try:
        return bridge_inspect.generate_proto(jar, class_name, list(libs), methods=methods)
    except Exception as exc:  # noqa: BLE001 (bridge errors are mapped to core errors here)
        raise _inspect_error(exc, jar=jar, class_name=class_name) from None


def require_java_primitives(
    jar: Path, class_name: str, libs: Sequence[Path], proto_text: str, *, settings: Settings
) -> tuple[str, dict[str, list[str]]]:
    """A contract generated from ``class_name`` (:func:`generate_java_contract`) with each input field
    that holds a primitive Java parameter or record component declared ``optional``, and those fields
    by message name (metadata.json ``required``): a Java ``double`` cannot be absent, so a request that
    leaves the field out is refused instead of calling the model with 0 (runner.contract.required)."""
    from bridge import inspect as bridge_inspect  # noqa: PLC0415 (the bridge, only when needed)
    from runner.contract import Contract  # noqa: PLC0415 (protobuf, only when generating)
    from runner.contract.required import declare_presence  # noqa: PLC0415 (as above)

    contract = Contract.compile(proto_text)
    ensure_jvm((), settings, name=jar.name)
    try:
        fields = bridge_inspect.primitive_fields(jar, class_name, list(libs), contract.service)
    except Exception as exc:  # noqa: BLE001 (bridge errors are mapped to core errors here)
        raise _inspect_error(exc, jar=jar, class_name=class_name) from None
    if not fields:
        return proto_text, {}
    marked = declare_presence(proto_text, contract, fields)
    pool = Contract.compile(marked).pool
    prefix = f"{contract.package}." if contract.package else ""
    required: dict[str, list[str]] = {}
    for full_name, names in fields.items():
        desc = pool.FindMessageTypeByName(full_name)
        present = [n for n in names if desc.fields_by_name[n].has_presence]
        if present:
            required[full_name.removeprefix(prefix)] = present
    return marked, required


def _inspect_error(exc: Exception, *, jar: Path, class_name: str | None) -> ModelRunnerError:
    """A bridge error (or any failure while inspecting) as a core error with a hint."""
    if isinstance(exc, ModelRunnerError):
        return exc
    kind = type(exc).__name__
    message = getattr(exc, "message", None) or str(exc) or kind
    detail = dict(getattr(exc, "detail", None) or {})
    detail.setdefault("jar", str(jar))
    missing = re.search(r"(?:NoClassDefFoundError|ClassNotFoundException):?\s+([\w/.$]+)", message)
    if missing and class_name and missing.group(1).replace("/", ".") != class_name:
        dep = missing.group(1).replace("/", ".")
        detail.setdefault(
            "hint",
            f"a dependency is missing: add the JAR that holds {dep} with --lib "
            "(e.g. from your build's runtime classpath)",
        )
    elif "proto-native" in message:
        detail.setdefault(
            "hint",
            "pass the .proto its message classes were generated from with --proto "
            "(and protobuf-java with --lib)",
        )
    if kind == "JavaLoadError":
        if class_name:
            detail.setdefault(
                "hint",
                f"run `model-runner onboard {jar}` without --class to list the classes "
                "it holds; add dependency JARs with --lib",
            )
        return InvalidBundle(message, detail)
    if kind == "BindError":
        detail.setdefault("hint", "pass --method NAME for the methods to serve, or a contract with --proto")
        return InvalidContract(message, detail)
    if kind == "JavaInspectError":
        detail.setdefault(
            "hint",
            f"`model-runner onboard {jar}` lists the public methods of each class; "
            "pass the ones to serve with --method, or write the contract and pass --proto",
        )
        return BadInput(message, detail)
    if kind in ("JvmNotFoundError", "JvmOptionsError"):
        detail.setdefault("hint", "install a JDK 17 and set JAVA_HOME")
        return ModelRunnerError(message, detail)
    return InvalidBundle(f"{kind}: {message}", detail)

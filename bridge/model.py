"""A Java model version served through the host library (one class loader per version)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jpype

from bridge import jvm, output
from bridge.errors import (
    BindError,
    BridgeError,
    JavaDeadlineError,
    JavaExitError,
    JavaInspectError,
    JavaLoadError,
    JavaModelError,
)
from bridge.schema import service_schema

_classes: dict[str, Any] = {}
log = logging.getLogger(__name__)


def _cls(name: str) -> Any:
    c = _classes.get(name)
    if c is None:
        c = _classes[name] = jpype.JClass(name)
    return c


def host_error(e: Any) -> BridgeError:
    """Map an org.modelrunner.host.HostException to a bridge error."""
    kind = str(e.getKind())
    message = str(e.getMessage())
    detail: dict[str, Any] = {}
    raw = str(e.getDetail())
    if raw and kind != "bind":
        try:
            detail.update(json.loads(raw))
        except ValueError:
            pass
    java = {
        "java_class": str(e.getJavaClass()),
        "java_message": str(e.getJavaMessage()),
        "java_stack": str(e.getJavaStack()),
    }
    if kind == "bind":
        return BindError(message, {"problems": json.loads(raw)})
    if kind == "load":
        return JavaLoadError(message, {**detail, **{k: v for k, v in java.items() if v}})
    if kind == "exit":
        return JavaExitError(message, {**detail, **java})
    if kind == "deadline":
        return JavaDeadlineError(message, {**detail, **java})
    if kind == "inspect":
        return JavaInspectError(message, detail)
    if kind == "model":
        return JavaModelError(message, {**detail, **java})
    if kind == "input":
        return JavaModelError(message, {**detail, **java, "input": True})
    return BridgeError(message, {**detail, **java, "kind": kind})


class JavaModel:
    """One loaded version of a Java model, bound to the rpcs of a contract service."""

    def __init__(
        self,
        slot: Any,
        index: dict[str, int],
        bindings: dict[str, dict[str, Any]],
        class_name: str,
        tag: str = "",
        json_rpcs: frozenset[str] = frozenset(),
    ):
        self._slot = slot
        self._index = index
        self.bindings = bindings
        self.json_rpcs = json_rpcs
        """The rpcs whose JSON the host maps itself (:meth:`call_json`): those whose messages hold no
        google.protobuf type (well-known types have JSON forms of their own)."""
        self.class_name = class_name
        self.tag = tag or output.tag(class_name, None)
        """How this version's output lines are tagged: ``model=iris version=3 pid=1234``."""
        self._closed = False
        self._close_lock = threading.Lock()
        self.inline_calls = False
        self._host_error = _cls("org.modelrunner.host.HostException")
        self._thread_death = _cls("java.lang.ThreadDeath")

    @classmethod
    def load(
        cls,
        *,
        artifact_dir: Path,
        class_name: str,
        service: Any,
        overrides: dict[str, dict[str, Any]] | None = None,
        jvm_options: Sequence[str] = (),
        name: str | None = None,
        version: object | None = None,
    ) -> JavaModel:
        """Load ``artifact_dir``/model.jar + lib/*.jar in a new class loader and bind every rpc of ``service``.

        ``overrides``: {rpc: {"java_method": name, "convention": "pojo"|"params"|"proto"|"acumos"}}.
        ``name``, ``version``: what the model's output lines are tagged with (bridge/output.py; default:
        the class name). Raises JavaLoadError, BindError (detail["problems"]) or JvmOptionsError."""
        artifact_dir = Path(artifact_dir).absolute()
        jvm.start_jvm(jvm_options)
        jar = artifact_dir / "model.jar"
        if not jar.is_file():
            raise JavaLoadError(f"model.jar not found in {artifact_dir}", {"path": str(jar)})
        libs = sorted((artifact_dir / "lib").glob("*.jar")) if (artifact_dir / "lib").is_dir() else []
        host = jvm.host()
        host_error_cls = _cls("org.modelrunner.host.HostException")
        try:
            slot = host.open(
                class_name,
                str(artifact_dir),
                [str(p) for p in [jar, *libs]],
                service_schema(service),
                name or class_name,
                "" if version is None else str(version),
            )
        except host_error_cls as e:
            raise host_error(e) from None
        problems: list[dict[str, Any]] = [
            {
                "rpc": name,
                "message": "",
                "field": "",
                "reason": f'metadata "methods" names rpc {name}, which is not in service {service.full_name}',
            }
            for name in (overrides or {})
            if name not in {m.name for m in service.methods}
        ]
        index: dict[str, int] = {}
        bindings: dict[str, dict[str, Any]] = {}
        json_rpcs: set[str] = set()
        try:
            for m in service.methods:
                ov = (overrides or {}).get(m.name) or {}
                try:
                    info = json.loads(
                        str(
                            slot.bind(
                                m.name,
                                ov.get("java_method") or "",
                                ov.get("convention") or "",
                                m.input_type.full_name,
                                m.output_type.full_name,
                            )
                        )
                    )
                except host_error_cls as e:
                    err = host_error(e)
                    if isinstance(err, BindError):
                        problems += err.detail["problems"]
                        continue
                    raise err from None
                index[m.name] = info.pop("index")
                if info.pop("json", False):
                    json_rpcs.add(m.name)
                bindings[m.name] = info
            if problems:
                raise BindError(
                    f"{class_name} does not bind to service {service.full_name}: "
                    + "; ".join(_describe(p) for p in problems),
                    {"problems": problems},
                )
        except BaseException:
            slot.close()
            raise
        return cls(
            slot, index, bindings, class_name, output.tag(name or class_name, version), frozenset(json_rpcs)
        )

    def set_inline_calls(self, inline: bool) -> None:
        """Run timed calls on the caller's own thread (no hand-off to a call thread): the watchdog then only
        interrupts a call at its deadline, and a model that ignores the interrupt holds its caller until it
        returns (Slot.setInlineCalls). Off (the default): the caller is answered at the deadline whatever
        the model does."""
        self._slot.setInlineCalls(inline)
        self.inline_calls = inline

    def call(self, rpc: str, request: bytes, timeout: float | None = None) -> bytes:
        """Serialized request message in, serialized response message out.

        With a ``timeout`` (seconds) the model runs on a host call thread (on this one with inline calls:
        :meth:`set_inline_calls`) and this answers at the deadline at the latest (JavaDeadlineError),
        whatever the model does; the host goes on stopping a call it
        abandoned (bridge.jvm.stuck_calls lists it once well overdue). Without, it runs on this thread."""
        return self._invoke(rpc, request, timeout, lambda slot, idx, data, ms: slot.call(idx, data, ms))

    def call_json(
        self,
        rpc: str,
        request: bytes,
        *,
        json_in: bool,
        json_out: bool,
        timeout: float | None = None,
        max_json_depth: int = 64,
    ) -> bytes:
        """As :meth:`call`, the request in proto3 JSON when ``json_in`` and the answer in proto3 JSON when
        ``json_out``: the host parses and prints the mapping itself (ProtoJson.java, for the rpcs of
        :attr:`json_rpcs`), as runner/contract/codec.py would. A request it refuses is a JavaModelError
        with detail ``input`` (and ``path``: where), JSON nested deeper than ``max_json_depth`` included."""
        return self._invoke(
            rpc,
            request,
            timeout,
            lambda slot, idx, data, ms: slot.callJson(idx, data, json_in, json_out, ms, max_json_depth),
        )

    def _invoke(
        self,
        rpc: str,
        request: bytes,
        timeout: float | None,
        host_call: Callable[[Any, int, bytes, int], Any],
    ) -> bytes:
        """``host_call(slot, rpc's index, request, timeout in ms: 0 for none)`` of the host, its errors
        translated (the shared part of :meth:`call` and :meth:`call_json`)."""
        idx = self._index.get(rpc)
        if idx is None:
            raise BridgeError(f"no rpc {rpc!r} bound (bound: {sorted(self._index)})", {"rpc": rpc})
        ms = 0 if timeout is None else max(1, int(timeout * 1000))
        if type(request) is not bytes:
            request = bytes(request)
        try:
            return bytes(host_call(self._slot, idx, request, ms))
        except AttributeError:
            if self._slot is None:
                raise BridgeError(f"{self.class_name} is closed", {"rpc": rpc}) from None
            raise
        except self._host_error as e:
            raise host_error(e) from None
        except self._thread_death as e:  # a stop that landed outside the host's own handler
            raise JavaDeadlineError(
                f"{rpc} was stopped after its deadline", {"java_class": "java.lang.ThreadDeath"}
            ) from e

    def close(self) -> None:
        """Close the model instance if it is AutoCloseable, then release the class loader, the JAR files and
        the native library copies (idempotent). A failing close() of the model is logged, not raised: the
        version is closed either way."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            slot, self._slot = self._slot, None
        if slot is not None:
            problem = str(slot.close() or "")
            if problem:
                log.warning("closing %s: %s", self.class_name, problem)

    def __enter__(self) -> JavaModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _describe(p: dict[str, Any]) -> str:
    where = ", ".join(
        x
        for x in (
            f"message {p['message']}" if p.get("message") else "",
            f"field {p['field']}" if p.get("field") else "",
        )
        if x
    )
    return f"rpc {p['rpc']}" + (f" ({where})" if where else "") + f": {p['reason']}"
